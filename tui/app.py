"""The operator dashboard: models, versions, deployments and recent runs, refreshed live.

It reads the Platform API only (mlops_lite/api: ``registry``, ``deployments``, ``tracking``,
``alerts``), so the same app runs over a local ``Platform`` and an HTTP ``RemotePlatform``. Every facet call
runs in a thread worker; the UI thread only fills tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import get_current_worker

from mlops_lite import (
    DeploymentRecord,
    MlopsLiteError,
    ModelRecord,
    ModelVersionRecord,
    RunRecord,
)
from mlops_lite.api import PlatformAPI
from mlops_lite.clock import as_utc

RECENT_RUNS = 50
REFRESH_GROUP = "refresh"


Row = tuple[str, tuple[str, ...]]
"""A table row: its key (stable across refreshes, so the cursor can follow it) and its cells."""


@dataclass(frozen=True)
class Panel:
    """One of the tables: its widget id, its title and its columns as (key, label)."""

    id: str
    title: str
    columns: tuple[tuple[str, str], ...]


PANELS = (
    Panel("models", "Models",
          (("name", "Model"), ("versions", "Versions"), ("latest", "Latest"), ("created", "Created"))),
    Panel("versions", "Versions",
          (("model", "Model"), ("version", "Version"), ("digest", "Digest"), ("roc_auc", "ROC AUC"),
           ("accuracy", "Accuracy"), ("data_commit", "Data commit"), ("created", "Created"))),
    Panel("deployments", "Deployments",
          (("name", "Deployment"), ("model", "Model"), ("version", "Version"), ("revision", "Revision"),
           ("strategy", "Strategy"), ("updated", "Updated"))),
    Panel("runs", "Recent runs",
          (("name", "Run"), ("status", "Status"), ("started", "Started"), ("roc_auc", "ROC AUC"),
           ("id", "Id"))),
    Panel("alerts", "Alerts",
          (("rule", "Rule"), ("subject", "Subject"), ("state", "State"), ("severity", "Severity"),
           ("value", "Value"), ("since", "Since"), ("ack", "Acknowledged"))),
)


class Dashboard(App[None]):
    """The operator dashboard over one platform; ``source`` names where it points."""

    CSS_PATH = "app.tcss"
    TITLE = "mlops-lite"
    BINDINGS = [
        Binding("r", "refresh_now", "Refresh"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, platform: PlatformAPI, *, source: str, refresh_seconds: float = 2.0) -> None:
        super().__init__()
        self.platform = platform
        self.source = source
        self.refresh_seconds = refresh_seconds
        self.last_refreshed: datetime | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="panels"):
            for panel in PANELS:
                table: DataTable[str] = DataTable(id=panel.id, cursor_type="row", zebra_stripes=True)
                table.border_title = panel.title
                for key, label in panel.columns:
                    table.add_column(label, key=key)
                yield table
        yield Static("loading...", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.source
        self.set_interval(self.refresh_seconds, self._refresh_unless_busy)
        self.load_platform()

    def action_refresh_now(self) -> None:
        self.load_platform()

    def _refresh_unless_busy(self) -> None:
        # A slow remote call must not pile up threads: the timer waits for the one in flight.
        if not any(w.group == REFRESH_GROUP and not w.is_finished for w in self.workers):
            self.load_platform()

    @work(thread=True, exclusive=True, group=REFRESH_GROUP)
    def load_platform(self) -> None:
        """Read every facet off the UI thread, then hand the rows (or the error) to it."""
        worker = get_current_worker()
        try:
            rows = read_rows(self.platform)
        except MlopsLiteError as exc:
            if not worker.is_cancelled:
                self.call_from_thread(self.show_error, exc)
            return
        if not worker.is_cancelled:
            self.call_from_thread(self.show_rows, rows)

    def show_rows(self, rows: dict[str, list[Row]]) -> None:
        for panel in PANELS:
            fill_table(self.query_one(f"#{panel.id}", DataTable), rows[panel.id])
        self.last_refreshed = datetime.now()
        self.error = None
        self._show_status()

    def show_error(self, exc: MlopsLiteError) -> None:
        self.error = f"{type(exc).__name__}: {exc.message}"
        self._show_status()

    def _show_status(self) -> None:
        refreshed = ("last refreshed " + self.last_refreshed.strftime("%H:%M:%S")
                     if self.last_refreshed else "never refreshed")
        status = self.query_one("#status", Static)
        status.set_class(self.error is not None, "error")
        status.update(f"error: {self.error} ({refreshed})" if self.error else refreshed)


def read_rows(platform: PlatformAPI) -> dict[str, list[Row]]:
    """The four tables' rows, keyed by panel id. Blocking: call it off the UI thread."""
    versions = sorted(platform.registry.list_versions(), key=lambda v: v.created_at, reverse=True)
    return {
        "models": [model_row(m) for m in platform.registry.list_models()],
        "versions": [version_row(v) for v in versions],
        "deployments": [deployment_row(d) for d in platform.deployments.list()],
        "runs": [run_row(r) for r in platform.tracking.list_runs(limit=RECENT_RUNS)],
        "alerts": [alert_row(a) for a in _alerts(platform)],
    }


