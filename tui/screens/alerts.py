"""Alerts: firing first, then pending, then resolved, each with its value against the
rule's threshold and who acknowledged it; ``enter`` opens one with its evidence.

Actions (operator, as the server's routes require): ``a`` acknowledge the alert under
the cursor, ``s`` silence its rule and subject for a while with a reason, ``l`` the
silences (who made them and why; ``u`` lifts one there). ``f`` cycles the state shown."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from tui.screens.alert import (
    SEVERITY,
    STATE_ORDER,
    STATE_STYLE,
    AlertScreen,
    SilencesScreen,
    acknowledge,
    figure,
    ordered,
    silence,
    state_text,
    when,
)
from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row

if TYPE_CHECKING:
    from mlops_lite.records import AlertRecord

VIEWS = ("all", "firing", "pending", "resolved")
LIMIT = 500


class AlertsScreen(ConsoleScreen):
    TITLE = "Alerts"
    BINDINGS = [Binding("a", "acknowledge", "Ack"), Binding("s", "silence", "Silence"),
                Binding("l", "silences", "Silences"), Binding("f", "cycle_state", "State")]
    ACTION_ROLES = {"acknowledge": "operator", "silence": "operator"}

    def __init__(self) -> None:
        super().__init__()
        self.view = "all"
        self.alerts: dict[str, AlertRecord] = {}

    def body(self) -> ComposeResult:
        yield Static("", id="summary")
        yield FilterTable((("state", "State"), ("severity", "Sev"), ("rule", "Rule"), ("subject", "Subject"),
                           ("figure", "Value"), ("since", "Since"), ("ack", "Acked by")),
                          id="alerts", title="Alerts")

    def load(self) -> Any:
        alerts = self.platform.alerts
        if self.view == "all":  # every open alert, however many resolved ones came after it
            listed = {a.id: a for a in alerts.list(limit=LIMIT)}
            listed.update((a.id, a) for a in alerts.open_alerts())
            return self.view, list(listed.values()), alerts.silences()
        return self.view, alerts.list(state=self.view, limit=LIMIT), alerts.silences()

    def show(self, data: Any) -> None:
        view, alerts, silences = data
        self.alerts = {a.id: a for a in alerts}
        counts = {s: sum(1 for a in alerts if a.state == s) for s in STATE_ORDER}
        summary = Text()
        for state, count in counts.items():
            if view in ("all", state):
                summary.append(f"{state} {count}", style=STATE_STYLE[state] if count else "dim")
                summary.append(" · ")
        summary.append(f"silences in force {len(silences)}")
        summary.append(f"   showing: {view} (f)", style="dim")
        self.query_one("#summary", Static).update(summary)
        table = self.query_one(FilterTable)
        table.border_title = f"Alerts: {view}"
        table.set_rows(Row(a.id, (state_text(a), SEVERITY.get(a.severity, Text(a.severity)), a.rule, a.subject or "-", figure(a),
                                  when(a.started_at), a.acknowledged_by or ""))
                       for a in ordered(alerts))
        self.console.palette_items["Alert silences"] = (f"{len(silences)} in force: who, until when, why",
                                                        self._silences_from_palette)
        for a in alerts:
            if a.is_open:
                self.console.palette_items[f"Alert {a.rule} on {a.subject}"] = (
                    f"{a.state} {figure(a)}", partial(self._open_from_palette, a.id))

    def _open_from_palette(self, id: str) -> None:
        self.console.switch_mode("alerts")
        self.console.push_screen(AlertScreen(id))

    def _silences_from_palette(self) -> None:
        self.console.switch_mode("alerts")
        self.console.push_screen(SilencesScreen())

    def open_row(self, key: str, table: FilterTable) -> None:
        self.app.push_screen(AlertScreen(key))

    def selected(self) -> AlertRecord | None:
        key = self.query_one(FilterTable).cursor_key
        return self.alerts.get(key) if key else None

    def action_cycle_state(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.reload()

    def action_acknowledge(self) -> None:
        alert = self.selected()
        if alert is None:
            self.notify("no alert under the cursor", severity="warning")
            return
        acknowledge(self.console, alert)

    def action_silence(self) -> None:
        alert = self.selected()
        silence(self.console, alert.rule if alert else None, alert.subject if alert else None)

    def action_silences(self) -> None:
        self.app.push_screen(SilencesScreen())
