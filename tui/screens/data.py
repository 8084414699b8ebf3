"""Data (a first cut: a table of what the platform holds)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class DataScreen(ConsoleScreen):
    TITLE = "Data"

    def body(self) -> ComposeResult:
        yield FilterTable((("a", "Name"), ("b", ""), ("c", ""), ("d", "")), title="Data")

    def load(self) -> Any:
        return self.platform.data.repositories()

    def show(self, data: Any) -> None:
        rows = []
        for r in data:
            cells = tuple(str(c) for c in (r.name, r.default_branch))
            rows.append(Row(r.name, (*cells, "", "", "", "")[:4]))
        self.query_one(FilterTable).set_rows(rows)