def _alerts(platform: PlatformAPI) -> list[Any]:
    """Open alerts first, then the latest resolved ones."""
    rows = platform.alerts.list(limit=RECENT_RUNS)
    return sorted(rows, key=lambda a: (a.state == "resolved", -a.started_at.timestamp()))


def alert_row(alert: Any) -> Row:
    return alert.id, (alert.rule, alert.subject, alert.state, alert.severity, f"{alert.value:.3g}",
                      when(alert.fired_at or alert.started_at), alert.acknowledged_by or "-")


def fill_table(table: DataTable[str], rows: Sequence[Row]) -> None:
    """Replace the rows, keeping the cursor on the same row key (or the same index)."""
    index = table.cursor_row
    current = _row_key_at(table, index)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if not rows:
        return
    keys = [key for key, _ in rows]
    target = keys.index(current) if current in keys else min(index, len(rows) - 1)
    table.move_cursor(row=target)


def _row_key_at(table: DataTable[str], index: int) -> str | None:
    if not 0 <= index < table.row_count:
        return None
    return table.coordinate_to_cell_key(Coordinate(index, 0)).row_key.value


def model_row(model: ModelRecord) -> Row:
    latest = model.versions[-1] if model.versions else "-"
    return model.name, (model.name, str(len(model.versions)), latest, when(model.created_at))


def version_row(version: ModelVersionRecord) -> Row:
    return f"{version.model}@{version.version}", (
        version.model, version.version, version.digest[:12], metric(version.metrics, "roc_auc"),
        metric(version.metrics, "accuracy"), version.data_commits[0][:12] if version.data_commits else "-",
        when(version.created_at))


def deployment_row(deployment: DeploymentRecord) -> Row:
    return deployment.name, (
        deployment.name, deployment.model, deployment.version, str(deployment.revision),
        deployment.strategy, when(deployment.updated_at))


def run_row(run: RunRecord) -> Row:
    return run.id, (run.name, run.status, when(run.started_at), metric(run.metrics, "roc_auc"), run.id[:8])


def metric(metrics: Mapping[str, object], key: str) -> str:
    value = metrics.get(key)
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def when(moment: datetime) -> str:
    """Local time, to the minute: the stores keep UTC, the operator reads their own clock."""
    return as_utc(moment).astimezone().strftime("%Y-%m-%d %H:%M")


def run_dashboard(platform: PlatformAPI, *, source: str, refresh_seconds: float = 2.0) -> None:
    """Run the dashboard in this terminal until the operator quits."""
    Dashboard(platform, source=source, refresh_seconds=refresh_seconds).run()
