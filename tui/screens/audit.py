"""Audit: the hash-chained record of every change, newest first, with filters, the chain
verified on demand, and "what did I do" (the operator's actions from this console).

- ``/`` narrows the rows shown (any cell); ``f`` edits the field filter:
  ``actor:NAME`` (part of the actor), ``action:PREFIX`` (e.g. ``deployment.``) and
  ``object:KIND:NAME`` (exactly, e.g. ``deployment:loans``: then the whole history of that
  object is read, not only the newest events).
- ``v`` verifies the chain (every link with the audit key, then against its signed
  checkpoints) and names the first bad event as ``mlops-lite audit verify`` does; its
  row is marked.
- ``d`` lists what this console did (``console.did``) with the audit event each made.
- ``enter`` on an event shows it whole (before and after).

Over HTTP the chain needs the operator role (server/audit.py): a viewer's console says so
here, and "what did I do" still works (it is this console's own log)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static
from textual.widgets.data_table import RowDoesNotExist
from textual.worker import get_current_worker

from mlops_lite.errors import MlopsLiteError, PermissionDenied
from mlops_lite.records import AuditRecord, AuditVerdict
from tui.roles import Access
from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, ResultScreen, Row

LIMIT = 1000  # the newest events read when no object is named
FIELDS = ("actor", "action", "object")


@dataclass(frozen=True)
class Fields:
    """The field filter: ``actor`` (part of it, any case), ``action`` (a prefix), ``object`` (exact)."""

    actor: str = ""
    action: str = ""
    object: str = ""

    def keeps(self, event: AuditRecord) -> bool:
        return (self.actor.lower() in event.actor.lower() and event.action.startswith(self.action)
                and (not self.object or event.object == self.object))

    def describe(self) -> str:
        return " ".join(f"{name}:{getattr(self, name)}" for name in FIELDS if getattr(self, name))


def parse_fields(text: str) -> Fields:
    """``actor:alice action:deployment. object:deployment:loans`` -> Fields; ValueError
    naming what is wrong (an unknown field, a word without ``field:``)."""
    found: dict[str, str] = {}
    for word in text.split():
        name, sep, value = word.partition(":")
        if not sep:
            name, sep, value = word.partition("=")
        if not sep or not value:
            raise ValueError(f"{word!r}: write field:value with field one of {', '.join(FIELDS)}")
        if name not in FIELDS:
            raise ValueError(f"unknown field {name!r}: one of {', '.join(FIELDS)}")
        found[name] = value
    return Fields(**found)


@dataclass(frozen=True)
class AuditView:
    events: tuple[AuditRecord, ...]
    count: int | None
    refused: str | None = None  # the server's refusal (a viewer over HTTP)


@dataclass(frozen=True)
class Verdict:
    verdict: AuditVerdict
    first_bad: AuditRecord | None


def verdict_text(result: Verdict) -> Text:
    """As ``mlops-lite audit verify`` says it."""
    verdict = result.verdict
    if verdict.verified:
        text = Text("audit chain verifies: ", style="bold green")
        text.append(f"{verdict.events} events")
        signed = verdict.checkpoint
        if signed is not None:
            text.append(f"; checkpoint {signed.id} signs seq 1..{signed.seq}, "
                        f"{verdict.events - signed.seq} newer events not yet signed")
        return text
    text = Text("audit chain does NOT verify:", style="bold red")
    for problem in verdict.problems:
        text.append(f"\n  - {problem}")
    if not verdict.problems and result.first_bad is not None:
        bad = result.first_bad
        text.append(f"\n  - event seq {bad.seq} ({bad.action} on {bad.object}) does not verify with the audit key")
    return text


class AuditScreen(ConsoleScreen):
    TITLE = "Audit"
    BINDINGS = [Binding("f", "fields", "Fields"), Binding("v", "verify", "Verify"),
                Binding("d", "did", "What did I do")]
    ACTION_ROLES = {"verify": "operator"}
    DEFAULT_CSS = """
    AuditScreen #fields { height: 1; margin: 0 1; }
    AuditScreen #verdict { height: auto; max-height: 6; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.fields = Fields()
        self.view: AuditView | None = None
        self.result: Verdict | None = None
        self._events: dict[str, AuditRecord] = {}

    def body(self) -> ComposeResult:
        yield Input(placeholder="f: actor:NAME action:PREFIX object:KIND:NAME (enter applies)", id="fields",
                    compact=True)
        yield Static(Text("v verifies the chain · d: what did I do", style="dim"), id="verdict")
        yield FilterTable((("seq", "Seq"), ("at", "At (UTC)"), ("actor", "Actor"), ("action", "Action"),
                           ("object", "Object")), id="events", title="Audit chain")

    def load(self) -> AuditView:
        fields = self.fields
        audit = self.platform.audit
        try:
            if fields.object:
                events = tuple(reversed(audit.about(fields.object, action_prefix=fields.action)))
            else:
                events = tuple(audit.events(limit=LIMIT))
        except PermissionDenied as exc:
            try:
                count: int | None = audit.count()
            except MlopsLiteError:
                count = None
            return AuditView((), count, refused=exc.message)
        return AuditView(events, audit.count())

    def show(self, data: AuditView) -> None:
        self.view = data
        table = self.query_one("#events", FilterTable)
        if data.refused is not None:
            table.border_title = "Audit chain: not for this role"
            self.query_one("#verdict", Static).update(Text(
                f"The audit chain needs the operator role over HTTP; you are {self.console.access.describe()} "
                f"({data.refused}).{f' It holds {data.count} events.' if data.count is not None else ''} "
                "d: what you did from this console.", style="yellow"))
            table.set_rows(())
            return
        shown = [e for e in data.events if self.fields.keeps(e)]
        self._events = {str(e.seq): e for e in shown}
        bad = self.result.first_bad.seq if self.result is not None and self.result.first_bad is not None else None
        table.set_rows(Row(str(e.seq), (Text(str(e.seq), style="bold red" if e.seq == bad else ""),
                                        f"{e.at:%m-%d %H:%M:%S}", e.actor,
                                        Text(e.action, style="bold red" if e.seq == bad else ""), e.object))
                       for e in shown)
        where = f" · {self.fields.describe()}" if self.fields.describe() else ""
        total = f" of {data.count}" if data.count is not None else ""
        table.border_title = f"Audit chain: {len(shown)}{total} events{where}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "verify":  # a read: a read-only console verifies too, as its role allows
            return Access(self.console.access.identity).can("operator")
        return super().check_action(action, parameters)

    # --- the field filter ----------------------------------------------------------

    def action_fields(self) -> None:
        self.query_one("#fields", Input).focus()

    def key_escape(self) -> bool:
        if self.focused is self.query_one("#fields", Input):
            self.query_one("#events", FilterTable).focus_table()
            return True
        return False

    @on(Input.Submitted, "#fields")
    def _fields_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            self.fields = parse_fields(event.value)
        except ValueError as exc:
            self.query_one("#verdict", Static).update(Text(f"field filter: {exc}", style="bold red"))
            return
        self.query_one("#verdict", Static).update(Text(
            f"filter: {self.fields.describe() or 'none'}", style="dim"))
        self.query_one("#events", FilterTable).focus_table()
        self.reload()

    # --- verify --------------------------------------------------------------------

    def action_verify(self) -> None:
        self.query_one("#verdict", Static).update(Text("verifying the chain…", style="dim"))
        self._verify()

    @work(thread=True, exclusive=True, group="verify")
    def _verify(self) -> None:
        worker = get_current_worker()
        try:
            result: Verdict | str = Verdict(self.platform.audit.verify_signed(), self.platform.audit.verify())
        except MlopsLiteError as exc:
            result = f"{type(exc).__name__}: {exc.message}"
        if not worker.is_cancelled:
            self.app.call_from_thread(self._verified, result)

    def _verified(self, result: Verdict | str) -> None:
        verdict = self.query_one("#verdict", Static)
        if isinstance(result, str):
            verdict.update(Text(f"cannot verify: {result}", style="bold red"))
            return
        self.result = result
        verdict.update(verdict_text(result))
        if self.view is not None:
            self.show(self.view)
        if result.first_bad is not None:
            table = self.query_one("#events", FilterTable).table
            try:
                table.move_cursor(row=table.get_row_index(str(result.first_bad.seq)))
            except RowDoesNotExist:  # the bad event is not among the rows shown (filtered, or older)
                pass

    # --- drill-down ----------------------------------------------------------------

    def action_did(self) -> None:
        self.app.push_screen(DidScreen())

    def open_row(self, key: str, table: FilterTable) -> None:
        event = self._events.get(key)
        if event is not None:
            self.app.push_screen(ResultScreen(f"audit event seq {event.seq}: {event.action}", event_body(event)))


