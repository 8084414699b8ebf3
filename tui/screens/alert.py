"""One alert with its evidence (the figures behind its value, the rule's threshold, who
acknowledged it, its delivery) and the audit trail about it; and the silences, with who
made each and why (``u`` lifts one)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from mlops_lite.errors import MlopsLiteError
from tui.screens.alerts import acknowledge, figure, silence, silence_state, state_text, when
from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row


class AlertScreen(ConsoleScreen):
    TITLE = "Alert"
    BINDINGS = [Binding("a", "acknowledge", "Ack"), Binding("s", "silence", "Silence")]
    ACTION_ROLES = {"acknowledge": "operator", "silence": "operator"}
    AUTO_FOCUS = "VerticalScroll"

    def __init__(self, id: str) -> None:
        super().__init__()
        self.alert_id = id
        self.record: Any = None

    def crumb(self) -> str:
        return f"{self.record.rule} on {self.record.subject}" if self.record else self.alert_id[:12]

    def body(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static("", id="alert")

    def load(self) -> Any:
        record = self.platform.alerts.get(self.alert_id)
        events: Any
        try:
            events = self.platform.audit.about(f"alert:{record.rule}@{record.subject}")
        except MlopsLiteError as exc:  # a viewer may not read the chain
            events = exc
        return record, events

    def show(self, data: Any) -> None:
        record, events = data
        self.record = record
        self.query_one("#alert", Static).update(render_alert(record, events))

    def action_acknowledge(self) -> None:
        if self.record is not None:
            acknowledge(self.console, self.record)

    def action_silence(self) -> None:
        if self.record is not None:
            silence(self.console, self.record.rule, self.record.subject)


def render_alert(a: Any, events: Any) -> Group:
    facts = Table.grid(padding=(0, 1))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    facts.add_row("state", state_text(a))
    facts.add_row("rule", f"{a.rule} ({a.severity}): {a.metric} {a.op} {a.threshold:.4g}")
    facts.add_row("subject", a.subject or "(platform)")
    facts.add_row("value", Text(figure(a), style="bold"))
    if a.description:
        facts.add_row("why", a.description)
    facts.add_row("started", f"{a.started_at:%Y-%m-%d %H:%M:%S}")
    facts.add_row("last seen", f"{a.last_seen_at:%Y-%m-%d %H:%M:%S}")
    if a.fired_at:
        facts.add_row("fired", f"{a.fired_at:%Y-%m-%d %H:%M:%S}")
    if a.resolved_at:
        facts.add_row("resolved", f"{a.resolved_at:%Y-%m-%d %H:%M:%S}")
    facts.add_row("acknowledged", f"by {a.acknowledged_by} at {a.acknowledged_at:%Y-%m-%d %H:%M:%S}"
                  if a.acknowledged_by else Text("no one yet", style="yellow"))
    delivery = a.delivery or "-"
    if a.silenced:
        delivery += " (silenced: not sent)"
    if a.last_error:
        delivery += f", last error: {a.last_error}"
    facts.add_row("delivery", f"{delivery} ({a.attempts} attempt(s))")
    evidence = Text(json.dumps(a.evidence, indent=2, sort_keys=True, default=str) if a.evidence else "(none)")
    parts: list[Any] = [facts, Text("\nevidence", style="bold"), evidence, Text("\naudit trail", style="bold")]
    if isinstance(events, MlopsLiteError):
        parts.append(Text(f"not shown: {events.message}", style="dim"))
    elif not events:
        parts.append(Text("(no events)", style="dim"))
    else:
        trail = Table("seq", "when", "action", "by", box=None, padding=(0, 1))
        for e in events[-20:]:
            trail.add_row(str(e.seq), f"{e.at:%m-%d %H:%M:%S}", e.action, e.actor)
        parts.append(trail)
    return Group(*parts)


class SilencesScreen(ConsoleScreen):
    TITLE = "Silences"
    BINDINGS = [Binding("u", "lift", "Lift"), Binding("n", "new", "New silence")]
    ACTION_ROLES = {"lift": "operator", "new": "operator"}

    def __init__(self) -> None:
        super().__init__()
        self.silences: dict[str, Any] = {}

    def body(self) -> ComposeResult:
        yield FilterTable((("state", "State"), ("rule", "Rule"), ("subject", "Subject"), ("until", "Until"),
                           ("by", "By"), ("reason", "Reason"), ("id", "Id")), id="silences", title="Silences")

    def load(self) -> Any:
        return self.platform.alerts.silences(active=False)

    def show(self, data: Any) -> None:
        self.silences = {s.id: s for s in data}
        self.query_one(FilterTable).set_rows(
            Row(s.id, (silence_state(s), s.rule or "*", s.subject or "*", when(s.until), s.created_by, s.reason,
                       s.id[:12]))
            for s in data)

    def action_lift(self) -> None:
        key = self.query_one(FilterTable).cursor_key
        record = self.silences.get(key) if key else None
        if record is None:
            self.notify("no silence under the cursor", severity="warning")
            return
        sid = record.id
        self.console.perform(
            title="Lift silence", target=f"rule {record.rule or '*'}, subject {record.subject or '*'}",
            role="operator", confirm=f"Lift the silence by {record.created_by} ({record.reason})? "
                                     "Notifications of matching alerts go out again.",
            call=lambda p: p.alerts.lift_silence(sid),
            describe=lambda r: Text(f"silence {r.id[:12]} lifted by {r.lifted_by} at {r.lifted_at:%Y-%m-%d %H:%M:%S}"),
            audit_object=f"silence:{sid}")

    def action_new(self) -> None:
        silence(self.console, None, None)
