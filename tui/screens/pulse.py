"""Pulse: every deployment at a glance, live; ``enter`` drills into one.

Each row: the deployment, its strategy and traffic split (primary and candidate versions,
the candidate's weight), the newest window's requests a second, p50 and p99 latency and
error rate, sparklines of rate, p99 and errors over the last windows, its drift status and
its open alerts.

One load reads everything for every deployment in three calls, however many there are:
``deployments.list()``, ``alerts.open_alerts()`` and ``monitoring.windows()`` (requests,
failures and latency per deployment, slot and window: ``tui.charts.window_figures``). Strings and sparklines are made in ``load`` (the thread), so
``show`` only hands rows to the table.

Sparklines are unicode blocks in table cells rather than Textual ``Sparkline`` widgets:
the pulse stays one ``FilterTable`` (``/`` filters it, the cursor survives a refresh, an
unchanged refresh costs nothing), and a hundred deployments are a hundred rows, not three
hundred widgets to mount and lay out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from tui.charts import WindowFigures, Windows, spark, window_figures
from tui.screens.base import ConsoleScreen
from tui.screens.deployment import DeploymentScreen, ms, split_text
from tui.widgets import FilterTable, Row

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SEVERITY_STYLE = {"info": "blue", "warning": "yellow", "critical": "bold red"}


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
               ("p50", "p50"), ("p99", "p99"), ("err", "err%"), ("drift", "Drift"), ("alerts", "Alerts"),
               ("rate_trend", "rate"), ("p99_trend", "p99 trend"), ("err_trend", "errors"), ("model", "Model"))
    # Drift and alerts sit before the sparklines: at 80 columns they are what must show.

    def __init__(self, *, windows: int = 12, width_s: int = 300) -> None:
        super().__init__()
        self.window_count, self.width_s = windows, width_s

    def body(self) -> ComposeResult:
        yield Static("", id="pulse-note")
        yield FilterTable(self.COLUMNS, id="deployments", title="Deployments")

    def load(self) -> Pulse:
        windows = Windows(self.window_count, self.width_s)
        deployments = self.platform.deployments.list()
        by_subject: dict[str, list[Any]] = {}
        for alert in self.platform.alerts.open_alerts():
            by_subject.setdefault(alert.subject, []).append(alert)
        figures = window_figures(self.platform, windows)
        return self.build(deployments, by_subject, figures, windows)

    def build(self, deployments: Sequence[Any], by_subject: dict[str, list[Any]], figures: WindowFigures,
              windows: Windows) -> Pulse:
        rows = []
        palette: dict[str, tuple[str, Callable[[], Any]]] = {}
        width = float(windows.width_s)
        for d in deployments:
            alerts = by_subject.get(d.name, [])
            f = figures.of(d.name)
            rate, errors = f.rate(width), f.error_rate()
            last_rate, last_errors = rate[-1], errors[-1]
            numbers: tuple[str | Text, ...] = (
                "-" if last_rate is None else f"{last_rate:.2f}", ms(f.p50[-1]), ms(f.p99[-1]),
                "-" if last_errors is None else f"{last_errors:.1%}")
            trends: tuple[str | Text, ...] = (Text(spark(rate), style="cyan"), Text(spark(f.p99), style="magenta"),
                                              Text(spark(errors), style="red"))
            rows.append(Row(d.name, (d.name, d.strategy, split_text(d), *numbers, drift_cell(alerts),
                                     alerts_cell(alerts), *trends, f"{d.model} r{d.revision}")))
            palette[f"Deployment {d.name}"] = (f"{d.model}@{d.version} ({d.strategy})", partial(self.open, d.name))
        note = Text(f"req/s, p50, p99, err%: the newest of {windows.describe()}, until {windows.until:%H:%M:%S} "
                    "UTC; sparklines oldest → newest", style="dim")
        return Pulse(tuple(rows), note, palette)

    def show(self, data: Pulse) -> None:
        self.query_one("#pulse-note", Static).update(data.note)
        self.query_one(FilterTable).set_rows(data.rows)
        self.console.palette_items.update(data.palette)

    def open_row(self, key: str, table: FilterTable) -> None:
        self.open(key)

    def open(self, name: str) -> None:
        self.console.switch_mode("pulse")
        self.console.push_screen(DeploymentScreen(name))
