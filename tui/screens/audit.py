"""Audit (a first cut: a table of what the platform holds)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class AuditScreen(ConsoleScreen):
    TITLE = "Audit"

    def body(self) -> ComposeResult:
        yield FilterTable((("a", "Name"), ("b", ""), ("c", ""), ("d", "")), title="Audit")

    def load(self) -> Any:
        return self.platform.audit.events(limit=200)

    def show(self, data: Any) -> None:
        rows = []
        for e in data:
            cells = tuple(str(c) for c in (str(e.seq), e.action, e.object, e.actor))
            rows.append(Row(str(e.seq), (*cells, "", "", "", "")[:4]))
        self.query_one(FilterTable).set_rows(rows)
