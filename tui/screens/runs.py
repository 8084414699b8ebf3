"""Runs & flows (a first cut: a table of what the platform holds)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class RunsScreen(ConsoleScreen):
    TITLE = "Runs & flows"

    def body(self) -> ComposeResult:
        yield FilterTable((("a", "Name"), ("b", ""), ("c", ""), ("d", "")), title="Runs & flows")

    def load(self) -> Any:
        return self.platform.tracking.list_runs(limit=100)

    def show(self, data: Any) -> None:
        rows = []
        for r in data:
            cells = tuple(str(c) for c in (r.name, r.status, r.id[:8]))
            rows.append(Row(r.id, (*cells, "", "", "", "")[:4]))
        self.query_one(FilterTable).set_rows(rows)
