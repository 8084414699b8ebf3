"""The command palette (``:`` or ``ctrl+p``): every section, every object of the platform
(deployments, models and their versions, data repositories, open alerts, runs and flow
runs) and the actions of the screen it was opened over, as far as the role allows.

Objects come from two places, both filled off the event loop: what the screens' loads
put in ``console.palette_items``, and a catalog this provider reads in a thread worker
when the palette opens (at most every ``CATALOG_SECONDS``), so an object is found before
its section was ever shown. ``startup`` waits up to ``CATALOG_WAIT`` seconds for that
read; a slower server's objects join the hits as the operator types on. ``search`` and
``discover`` only match titles: no I/O on the event loop.

The current screen's actions are its active bindings: those its ``check_action`` hides
(a viewer's write actions, an operator's approver actions, a read-only console's) are not
offered; choosing one runs it as its key would."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.worker import Worker, WorkerState

from mlops_lite.errors import MlopsLiteError

CATALOG_SECONDS = 10.0  # the catalog is read again when the palette opens after this long
CATALOG_WAIT = 1.0  # how long opening the palette waits for that read
VERSIONS_PER_MODEL = 20  # the newest versions of each model offered (a model may have thousands)
RUNS = 20  # the newest runs and flow runs offered
_SECTION = re.compile(r"^section\('(\w+)'\)$")


@dataclass(frozen=True)
class Entry:
    """An object of the catalog: its title and help, and how to open it: the section
    (a mode) and the keys to open from its first screen down (each with the id of the
    table it is a row of, or None for the screen's first table)."""

    title: str
    help: str
    mode: str
    path: tuple[tuple[str, str | None], ...]


@dataclass
class _Catalog:
    read_at: float = 0.0
    titles: frozenset[str] = frozenset()
    worker: Worker[Any] | None = None


_CATALOGS: WeakKeyDictionary[Any, _Catalog] = WeakKeyDictionary()


def read_catalog(platform: Any) -> list[Entry]:
    """Every object the palette offers (a thread: this is I/O). A facet the role may not
    read, or that is unavailable (no Prefect server), is left out."""
    entries: list[Entry] = []

    def part(read: Callable[[], list[Entry]]) -> None:
        try:
            entries.extend(read())
        except MlopsLiteError:
            pass

    part(lambda: [Entry(f"Deployment {d.name}", f"{d.model}@{d.version} ({d.strategy})", "pulse", ((d.name, None),))
                  for d in platform.deployments.list()])

    def models() -> list[Entry]:
        found = []
        for m in platform.registry.list_models():
            found.append(Entry(f"Model {m.name}", f"{len(m.versions)} versions", "models", ((m.name, None),)))
            found += [Entry(f"Version {m.name}@{v}", "lineage, card, metrics", "models",
                            ((m.name, None), (v, "versions"))) for v in m.versions[-VERSIONS_PER_MODEL:]]
        return found

    part(models)
    part(lambda: [Entry(f"Repository {r.name}", f"{len(r.branches)} branch(es)", "data", ((r.name, None),))
                  for r in platform.data.repositories()])
    part(lambda: [Entry(f"Alert {a.rule} on {a.subject}", f"{a.state} {a.metric}", "alerts", ((a.id, None),))
                  for a in platform.alerts.open_alerts()])
    part(lambda: [Entry(f"Run {r.name} {r.id[:8]}", f"{r.experiment} · {r.status}", "runs", ((r.id, "runs"),))
                  for r in platform.tracking.list_runs(limit=RUNS)])
    part(lambda: [Entry(f"Flow run {f.flow}/{f.name}", f"{f.state_name}", "runs", ((f.id, "flows"),))
                  for f in platform.flows.runs(limit=RUNS)])
    return entries


async def open_entry(console: Any, mode: str, path: tuple[tuple[str, str | None], ...]) -> None:
    """Open an object as the operator would: its section, back to its first screen, then
    ``enter`` on each key of ``path`` in turn (each on the screen the one before opened)."""
    await console.switch_mode(mode)
    while len(console.screen_stack) > 1:
        await console.pop_screen()
    screen = console.screen
    for key, table_id in path:
        tables = [t for t in screen.query("FilterTable") if table_id is None or t.id == table_id]
        opener = getattr(screen, "open_row", None)
        if not tables or not callable(opener):
            return
        opener(key, tables[0])
        for _ in range(100):  # the screen it pushed, once mounted
            if console.screen is not screen and console.screen.is_mounted:
                break
            await asyncio.sleep(0.01)
        if console.screen is screen:
            return
        screen = console.screen


class ConsoleCommands(Provider):
    async def startup(self) -> None:
        """Read the catalog in a thread worker when it is stale; wait a moment for it."""
        console = self.app
        if not hasattr(console, "palette_items") or not hasattr(console, "platform"):
            return
        catalog = _CATALOGS.setdefault(console, _Catalog())
        running = catalog.worker is not None and catalog.worker.state in (WorkerState.PENDING, WorkerState.RUNNING)
        if not running and time.monotonic() - catalog.read_at > CATALOG_SECONDS:
            catalog.worker = console.run_worker(partial(self._read, console, catalog), thread=True,
                                                group="palette-catalog", exclusive=True, name="palette catalog")
        if catalog.worker is not None and catalog.worker.state in (WorkerState.PENDING, WorkerState.RUNNING):
            try:
                await asyncio.wait_for(asyncio.shield(catalog.worker.wait()), timeout=CATALOG_WAIT)
            except Exception:  # slow (TimeoutError), or failed: what is known already is offered
                pass

    @staticmethod
    def _read(console: Any, catalog: _Catalog) -> None:
        entries = read_catalog(console.platform)
        console.call_from_thread(ConsoleCommands.store_catalog, console, catalog, entries)

    @staticmethod
    def store_catalog(console: Any, catalog: _Catalog, entries: list[Entry]) -> None:
        """UI thread: the catalog's entries into ``palette_items`` (a screen's own item of the
        same title stays); the catalog's entries that are gone are removed."""
        items = console.palette_items
        titles = frozenset(e.title for e in entries)
        for gone in catalog.titles - titles:
            if gone in items and getattr(items[gone][1], "catalog", False):
                del items[gone]
        for entry in entries:
            current = items.get(entry.title)
            if current is None or getattr(current[1], "catalog", False):
                callback = partial(open_entry, console, entry.mode, entry.path)
                callback.catalog = True  # type: ignore[attr-defined]
                items[entry.title] = (entry.help, callback)
        catalog.titles, catalog.read_at = titles, time.monotonic()

    def _items(self) -> list[tuple[str, str, Callable[[], Any]]]:
        console: Any = self.app
        items: list[tuple[str, str, Callable[[], Any]]] = []
        for binding in getattr(console, "BINDINGS", ()):
            action = getattr(binding, "action", "")
            section = _SECTION.match(action)
            if section is not None:
                items.append((f"Go to {binding.description}", f"section {binding.key}",
                              partial(console.action_section, section.group(1))))
        items += self._screen_actions()
        items += [(title, help_text, callback)
                  for title, (help_text, callback) in getattr(console, "palette_items", {}).items()]
        return items

    def _screen_actions(self) -> list[tuple[str, str, Callable[[], Any]]]:
        """The keys of the screen under the palette its role allows (``check_action``
        already dropped the others from ``active_bindings``)."""
        screen = self.screen
        where = str(getattr(screen, "TITLE", "") or type(screen).__name__)
        found: list[tuple[str, str, Callable[[], Any]]] = []
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if (not active.enabled or not binding.description or binding.action in seen
                    or _SECTION.match(binding.action) or binding.action == "command_palette"):
                continue
            seen.add(binding.action)
            key = binding.key_display or self.app.get_key_display(binding)
            found.append((f"{binding.description} ({key})", f"action · {where}",
                          partial(self.app.run_action, binding.action, active.node)))
        return found

    async def discover(self) -> Hits:
        for title, help_text, callback in self._items():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._items():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
