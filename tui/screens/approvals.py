"""Approvals (a first cut: a table of what the platform holds)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class ApprovalsScreen(ConsoleScreen):
    TITLE = "Approvals"

    def body(self) -> ComposeResult:
        yield FilterTable((("a", "Name"), ("b", ""), ("c", ""), ("d", "")), title="Approvals")

    def load(self) -> Any:
        return self.platform.policy.requests(status='pending')

    def show(self, data: Any) -> None:
        rows = []
        for a in data:
            cells = tuple(str(c) for c in (a.model, a.version, a.alias, a.status))
            rows.append(Row(a.id, (*cells, "", "", "", "")[:4]))
        self.query_one(FilterTable).set_rows(rows)
