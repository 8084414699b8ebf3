"""Pulse: every deployment at a glance; ``enter`` drills into one."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.app import ComposeResult

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class PulseScreen(ConsoleScreen):
    TITLE = "Pulse"

    def body(self) -> ComposeResult:
        yield FilterTable((("name", "Deployment"), ("model", "Model"), ("version", "Version"),
                           ("strategy", "Strategy"), ("revision", "Rev")), id="deployments", title="Deployments")

    def load(self) -> Any:
        return self.platform.deployments.list()

    def show(self, data: Any) -> None:
        self.query_one(FilterTable).set_rows(
            Row(d.name, (d.name, d.model, d.version, d.strategy, str(d.revision))) for d in data)
        for d in data:
            self.console.palette_items[f"Deployment {d.name}"] = (f"{d.model}@{d.version}",
                                                                   partial(self.open, d.name))

    def open_row(self, key: str, table: FilterTable) -> None:
        self.open(key)

    def open(self, name: str) -> None:
        from tui.screens.deployment import DeploymentScreen

        self.console.switch_mode("pulse")
        self.console.push_screen(DeploymentScreen(name))
