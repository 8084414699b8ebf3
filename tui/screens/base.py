"""The screen every view of the console is: a breadcrumb, a body, the footer of its keys,
and a refresh that never blocks input.

A screen says what to read (``load``, run in a thread worker: every facet call is I/O,
local or over HTTP) and how to show it (``show``, on the UI thread, which only fills
widgets). It refreshes every ``console.refresh_seconds`` while it is the screen on top:
a modal above it (a confirmation, a prompt, the help) or a screen pushed over it pauses
its timer, and a tick is skipped while a load is still in flight, so a slow server never
piles threads up. A failed load shows in the breadcrumb (connection lost, retrying) and
the next good one clears it.

Write actions are bindings whose role ``ACTION_ROLES`` names: ``check_action`` hides
those the operator's role may not take (a viewer sees none, an operator no approver's);
the server still enforces every rule, and ``console.perform`` runs them (confirmation,
the gates' answer, the audit event, the "what did I do" log)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer
from textual.worker import get_current_worker

from mlops_lite.errors import MlopsLiteError
from tui.widgets import Breadcrumb, FilterTable

if TYPE_CHECKING:
    from mlops_lite.api import PlatformAPI
    from tui.console import OperatorConsole

LOAD_GROUP = "load"


class ConsoleScreen(Screen[None]):
    """Subclass: set ``TITLE``, write ``body``, ``load`` and ``show``; list write actions'
    roles in ``ACTION_ROLES`` (action name, without ``action_``, to the role it needs)."""

    TITLE: ClassVar[str] = ""
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("r", "refresh_now", "Refresh")]
    ACTION_ROLES: ClassVar[dict[str, str]] = {}
    AUTO_REFRESH: ClassVar[bool] = True
    AUTO_FOCUS = "FilterTable DataTable"

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.loaded = False
        self.load_error: str | None = None

    # --- what a screen writes ------------------------------------------------------

    def body(self) -> ComposeResult:
        """The widgets between the breadcrumb and the footer."""
        yield from ()

    def load(self) -> Any:
        """Read what the screen shows. Runs in a thread: block freely, touch no widget."""
        return None

    def show(self, data: Any) -> None:
        """Fill the widgets with what ``load`` read. Runs on the UI thread: no I/O."""

    def open_row(self, key: str, table: FilterTable) -> None:
        """``enter`` on a row of ``table``: drill into it (push a screen)."""

    def scope(self) -> dict[str, str]:
        """The object under the cursor, for grants: ``{"model": ...}`` or ``{"repository": ...}``."""
        return {}

    # --- the frame -----------------------------------------------------------------

    @property
    def console(self) -> OperatorConsole:
        return self.app  # type: ignore[return-value]

    @property
    def platform(self) -> PlatformAPI:
        return self.console.platform

    def compose(self) -> ComposeResult:
        yield Breadcrumb(id="breadcrumb")
        yield from self.body()
        yield Footer()

    def on_mount(self) -> None:
        self.update_breadcrumb()
        self.reload()
        if self.AUTO_REFRESH:
            self.set_interval(self.console.refresh_seconds, self._tick, name="refresh")

    def on_screen_resume(self) -> None:
        self.update_breadcrumb()
        if self.loaded:
            self.reload()

    def _tick(self) -> None:
        if self.app.screen is not self:
            return  # a modal or another screen is on top: pause
        if any(w.group == LOAD_GROUP and not w.is_finished for w in self.workers):
            return  # the last load is still in flight
        self.reload()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        table = event.data_table.parent
        if isinstance(table, FilterTable) and event.row_key.value is not None:
            event.stop()
            self.open_row(str(event.row_key.value), table)

    def action_refresh_now(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Load again now (in a thread worker)."""
        self.run_worker(self._load, thread=True, exclusive=True, group=LOAD_GROUP, name=f"load {self.TITLE}")

    def _load(self) -> None:
        worker = get_current_worker()
        try:
            data = self.load()
        except MlopsLiteError as exc:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._failed, exc)
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._loaded, data)

    def _loaded(self, data: Any) -> None:
        self.loaded = True
        self.load_error = None
        self.console.connection_ok()
        self.show(data)
        self.update_breadcrumb()

    def _failed(self, exc: MlopsLiteError) -> None:
        self.load_error = f"{type(exc).__name__}: {exc.message}"
        self.console.connection_problem(exc)
        self.update_breadcrumb()

    def update_breadcrumb(self) -> None:
        try:
            crumb = self.query_one("#breadcrumb", Breadcrumb)
        except Exception:
            return
        crumb.show(self.console.trail(self), self.console.status_text(self))

    # --- role-aware bindings -------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        needed = self.ACTION_ROLES.get(action)
        if needed is None:
            return True
        return self.console.access.can(needed, **self.scope())
