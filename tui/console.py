"""The operator console: a terminal UI an operator runs the platform from, locally or over
SSH, against the home's stores or a running ``mlops-lite up`` (HTTP(S) with a token).

Sections (``1``-``7``, or the command palette ``:``/``ctrl+p``): pulse (every deployment,
live), models, approvals, alerts, data, runs and flows, audit. Each section is a Textual
mode with its own stack: ``enter`` drills into the row under the cursor, ``esc`` goes back
along the breadcrumb. ``/`` filters a table, ``?`` lists the keys of the screen.

It reads and writes the Platform API only (mlops_lite/api), so the same app runs over a
local ``Platform`` and a ``RemotePlatform``; all I/O runs in thread workers (see
``tui/screens/base.py``). Write actions go through ``perform``: the role check (what the
role may not do is hidden; the server enforces it anyway), a confirmation for a
dangerous one, the call in a worker, then the answer (or the server's refusal, with the
gates) and the audit event the action made, kept in the "what did I do" log."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import get_current_worker

from mlops_lite.errors import BackendUnavailable, MlopsLiteError, PermissionDenied, PolicyViolation, Unauthenticated
from mlops_lite.records import Identity
from tui.commands import ConsoleCommands
from tui.roles import Access
from tui.widgets import ConfirmScreen, HelpScreen, ResultScreen

if TYPE_CHECKING:
    from mlops_lite.api import PlatformAPI
    from mlops_lite.records import AuditRecord


@dataclass(frozen=True)
class Section:
    key: str
    mode: str
    title: str


SECTIONS: tuple[Section, ...] = (
    Section("1", "pulse", "Pulse"),
    Section("2", "models", "Models"),
    Section("3", "approvals", "Approvals"),
    Section("4", "alerts", "Alerts"),
    Section("5", "data", "Data"),
    Section("6", "runs", "Runs & flows"),
    Section("7", "audit", "Audit"),
)


@dataclass(frozen=True)
class Done:
    """One action the operator took from this console: the "what did I do" log."""

    at: datetime
    title: str
    target: str
    outcome: str  # "ok" | "refused" | "failed"
    detail: str
    audit: str | None = None  # "seq 42 deployment.promote deployment:loans" when one was found


SCREEN_CLASSES = {"pulse": "PulseScreen", "models": "ModelsScreen", "approvals": "ApprovalsScreen",
                  "alerts": "AlertsScreen", "data": "DataScreen", "runs": "RunsScreen", "audit": "AuditScreen"}


def _mode(name: str) -> Callable[[], Screen[Any]]:
    """A section's first screen, imported when first shown (``tui/screens/<name>.py``)."""
    def make() -> Screen[Any]:
        module = importlib.import_module(f"tui.screens.{name}")
        screen: Screen[Any] = getattr(module, SCREEN_CLASSES[name])()
        return screen
    return make


