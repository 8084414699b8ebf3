"""One flow run: its flow, state, times and parameters, and its log tailed live: every
refresh asks ``platform.flows.logs`` for the lines from the last one seen on (a few
seconds back, since Prefect's log workers send in batches; lines already shown are
skipped by id) and appends what is new. Reading the log needs the operator role over
HTTP; a viewer's console says so in the log pane."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import RichLog, Static

from mlops_lite.errors import BackendUnavailable, MlopsLiteError, PermissionDenied
from mlops_lite.records import FlowLogRecord, FlowRunRecord
from tui.screens.base import ConsoleScreen
from tui.screens.run import duration, when

LATE = timedelta(seconds=5)  # how far back each tail asks again, for lines sent late
MAX_LINES = 2000  # kept in the pane
FLOW_STYLES = {"COMPLETED": "green", "RUNNING": "yellow", "PENDING": "cyan", "SCHEDULED": "cyan", "PAUSED": "cyan",
               "CANCELLING": "magenta", "CANCELLED": "magenta", "FAILED": "bold red", "CRASHED": "bold red"}
LEVEL_STYLES = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}


def flow_state(run: FlowRunRecord) -> Text:
    label = run.state_name if run.state_name.upper() == run.state else f"{run.state_name} ({run.state.lower()})"
    return Text(label, style=FLOW_STYLES.get(run.state, ""))


def flows_unavailable(exc: MlopsLiteError) -> str:
    """What the flows part says instead of its runs or log: plainly, no traceback."""
    if isinstance(exc, PermissionDenied):
        return f"Flow runs: not for this role ({exc.message})"
    if isinstance(exc, BackendUnavailable) and "no Prefect server" in exc.message:
        return "Flow runs: no Prefect server here (`mlops-lite up` runs one beside the API)"
    if isinstance(exc, BackendUnavailable):
        return f"Flow runs: unavailable: {exc.message}"
    return f"Flow runs: {type(exc).__name__}: {exc.message}"


@dataclass(frozen=True)
class FlowRunView:
    run: FlowRunRecord
    lines: tuple[FlowLogRecord, ...]
    problem: str | None  # why the log cannot be read (role, Prefect gone)


class FlowRunScreen(ConsoleScreen):
    TITLE = "Flow run"
    DEFAULT_CSS = """
    FlowRunScreen #summary { height: auto; max-height: 5; padding: 0 1; }
    FlowRunScreen RichLog { height: 1fr; border: round $primary 50%; }
    """

    def __init__(self, run: FlowRunRecord | str) -> None:
        super().__init__()
        # An id alone (from the palette): the record is found by the first load.
        self.flow_run = run if isinstance(run, FlowRunRecord) else FlowRunRecord(
            id=run, name=run[:8], flow="?", state="UNKNOWN", state_name="loading", created=None, started=None,
            ended=None)
        self.seen: set[str] = set()
        self.last_at: datetime | None = None
        self.lines: list[FlowLogRecord] = []
        self.problem: str | None = None

    def crumb(self) -> str:
        return f"{self.flow_run.flow}/{self.flow_run.name}"

    def body(self) -> ComposeResult:
        yield Static("", id="summary")
        log = RichLog(id="log", wrap=True, max_lines=MAX_LINES, auto_scroll=True)
        log.border_title = "Log (tailed)"
        yield log

    def load(self) -> FlowRunView:
        run = self.flow_run
        try:
            for found in self.platform.flows.runs(limit=200, flow=None if run.flow == "?" else run.flow):
                if found.id == run.id:
                    run = found
                    break
            after = None if self.last_at is None else self.last_at - LATE
            lines = tuple(self.platform.flows.logs(run.id, after=after))
        except PermissionDenied as exc:
            return FlowRunView(run, (), f"the log needs the operator role over HTTP ({exc.message})")
        except MlopsLiteError as exc:
            return FlowRunView(run, (), flows_unavailable(exc))
        return FlowRunView(run, lines, None)

    def show(self, data: FlowRunView) -> None:
        self.flow_run = data.run
        run = data.run
        summary = Text()
        summary.append(f"{run.flow}/{run.name}  ", style="bold")
        summary.append_text(flow_state(run))
        summary.append(f" · started {when(run.started or run.created)} · took {duration(run.started, run.ended)}\n")
        params = ", ".join(f"{k}={v}" for k, v in sorted(run.parameters.items())) or "-"
        summary.append(f"params {params}\n", style="dim")
        summary.append(f"id {run.id}{' · tags ' + ', '.join(run.tags) if run.tags else ''}", style="dim")
        self.query_one("#summary", Static).update(summary)
        log = self.query_one("#log", RichLog)
        if data.problem is not None:
            if data.problem != self.problem:
                log.write(Text(data.problem, style="yellow"))
            self.problem = data.problem
            return
        self.problem = None
        for line in data.lines:
            if line.id in self.seen:
                continue
            self.seen.add(line.id)
            self.lines.append(line)
            if self.last_at is None or line.at > self.last_at:
                self.last_at = line.at
            text = Text(f"{line.at:%H:%M:%S} ", style="dim")
            text.append(f"{line.level:<8}", style=LEVEL_STYLES.get(line.level, ""))
            text.append(line.message)
            log.write(text)
