"""Alerts: firing first, then pending, then resolved, each with its value against the
rule's threshold and who acknowledged it; ``enter`` opens one with its evidence.

Actions (operator, as the server's routes require): ``a`` acknowledge the alert under
the cursor, ``s`` silence its rule and subject for a while with a reason, ``l`` the
silences (who made them and why; ``u`` lifts one there). ``f`` cycles the state shown."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
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
VIEWS = ("all", "firing", "pending", "resolved")
LIMIT = 500


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
        state = None if self.view == "all" else self.view
        return self.view, self.platform.alerts.list(state=state, limit=LIMIT), self.platform.alerts.silences()

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
        for a in alerts:
            if a.is_open:
                self.console.palette_items[f"Alert {a.rule} on {a.subject}"] = (
                    f"{a.state} {figure(a)}", partial(self._open_from_palette, a.id))

    def _open_from_palette(self, id: str) -> None:
        self.console.switch_mode("alerts")
        self.console.push_screen(_alert_screen(id))

    def open_row(self, key: str, table: FilterTable) -> None:
        self.app.push_screen(_alert_screen(key))

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
        from tui.screens.alert import SilencesScreen

        self.app.push_screen(SilencesScreen())


def _alert_screen(id: str) -> Any:
    from tui.screens.alert import AlertScreen

    return AlertScreen(id)


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
