"""Models (a first cut: a table of what the platform holds)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class ModelsScreen(ConsoleScreen):
    TITLE = "Models"

    def body(self) -> ComposeResult:
        yield FilterTable((("a", "Name"), ("b", ""), ("c", ""), ("d", "")), title="Models")

    def load(self) -> Any:
        return self.platform.registry.list_models()

    def show(self, data: Any) -> None:
        rows = []
        for m in data:
            cells = tuple(str(c) for c in (m.name, str(len(m.versions)), m.versions[-1] if m.versions else '-'))
            rows.append(Row(m.name, (*cells, "", "", "", "")[:4]))
        self.query_one(FilterTable).set_rows(rows)
