"""One deployment: its slots and revisions, and the release actions."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class DeploymentScreen(ConsoleScreen):
    TITLE = "Deployment"
    BINDINGS = [Binding("p", "promote", "Promote")]
    ACTION_ROLES = {"promote": "operator"}

    def __init__(self, name: str) -> None:
        super().__init__()
        self.deployment = name

    def crumb(self) -> str:
        return self.deployment

    def body(self) -> ComposeResult:
        yield Static("", id="summary")
        yield FilterTable((("revision", "Rev"), ("action", "Action"), ("model", "Model"), ("version", "Version"),
                           ("strategy", "Strategy")), id="revisions", title="Revisions")

    def load(self) -> Any:
        return self.platform.deployments.get(self.deployment), self.platform.deployments.revisions(self.deployment)

    def show(self, data: Any) -> None:
        record, revisions = data
        self.query_one("#summary", Static).update(Text(
            f"{record.name}: {record.model}@{record.version} ({record.strategy}, revision {record.revision})"))
        self.query_one(FilterTable).set_rows(
            Row(str(r.revision), (str(r.revision), r.action, r.model, r.version, r.strategy))
            for r in reversed(revisions))

    def action_promote(self) -> None:
        name = self.deployment
        self.console.perform(title="Promote the candidate", target=name, role="operator",
                             confirm=f"Promote the candidate of {name} to take all of its traffic?",
                             call=lambda p: p.deployments.promote(name, reason="from the console"),
                             describe=lambda r: Text(f"{r.name} serves {r.model}@{r.version} (revision {r.revision})"),
                             audit_object=f"deployment:{name}")
