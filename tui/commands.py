"""The command palette (``:`` or ``ctrl+p``): every section, every object the console
has seen (deployments, models, repositories, alerts, ...) and the console's own actions.

Screens put what they load into ``console.palette_items`` (title -> callback); the
provider searches them with Textual's fuzzy matcher. Nothing here does I/O: the items
were loaded by the screens' workers."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui.console import OperatorConsole


class ConsoleCommands(Provider):
    def _items(self) -> list[tuple[str, str, Callable[[], Any]]]:
        from tui.console import SECTIONS

        console: OperatorConsole = self.app  # type: ignore[assignment]
        items: list[tuple[str, str, Callable[[], Any]]] = [
            (f"Go to {s.title}", f"section {s.key}", partial(console.action_section, s.mode)) for s in SECTIONS]
        items += [(title, help_text, callback) for title, (help_text, callback) in console.palette_items.items()]
        return items

    async def discover(self) -> Hits:
        for title, help_text, callback in self._items():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._items():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
