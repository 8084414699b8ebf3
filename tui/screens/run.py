"""One tracking run: what it is (experiment, status, times, code and data it came from),
its params, its metrics (latest value and how many points), and a chart of the history
of the metric under the cursor (every logged step). A finished run is read once; a
running one on every refresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from mlops_lite.records import RunRecord
from mlops_lite.tracking.records import MetricPoint
from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row

MAX_CHARTED = 50  # metrics whose history is read (a run logs a handful; a sweep may log many)
RUN_STYLES = {"finished": "green", "running": "yellow", "failed": "bold red", "crashed": "bold red"}


def when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%m-%d %H:%M:%S}"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "-"
    if end is None:
        return "running"
    seconds = max((end - start).total_seconds(), 0.0)
    return f"{seconds:.1f}s" if seconds < 90 else f"{seconds / 60:.1f}m"


def metrics_text(metrics: dict[str, float], limit: int = 3) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())[:limit]) or "-"


def run_status(status: str) -> Text:
    return Text(status, style=RUN_STYLES.get(status, ""))


@dataclass(frozen=True)
class RunView:
    run: RunRecord
    history: dict[str, tuple[MetricPoint, ...]]


class RunScreen(ConsoleScreen):
    TITLE = "Run"
    DEFAULT_CSS = """
    RunScreen #summary { height: auto; max-height: 4; padding: 0 1; }
    RunScreen #run-body { height: 1fr; }
    RunScreen #run-tables { width: 42; max-width: 50%; }
    RunScreen PlotextPlot { width: 1fr; height: 1fr; min-height: 6; }
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.view: RunView | None = None
        self.charted: str | None = None

    def crumb(self) -> str:
        return self.view.run.name if self.view is not None else self.run_id[:8]

    def body(self) -> ComposeResult:
        yield Static("", id="summary")
        with Horizontal(id="run-body"):
            with Vertical(id="run-tables"):
                yield FilterTable((("key", "Metric"), ("value", "Latest"), ("points", "Pts")), id="metrics",
                                  title="Metrics")
                yield FilterTable((("key", "Param"), ("value", "Value")), id="params", title="Params")
            yield PlotextPlot(id="chart")

    def load(self) -> RunView:
        known = self.view
        if known is not None and known.run.ended_at is not None:
            return known  # a finished run no longer changes
        run = self.platform.tracking.get_run(self.run_id)
        history = {key: tuple(self.platform.tracking.metric_history(self.run_id, key))
                   for key in sorted(run.metrics)[:MAX_CHARTED]}
        return RunView(run, history)

    def show(self, data: RunView) -> None:
        self.view = data
        run = data.run
        summary = Text()
        summary.append(f"{run.name}", style="bold")
        summary.append(f"  {run.experiment} · ")
        summary.append_text(run_status(run.status))
        summary.append(f" · started {when(run.started_at)} · took {duration(run.started_at, run.ended_at)}\n")
        code = f"git {run.git_commit[:10]}{' (dirty)' if run.git_dirty else ''}" if run.git_commit else "git -"
        data_commits = ", ".join(c[:10] for c in run.data_commits) or "-"
        summary.append(f"{code} · data {data_commits} · id {run.id}", style="dim")
        self.query_one("#summary", Static).update(summary)
        self.query_one("#metrics", FilterTable).set_rows(
            Row(key, (key, f"{value:.6g}", str(len(data.history.get(key, ())))))
            for key, value in sorted(run.metrics.items()))
        self.query_one("#params", FilterTable).set_rows(
            Row(key, (key, value)) for key, value in sorted(run.params.items()))
        self.chart(self.query_one("#metrics", FilterTable).cursor_key)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table.parent
        if isinstance(table, FilterTable) and table.id == "metrics" and event.row_key.value is not None:
            self.chart(str(event.row_key.value))

    def chart(self, key: str | None) -> None:
        """Draw ``key``'s history (UI thread: from what ``load`` read)."""
        plot = self.query_one("#chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        self.charted = key
        points = self.view.history.get(key, ()) if self.view is not None and key is not None else ()
        if not points:
            plt.title("no metric history" if key is None else f"{key}: no points")
        else:
            steps = [p.step for p in points]
            values = [p.value for p in points]
            if len(points) == 1:
                plt.scatter(steps, values, marker="dot")
            else:
                plt.plot(steps, values, marker="braille")
            plt.title(f"{key} by step ({len(points)} point{'s' if len(points) != 1 else ''})")
            plt.xlabel("step")
        plot.refresh()

    def open_row(self, key: str, table: FilterTable) -> None:
        if table.id == "metrics":
            self.chart(key)

    def chart_points(self) -> list[tuple[int, float]]:
        """What the chart draws now (for tests and the palette's help)."""
        if self.view is None or self.charted is None:
            return []
        return [(p.step, p.value) for p in self.view.history.get(self.charted, ())]