def event_body(event: AuditRecord) -> Group:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    for name, value in (("seq", str(event.seq)), ("id", event.id), ("at", event.at.isoformat()),
                        ("actor", event.actor), ("action", event.action), ("object", event.object),
                        ("hash", event.hash), ("prev_hash", event.prev_hash)):
        table.add_row(name, value)
    return Group(table, Text("\nbefore", style="bold"), Text(_json(event.before)),
                 Text("after", style="bold"), Text(_json(event.after)))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str) if value else "-"


class DidScreen(ConsoleScreen):
    """What this console did since it opened: each action, its outcome, the audit event."""

    TITLE = "What did I do"

    def __init__(self) -> None:
        super().__init__()
        self._done: tuple[Any, ...] = ()

    def body(self) -> ComposeResult:
        yield FilterTable((("at", "At"), ("title", "Action"), ("target", "Target"), ("outcome", "Outcome"),
                           ("audit", "Audit event")), id="did", title="What did I do (this console)")

    def load(self) -> tuple[Any, ...]:
        return tuple(self.console.did)  # this console's own log: no I/O

    def show(self, data: tuple[Any, ...]) -> None:
        styles = {"ok": "green", "refused": "bold red", "failed": "bold red"}
        table = self.query_one(FilterTable)
        table.border_title = f"What did I do: {len(data)} action(s) since {self.console.opened_at:%H:%M:%S}"
        table.set_rows(Row(str(i), (f"{d.at:%H:%M:%S}", d.title, d.target, Text(d.outcome, style=styles.get(
            d.outcome, "")), d.audit or "-")) for i, d in reversed(list(enumerate(data))))
        self._done = data

    def open_row(self, key: str, table: FilterTable) -> None:
        done = self._done[int(key)]
        body = Text(f"{done.detail}\n\naudit: {done.audit or '-'}")
        self.app.push_screen(ResultScreen(f"{done.title} ({done.target}): {done.outcome}", body,
                                          failed=done.outcome != "ok"))
