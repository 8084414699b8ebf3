"""One alert with its evidence (the figures behind its value, the rule's threshold, who
acknowledged it, its delivery) and the audit trail about it; the silences, with who made
each and why (``u`` lifts one); and the actions both the list and an alert take:
acknowledge, and silence (rule and subject patterns, a duration such as ``2h``, a reason)."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from mlops_lite.clock import parse_duration, utcnow
from mlops_lite.errors import InvalidInput, MlopsLiteError
from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row

if TYPE_CHECKING:
    from mlops_lite.api import PlatformAPI
    from mlops_lite.records import AlertRecord, SilenceRecord
    from tui.console import OperatorConsole

STATE_ORDER = {"firing": 0, "pending": 1, "resolved": 2}
STATE_STYLE = {"firing": "bold red", "pending": "yellow", "resolved": "green"}


def ordered(alerts: list[AlertRecord]) -> list[AlertRecord]:
    """Firing first, then pending, then resolved; newest first within each."""
    by_time = sorted(alerts, key=lambda a: a.started_at, reverse=True)
    return sorted(by_time, key=lambda a: STATE_ORDER.get(a.state, 3))


def figure(a: AlertRecord) -> str:
    return f"{a.value:.4g} {a.op} {a.threshold:.4g}"


def when(moment: Any) -> str:
    """A time as short as a table wants it: the hour today, the day otherwise."""
    if moment is None:
        return ""
    return f"{moment:%H:%M}" if moment.date() == utcnow().date() else f"{moment:%m-%d %H:%M}"


SEVERITY = {"critical": Text("crit", style="bold red"), "warning": Text("warn", style="yellow"),
            "info": Text("info", style="dim")}


def state_text(a: AlertRecord) -> Text:
    return Text(a.state + (" (silenced)" if a.silenced else ""), style=STATE_STYLE.get(a.state, ""))


# ------------------------------------------------------------------------------ actions

def acknowledge(console: OperatorConsole, alert: AlertRecord) -> None:
    """Acknowledge ``alert`` (any state; the server refuses a second time, naming who)."""
    alert_id = alert.id
    console.perform(title="Acknowledge alert", target=f"{alert.rule} on {alert.subject}", role="operator",
                    call=lambda p: p.alerts.acknowledge(alert_id),
                    describe=lambda r: Text(f"{r.rule} on {r.subject} ({r.state}) acknowledged by "
                                            f"{r.acknowledged_by} at {r.acknowledged_at:%Y-%m-%d %H:%M:%S}"),
                    audit_object=f"alert:{alert.rule}@{alert.subject}")


def silence(console: OperatorConsole, rule: str | None, subject: str | None) -> None:
    """Ask for the patterns, how long and why, then silence."""
    if not console.access.can("operator"):
        console.notify(f"Silence: needs the operator role; you are {console.access.describe()}", severity="error")
        return

    def asked(answer: SilenceRequest | None) -> None:
        if answer is None:
            return
        target = f"rule {answer.rule or '*'}, subject {answer.subject or '*'} for {answer.text}"
        console.perform(title="Silence alerts", target=target, role="operator",
                        call=partial(_silence, answer), describe=_describe_silence)

    console.push_screen(SilenceScreen(rule, subject), asked)


def _silence(answer: SilenceRequest, p: PlatformAPI) -> tuple[SilenceRecord, str | None]:
    record = p.alerts.silence(answer.rule, answer.subject, until=answer.duration, reason=answer.reason)
    try:  # the audit event the silence made (an operator may read the chain)
        events = p.audit.about(f"silence:{record.id}")
        audit = f"seq {events[-1].seq} {events[-1].action} by {events[-1].actor}" if events else None
    except MlopsLiteError:
        audit = None
    return record, audit


def _describe_silence(result: tuple[SilenceRecord, str | None]) -> Text:
    record, audit = result
    text = Text(f"silence {record.id[:12]}: rule {record.rule or '*'}, subject {record.subject or '*'} until "
                f"{record.until:%Y-%m-%d %H:%M:%S} UTC\nby {record.created_by}: {record.reason}")
    if audit:
        text.append(f"\naudit: {audit}", style="dim")
    return text


class SilenceRequest:
    """What the operator asked for: patterns, a duration (checked) and a reason."""

    def __init__(self, rule: str | None, subject: str | None, text: str, duration: timedelta, reason: str) -> None:
        self.rule, self.subject, self.text, self.duration, self.reason = rule, subject, text, duration, reason


class SilenceScreen(ModalScreen[SilenceRequest | None]):
    """Silence: rule and subject patterns (prefilled from the alert; ``*`` or empty: any),
    a duration such as ``2h`` or ``1h30m``, and a reason. A bad duration or a missing
    reason is said here and nothing is sent; ``esc`` cancels."""

    DEFAULT_CSS = """
    SilenceScreen { align: center middle; }
    SilenceScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $primary; padding: 0 1;
                               background: $surface; }
    SilenceScreen Input { margin-bottom: 1; }
    SilenceScreen #error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, rule: str | None, subject: str | None) -> None:
        super().__init__()
        self._rule, self._subject = rule, subject

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Silence alerts (enter: silence, tab: next, esc: cancel)", style="bold"))
            yield Label("rule pattern (* or empty: any rule)")
            yield Input(value=self._rule or "", id="rule", compact=True)
            yield Label("subject pattern (* or empty: any subject)")
            yield Input(value=self._subject or "", id="subject", compact=True)
            yield Label("for how long (90s, 30m, 2h, 1d, 1h30m)")
            yield Input(placeholder="2h", id="for", compact=True)
            yield Label("reason (kept in the audit trail)")
            yield Input(id="reason", compact=True)
            yield Static("", id="error")

    def on_mount(self) -> None:
        self.query_one("#for", Input).focus()

    def value(self, id: str) -> str:
        return self.query_one(f"#{id}", Input).value.strip()

    def error(self, message: str, field: str) -> None:
        self.query_one("#error", Static).update(message)
        self.query_one(f"#{field}", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        rule = None if self.value("rule") in ("", "*") else self.value("rule")
        subject = None if self.value("subject") in ("", "*") else self.value("subject")
        if rule is None and subject is None:
            rule = "*"  # every alert: the store takes "*" for "everything"
        text = self.value("for")
        try:
            duration = parse_duration(text, "for", label="duration")
        except InvalidInput as exc:
            self.error(f"{exc.message}: expected {exc.expected}", "for")
            return
        reason = self.value("reason")
        if not reason:
            self.error("a reason is needed: it is kept with the silence and in the audit trail", "reason")
            return
        self.dismiss(SilenceRequest(rule, subject, text, duration, reason))

    def action_cancel(self) -> None:
        self.dismiss(None)


def silence_state(s: SilenceRecord) -> Text:
    if s.lifted_at is not None:
        return Text(f"lifted {s.lifted_at:%m-%d %H:%M} by {s.lifted_by}", style="dim")
    if not s.active(utcnow()):
        return Text("expired", style="dim")
    return Text("in force", style="bold yellow")


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
