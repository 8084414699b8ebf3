"""Runs & flows: the newest tracking runs (status, latest metrics) above the newest flow
runs of the Prefect server beside ``up`` (state, when, how long). ``enter`` on a run opens
its params, metrics and a chart of each metric's history (``tui/screens/run.py``); on a
flow run, its log tailed live (``tui/screens/flow_run.py``).

Flow runs come through ``platform.flows`` (the daemon reads its Prefect server for the
caller's token), so the same screen works locally and over HTTP. With no Prefect server
the flows part says so in a line, and the runs part works as ever."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from mlops_lite.errors import MlopsLiteError
from mlops_lite.records import FlowRunRecord, RunRecord
from tui.screens.base import ConsoleScreen
from tui.screens.flow_run import FlowRunScreen, flow_state, flows_unavailable
from tui.screens.run import RunScreen, duration, metrics_text, run_status, when
from tui.widgets import FilterTable, Row

RUNS = 100
FLOW_RUNS = 50


@dataclass(frozen=True)
class RunsView:
    runs: tuple[RunRecord, ...]
    flows: tuple[FlowRunRecord, ...]
    flows_note: str | None  # why there are no flow runs to show (no Prefect server, ...)


class RunsScreen(ConsoleScreen):
    TITLE = "Runs & flows"
    DEFAULT_CSS = """
    RunsScreen #flows-note { height: auto; max-height: 3; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._flows: dict[str, FlowRunRecord] = {}

    def body(self) -> ComposeResult:
        yield FilterTable((("name", "Run"), ("experiment", "Experiment"), ("status", "Status"),
                           ("started", "Started"), ("metrics", "Latest metrics")), id="runs", title="Runs")
        yield Static("", id="flows-note")
        yield FilterTable((("flow", "Flow"), ("name", "Flow run"), ("state", "State"), ("started", "Started"),
                           ("took", "Took")), id="flows", title="Flow runs")

    def load(self) -> RunsView:
        runs = tuple(self.platform.tracking.list_runs(limit=RUNS))
        try:
            flows, note = tuple(self.platform.flows.runs(limit=FLOW_RUNS)), None
        except MlopsLiteError as exc:  # no Prefect server (or not for this role): say so, keep the runs
            flows, note = (), flows_unavailable(exc)
        return RunsView(runs, flows, note)

    def show(self, data: RunsView) -> None:
        self.query_one("#runs", FilterTable).set_rows(
            Row(r.id, (r.name, r.experiment, run_status(r.status), when(r.started_at), metrics_text(r.metrics)))
            for r in data.runs)
        self.query_one("#flows", FilterTable).set_rows(
            Row(f.id, (f.flow, f.name, flow_state(f), when(f.started or f.created), duration(f.started, f.ended)))
            for f in data.flows)
        note = self.query_one("#flows-note", Static)
        if data.flows_note is not None:
            note.update(Text(data.flows_note, style="yellow"))
        else:
            note.update(Text(f"{len(data.flows)} newest flow runs (Prefect)", style="dim"))
        self._flows = {f.id: f for f in data.flows}
        items = self.console.palette_items
        for r in data.runs:
            items[f"Run {r.name} {r.id[:8]}"] = (f"{r.experiment} · {r.status} · {metrics_text(r.metrics, 2)}",
                                                 partial(open_run, self.console, r.id))
        for f in data.flows:
            items[f"Flow run {f.flow}/{f.name}"] = (f"{f.state_name} · {when(f.started or f.created)}",
                                                    partial(open_flow_run, self.console, f))

    def open_row(self, key: str, table: FilterTable) -> None:
        if table.id == "flows":
            open_flow_run(self.console, self._flows.get(key, key), switch=False)
        else:
            open_run(self.console, key, switch=False)


def open_run(console: Any, run_id: str, *, switch: bool = True) -> None:
    """One run's params, metrics and their charts, in the runs section."""
    if switch and console.current_mode != "runs":
        console.switch_mode("runs")
    console.push_screen(RunScreen(run_id))


def open_flow_run(console: Any, run: FlowRunRecord | str, *, switch: bool = True) -> None:
    """One flow run (its record, or its id alone), its log tailed live, in the runs section."""
    if switch and console.current_mode != "runs":
        console.switch_mode("runs")
    console.push_screen(FlowRunScreen(run))
