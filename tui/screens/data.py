"""Data: the repositories; ``enter`` opens one (its rules and branches, and from there a
branch's commit log, the diff of two refs, a table's preview at a ref and the pre-merge
checks of a branch). Reading only: data changes through the CLI, CI and the loop."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.app import ComposeResult

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class DataScreen(ConsoleScreen):
    TITLE = "Data"

    def body(self) -> ComposeResult:
        yield FilterTable((("name", "Repository"), ("default", "Default"), ("branches", "Branches"),
                           ("protected", "Protected"), ("created", "Created")), id="repositories",
                          title="Repositories")

    def load(self) -> Any:
        return self.platform.data.repositories()

    def show(self, data: Any) -> None:
        self.query_one(FilterTable).set_rows(
            Row(r.name, (r.name, r.default_branch, str(len(r.branches)), ", ".join(r.protected_branches) or "-",
                         f"{r.created_at:%Y-%m-%d}"))
            for r in data)
        for r in data:
            self.console.palette_items[f"Repository {r.name}"] = (f"{len(r.branches)} branch(es)",
                                                                   partial(self.open, r.name))

    def scope(self) -> dict[str, str]:
        key = self.query_one(FilterTable).cursor_key
        return {"repository": key} if key else {}

    def open_row(self, key: str, table: FilterTable) -> None:
        self.open(key)

    def open(self, name: str) -> None:
        from tui.screens.repository import RepositoryScreen

        if self.app.current_mode != "data":
            self.console.switch_mode("data")
        self.console.push_screen(RepositoryScreen(name))