class OperatorConsole(App[None]):
    """The console over one platform; ``source`` names where it points (``local: HOME``
    or ``remote: URL``)."""

    CSS_PATH = "console.tcss"
    TITLE = "mlops-lite"
    MODES = {name: _mode(name) for name in SCREEN_CLASSES}
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    DEFAULT_MODE = "pulse"
    BINDINGS = [
        *[Binding(s.key, f"section('{s.mode}')", s.title, show=False) for s in SECTIONS],
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("colon", "command_palette", "Command", key_display=":", show=False),
        # Textual adds its ctrl+p only when no binding opens the palette; this one does.
        Binding("ctrl+p", "command_palette", "Command", show=False, priority=True),
        Binding("escape", "go_back", "Back", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, platform: PlatformAPI, *, source: str, refresh_seconds: float = 2.0,
                 read_only: bool = False) -> None:
        super().__init__()
        self.platform = platform
        self.source = source
        self.refresh_seconds = refresh_seconds
        # Until whoami answers the console acts as a viewer: no write action shows.
        self.access = Access(Identity(name="?", role="viewer", kind="unknown"), read_only=True)
        self._read_only = read_only
        self.offline: str | None = None
        self.did: list[Done] = []
        self.opened_at = datetime.now()
        # The command palette's objects and actions: title -> (help, callback). Screens add
        # what they load (tui/commands.py).
        self.palette_items: dict[str, tuple[str, Callable[[], Any]]] = {}

    # --- start ---------------------------------------------------------------------

    def on_mount(self) -> None:
        self.title = "mlops-lite"
        self.sub_title = self.source
        self.load_identity()

    @work(thread=True, exclusive=True, group="identity")
    def load_identity(self) -> None:
        worker = get_current_worker()
        try:
            identity = self.platform.whoami()
        except MlopsLiteError as exc:
            if not worker.is_cancelled:
                self.call_from_thread(self.connection_problem, exc)
            return
        if not worker.is_cancelled:
            self.call_from_thread(self._identified, identity)

    def _identified(self, identity: Identity) -> None:
        self.access = Access(identity, read_only=self._read_only)
        self.refresh_bindings()
        self._refresh_breadcrumb()

    # --- navigation ----------------------------------------------------------------

    def action_section(self, mode: str) -> None:
        self.switch_mode(mode)

    def action_go_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_help(self) -> None:
        screen = self.screen
        own: list[tuple[str, str]] = []
        widgets: list[tuple[str, str]] = []  # the app's and a focused widget's keys (focus, a cursor) come last
        for binding in screen.active_bindings.values():
            if binding.binding.description and binding.enabled:
                entry = (binding.binding.key_display or self.get_key_display(binding.binding),
                         binding.binding.description)
                (own if binding.node is screen else widgets).append(entry)
        keys = [*own, ("enter", "open the row under the cursor"), ("esc", "back along the breadcrumb"),
                ("/", "filter the table"), (":  ctrl+p", "command palette: every object and action"),
                *[(s.key, f"section: {s.title}") for s in SECTIONS], *widgets]
        seen: set[str] = set()
        unique = [(k, d) for k, d in keys if not (k in seen or seen.add(k))]  # type: ignore[func-returns-value]
        self.push_screen(HelpScreen(" › ".join(self.trail(screen)), unique))

    def trail(self, screen: Screen[Any]) -> list[str]:
        """The breadcrumb: the section, then every screen pushed on it, up to ``screen``."""
        parts = ["mlops-lite"]
        for item in self.screen_stack:
            title = getattr(item, "TITLE", "")
            crumb = getattr(item, "crumb", None)
            parts.append(str(crumb() if callable(crumb) else title or type(item).__name__))
            if item is screen:
                break
        return parts

    def status_text(self, screen: Screen[Any] | None = None) -> str:
        if self.offline:
            return f"connection lost: {self.offline} (retrying)"
        return f"{self.source} · {self.access.describe()}"

    def _refresh_breadcrumb(self) -> None:
        update = getattr(self.screen, "update_breadcrumb", None)
        if callable(update):
            update()

    # --- connection ----------------------------------------------------------------

    def connection_problem(self, exc: MlopsLiteError) -> None:
        """A load failed: lost connection or token problems show in the breadcrumb until a
        load succeeds again; other errors as a notification."""
        if isinstance(exc, BackendUnavailable | Unauthenticated):
            first = self.offline is None
            self.offline = str(exc.message)
            if first:
                self.notify(f"connection lost: {exc.message}", severity="error", timeout=5)
        else:
            self.notify(f"{type(exc).__name__}: {exc.message}", severity="error", timeout=5)
        self._refresh_breadcrumb()

    def connection_ok(self) -> None:
        if self.offline is not None:
            self.offline = None
            self.notify("connection back", timeout=3)
            if self.access.identity.kind == "unknown":
                self.load_identity()
            self._refresh_breadcrumb()

    # --- actions -------------------------------------------------------------------

    def perform(self, *, title: str, target: str, role: str, call: Callable[[PlatformAPI], Any],
                confirm: str | None = None, describe: Callable[[Any], Any] | None = None,
                audit_object: str | None = None, after: Callable[[Any], None] | None = None,
                model: str | None = None, repository: str | None = None) -> None:
        """Take a write action: refuse it here when the role may not (the server would
        too), ask ``confirm`` first when given (dangerous actions), run ``call(platform)``
        in a worker, then show what it answered (``describe(result)``) and the latest
        audit event about ``audit_object``, or the refusal with the gates; log it."""
        if not self.access.can(role, model=model, repository=repository):
            self.notify(f"{title}: needs the {role} role; you are {self.access.describe()}", severity="error")
            return

        def go(confirmed: bool | None = True) -> None:
            if confirmed:
                self._perform(title, target, call, describe, audit_object, after)

        if confirm is not None:
            self.push_screen(ConfirmScreen(title, confirm), go)
        else:
            go()

    @work(thread=True, group="action")
    def _perform(self, title: str, target: str, call: Callable[[PlatformAPI], Any],
                 describe: Callable[[Any], Any] | None, audit_object: str | None,
                 after: Callable[[Any], None] | None) -> None:
        try:
            result = call(self.platform)
        except MlopsLiteError as exc:
            outcome = "refused" if isinstance(exc, PolicyViolation | PermissionDenied) else "failed"
            self.call_from_thread(self._performed, title, target, outcome, describe_error(exc), None, None, None)
            return
        event = None
        if audit_object is not None:
            try:
                events = self.platform.audit.about(audit_object)
                event = events[-1] if events else None
            except MlopsLiteError:
                event = None  # a viewer's console may not read the chain: the action still happened
        body = describe(result) if describe is not None else Text(str(result))
        self.call_from_thread(self._performed, title, target, "ok", body, event, after, result)

    def _performed(self, title: str, target: str, outcome: str, body: Any, event: AuditRecord | None,
                   after: Callable[[Any], None] | None, result: Any) -> None:
        audit = f"seq {event.seq} {event.action} {event.object} by {event.actor}" if event is not None else None
        self.did.append(Done(datetime.now(), title, target, outcome, _plain(body), audit))
        shown = Group(body, Text(f"\naudit: {audit}", style="dim")) if audit else body
        label = {"ok": "done", "refused": "refused", "failed": "failed"}[outcome]
        self.push_screen(ResultScreen(f"{title} ({target}): {label}", shown, failed=outcome != "ok"))
        if after is not None and outcome == "ok":
            after(result)
        reload = getattr(self.screen_stack[-2] if len(self.screen_stack) > 1 else self.screen, "reload", None)
        if callable(reload):
            reload()


def describe_error(exc: MlopsLiteError) -> Any:
    """The server's refusal as the operator should read it: the message, and for a policy
    refusal every gate with what it measured against what bound."""
    message = Text(f"{type(exc).__name__}: {exc.message}", style="bold red")
    gates = (exc.details or {}).get("gates") if isinstance(exc, PolicyViolation) else None
    if not gates:
        return message
    table = Table("gate", "passed", "measured", "bound", "detail", expand=True)
    for gate in gates:
        table.add_row(str(gate.get("gate")), "yes" if gate.get("passed") else "NO", _short(gate.get("measured")),
                      _short(gate.get("bound")), _short(gate.get("detail"), 200))
    return Group(message, table)


def _short(value: Any, limit: int = 40) -> str:
    text = "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _plain(body: Any) -> str:
    """What an answer says, as one line of text for the "what did I do" log."""
    if isinstance(body, Text):
        return body.plain
    if isinstance(body, str):
        return body
    from io import StringIO

    from rich.console import Console

    out = Console(file=StringIO(), width=200, color_system=None, legacy_windows=False)
    out.print(body)
    text = "".join(" " if "\u2500" <= ch <= "\u257f" else ch for ch in out.file.getvalue())  # type: ignore[attr-defined]
    return " ".join(text.split())[:500]


def run_console(platform: PlatformAPI, *, source: str, refresh_seconds: float = 2.0, read_only: bool = False) -> None:
    """Run the console in this terminal until the operator quits."""
    OperatorConsole(platform, source=source, refresh_seconds=refresh_seconds, read_only=read_only).run()
