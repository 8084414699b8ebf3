"""Pulse: every deployment at a glance, live; ``enter`` drills into one.

Each row: the deployment, its strategy and traffic split (primary and candidate versions,
the candidate's weight), the newest window's requests a second, p50 and p99 latency and
error rate, sparklines of rate, p99 and errors over the last windows, its drift status and
its open alerts.

One load reads everything for every deployment in three calls, however many there are:
``deployments.list()``, ``alerts.open_alerts()`` and one ``monitoring.query`` over the
``predictions`` and ``errors`` views grouped by deployment (and slot) and window
(``window_figures``). Strings and sparklines are made in ``load`` (the thread), so
``show`` only hands rows to the table.

Sparklines are unicode blocks in table cells rather than Textual ``Sparkline`` widgets:
the pulse stays one ``FilterTable`` (``/`` filters it, the cursor survives a refresh, an
unchanged refresh costs nothing), and a hundred deployments are a hundred rows, not three
hundred widgets to mount and lay out.

Over HTTP the prediction log is read with the operator role (its rows hold the features
served); a viewer's pulse shows deployments and alerts, and says the figures need it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from mlops_lite.errors import PermissionDenied
from tui.charts import Windows, spark
from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SEVERITY_STYLE = {"info": "blue", "warning": "yellow", "critical": "bold red"}


@dataclass
class Figures:
    """One deployment's (or one slot's) figures per window, oldest first (None: nothing
    logged in that window)."""

    requests: list[int]
    errors: list[int]
    p50: list[float | None]
    p99: list[float | None]

    @classmethod
    def empty(cls, count: int) -> Figures:
        return cls([0] * count, [0] * count, [None] * count, [None] * count)

    def rate(self, width_s: float) -> list[float | None]:
        """Requests a second per window (None where nothing was served or failed)."""
        return [(n / width_s) if n or e else None for n, e in zip(self.requests, self.errors, strict=True)]

    def error_rate(self) -> list[float | None]:
        return [(e / (n + e)) if n + e else None for n, e in zip(self.requests, self.errors, strict=True)]


@dataclass
class WindowFigures:
    """Per deployment: ``total`` (every answering slot together) and ``slots`` (primary,
    canary) of the windows."""

    windows: Windows
    total: dict[str, Figures] = field(default_factory=dict)
    slots: dict[str, dict[str, Figures]] = field(default_factory=dict)

    def of(self, deployment: str) -> Figures:
        return self.total.get(deployment) or Figures.empty(self.windows.count)


def window_figures(platform: Any, windows: Windows, deployment: str | None = None) -> WindowFigures:
    """Requests, errors and p50/p99 latency per window, per deployment (all of them, or
    ``deployment``) in total and per slot, in one monitoring query. A request is counted
    once whatever its rows (a batch logs a row per instance, each with the request's
    latency); shadow answers serve nobody and are left out. PermissionDenied when the
    caller may not read the prediction log."""
    only = f" AND deployment = '{deployment}'" if deployment is not None else ""
    index = windows.index_sql()
    sql = (
        "WITH req AS (SELECT deployment, coalesce(slot, 'primary') AS slot, request_id, min(\"at\") AS \"at\", "
        "max(latency_ms) AS latency_ms FROM predictions "
        f"WHERE date >= DATE '{windows.start.date().isoformat()}' AND {windows.where_sql()} "
        f"AND coalesce(slot, 'primary') <> 'shadow'{only} GROUP BY deployment, slot, request_id), "
        f"served AS (SELECT deployment, slot, {index} AS w, count(*) AS requests, "
        "quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.99) AS p99 "
        "FROM req GROUP BY GROUPING SETS ((deployment, w), (deployment, slot, w))), "
        "failed AS (SELECT deployment, slot, w, sum(count) AS errors FROM (SELECT deployment, coalesce(slot, '') "
        f"AS slot, {index} AS w, count FROM errors WHERE {windows.where_sql()}{only}) "
        "GROUP BY GROUPING SETS ((deployment, w), (deployment, slot, w))) "
        "SELECT deployment, slot, w, coalesce(s.requests, 0)::BIGINT AS requests, "
        "coalesce(f.errors, 0)::BIGINT AS errors, s.p50, s.p99 "
        "FROM served s FULL OUTER JOIN failed f USING (deployment, slot, w)")
    table = platform.monitoring.query(sql)
    out = WindowFigures(windows)
    count = windows.count
    for row in table.to_pylist():
        w = row["w"]
        if w is None or not 0 <= w < count:
            continue
        name, slot = row["deployment"], row["slot"]
        if slot is None:
            figures = out.total.setdefault(name, Figures.empty(count))
        elif slot in ("primary", "canary"):
            figures = out.slots.setdefault(name, {}).setdefault(slot, Figures.empty(count))
        else:
            continue  # failures before a slot was picked count in the total only
        figures.requests[w] += int(row["requests"])
        figures.errors[w] += int(row["errors"])
        if row["p50"] is not None:
            figures.p50[w], figures.p99[w] = float(row["p50"]), float(row["p99"])
    return out


def split_text(record: Any) -> str:
    """Who answers: ``1.0.0`` alone, ``1.0.0 90% · 1.1.0 10%`` for a canary, the live and
    standby slots of a blue-green one, the mirror of a shadow."""
    primary = record.version
    candidate = record.candidate_version
    if record.candidate_model and record.candidate_model != record.model:
        candidate = f"{record.candidate_model}@{candidate}"
    if record.strategy == "canary" and record.weight is not None:
        return f"{primary} {1 - record.weight:.0%} · {candidate} {record.weight:.0%}"
    if record.strategy == "blue_green":
        return f"{primary} live ({record.live_slot or 'blue'})" + (f" · {candidate} standby" if candidate else "")
    if record.strategy == "shadow":
        return f"{primary} · {candidate} shadow"
    return primary


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def drift_cell(alerts: Sequence[Any]) -> Text:
    """The deployment's open drift alerts, or 'no alert' (no open drift alert: the last
    monitoring pass, if any, found none above the rules)."""
    drift = [a for a in alerts if a.metric.startswith("drift.")]
    if not drift:
        return Text("no alert", style="dim")
    worst = max(drift, key=lambda a: (a.state == "firing", a.value))
    what = "share" if worst.metric == "drift.share" else "psi"
    return Text(f"{worst.state} {what} {worst.value:.2f}", style="bold red" if worst.state == "firing" else "yellow")


def alerts_cell(alerts: Sequence[Any]) -> Text:
    if not alerts:
        return Text("0", style="dim")
    worst = max(alerts, key=lambda a: SEVERITY_RANK.get(a.severity, 0))
    return Text(f"{len(alerts)} {worst.severity}", style=SEVERITY_STYLE.get(worst.severity, ""))


@dataclass(frozen=True)
class Pulse:
    """What ``show`` puts on the screen, made in ``load``."""

    rows: tuple[Row, ...]
    note: Text
    palette: dict[str, tuple[str, Callable[[], Any]]]


class PulseScreen(ConsoleScreen):
    TITLE = "Pulse"
    COLUMNS = (("name", "Deployment"), ("strategy", "Strategy"), ("split", "Split"), ("rps", "req/s"),
               ("p50", "p50"), ("p99", "p99"), ("err", "err%"), ("rate_trend", "rate"), ("p99_trend", "p99 trend"),
               ("err_trend", "errors"), ("drift", "Drift"), ("alerts", "Alerts"), ("model", "Model"))

    def __init__(self, *, windows: int = 12, width_s: int = 300) -> None:
        super().__init__()
        self.window_count, self.width_s = windows, width_s
        self.figures_refused = False  # the prediction log is the operator's to read over HTTP

    def body(self) -> ComposeResult:
        yield Static("", id="pulse-note")
        yield FilterTable(self.COLUMNS, id="deployments", title="Deployments")

    def load(self) -> Pulse:
        windows = Windows(self.window_count, self.width_s)
        deployments = self.platform.deployments.list()
        by_subject: dict[str, list[Any]] = {}
        for alert in self.platform.alerts.open_alerts():
            by_subject.setdefault(alert.subject, []).append(alert)
        figures: WindowFigures | None = None
        if not self.figures_refused:
            try:
                figures = window_figures(self.platform, windows)
            except PermissionDenied:
                self.figures_refused = True
        return self.build(deployments, by_subject, figures, windows)

    def build(self, deployments: Sequence[Any], by_subject: dict[str, list[Any]], figures: WindowFigures | None,
              windows: Windows) -> Pulse:
        rows = []
        palette: dict[str, tuple[str, Callable[[], Any]]] = {}
        width = float(windows.width_s)
        for d in deployments:
            alerts = by_subject.get(d.name, [])
            if figures is not None:
                f = figures.of(d.name)
                rate, errors = f.rate(width), f.error_rate()
                last_rate, last_errors = rate[-1], errors[-1]
                numbers: tuple[str | Text, ...] = (
                    "-" if last_rate is None else f"{last_rate:.2f}", ms(f.p50[-1]), ms(f.p99[-1]),
                    "-" if last_errors is None else f"{last_errors:.1%}",
                    Text(spark(rate), style="cyan"), Text(spark(f.p99), style="magenta"),
                    Text(spark(errors), style="red"))
            else:
                numbers = ("?",) * 4 + ("",) * 3
            rows.append(Row(d.name, (d.name, d.strategy, split_text(d), *numbers, drift_cell(alerts),
                                     alerts_cell(alerts), f"{d.model} r{d.revision}")))
            palette[f"Deployment {d.name}"] = (f"{d.model}@{d.version} ({d.strategy})", partial(self.open, d.name))
        if figures is None:
            note = Text("req/s, latency and errors need the operator role (the prediction log holds the "
                        "features served)", style="yellow")
        else:
            note = Text(f"newest of {windows.describe()}, until {windows.until:%H:%M:%S} UTC; "
                        f"sparklines oldest → newest", style="dim")
        return Pulse(tuple(rows), note, palette)

    def show(self, data: Pulse) -> None:
        self.query_one("#pulse-note", Static).update(data.note)
        self.query_one(FilterTable).set_rows(data.rows)
        self.console.palette_items.update(data.palette)

    def open_row(self, key: str, table: FilterTable) -> None:
        self.open(key)

    def open(self, name: str) -> None:
        from tui.screens.deployment import DeploymentScreen

        self.console.switch_mode("pulse")
        self.console.push_screen(DeploymentScreen(name))
