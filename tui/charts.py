"""Chart helpers the console's screens share: sparklines for table cells, the windows a
chart's x axis is made of, and plotext charts with alert thresholds drawn.

The API is small on purpose; everything here is pure (no I/O), so a screen computes its
series in ``load`` (a thread) and only draws in ``show``:

- ``spark(values)``: a sparkline as unicode blocks (``▁▂▃▄▅▆▇█``), one character a value;
  ``None`` (no data in that window) is a blank, so a gap reads as a gap, not as a zero.
- ``Windows(count, width_s, end)``: the last ``count`` windows of ``width_s`` seconds
  ending at ``end``, oldest first, and their labels.
- ``Threshold`` and ``thresholds(rules, metric, subject)``: the alert rules' bounds on a
  metric for one deployment, to draw.
- ``plot_lines(plot, ...)`` and ``plot_bars(plot, ...)``: fill a ``PlotextPlot`` (a line
  chart over windows, a bar chart over names) with thresholds as horizontal lines.
- ``window_figures(platform, windows, deployment=None)``: the series these charts are
  made of: requests, errors, p50 and p99 per window, per deployment and per slot
  (``WindowFigures`` of ``Figures``), in one ``platform.monitoring.windows`` call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

BLOCKS = "▁▂▃▄▅▆▇█"


def spark(values: Sequence[float | None], *, floor: float | None = 0.0) -> str:
    """``values`` as a sparkline, scaled from ``floor`` (None: the smallest value) to the
    largest; ``None`` is a blank. All equal values draw the lowest block (a flat line)."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    low = min(present) if floor is None else min(floor, *present)
    high = max(present)
    span = high - low
    out = []
    for value in values:
        if value is None:
            out.append(" ")
        elif span <= 0:
            out.append(BLOCKS[0])
        else:
            out.append(BLOCKS[min(len(BLOCKS) - 1, int((value - low) / span * (len(BLOCKS) - 1) + 0.5))])
    return "".join(out)


@dataclass(frozen=True)
class Windows:
    """``count`` windows of ``width_s`` seconds ending at ``end`` (UTC), oldest first:
    window ``i`` is ``[start + i*width, start + (i+1)*width)``."""

    count: int = 12
    width_s: int = 300
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.end is None:
            object.__setattr__(self, "end", datetime.now(UTC))

    @property
    def until(self) -> datetime:
        assert self.end is not None
        return self.end

    @property
    def start(self) -> datetime:
        return self.until - timedelta(seconds=self.count * self.width_s)

    def labels(self) -> list[str]:
        """Each window's start, as HH:MM (local to UTC), oldest first."""
        return [(self.start + timedelta(seconds=i * self.width_s)).strftime("%H:%M") for i in range(self.count)]

    def describe(self) -> str:
        minutes = self.width_s / 60
        width = f"{minutes:g} min" if minutes >= 1 else f"{self.width_s} s"
        return f"{self.count} windows of {width}"


@dataclass(frozen=True)
class Threshold:
    """A bound an alert rule draws on a chart: ``label`` (the rule's name and condition)."""

    value: float
    label: str
    severity: str = "warning"


def thresholds(rules: Iterable[Any], metric: str, subject: str) -> list[Threshold]:
    """The bounds of the rules (``AlertRule``s) on ``metric`` that apply to ``subject``."""
    return [Threshold(float(r.threshold), f"{r.name}: {r.condition}", r.severity) for r in rules
            if r.metric == metric and (r.subject is None or r.subject == subject)]


_LINE_COLORS = ("cyan", "magenta", "green", "yellow")
_SEVERITY_COLORS = {"critical": "red", "warning": "orange", "info": "gray"}


def plot_lines(plot: Any, title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]],
               limits: Sequence[Threshold] = (), *, unit: str = "") -> None:
    """Draw ``series`` (name -> one value per window, None for no data) over the windows
    ``labels`` on the ``PlotextPlot`` ``plot``, with each of ``limits`` as a horizontal
    line; then ask it to redraw. A chart with no data says so in its title."""
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    drawn = False
    top = 0.0
    for (name, values), color in zip(series.items(), _LINE_COLORS * 4, strict=False):
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            plt.plot(list(xs), list(ys), label=name, color=color, marker="braille")
            top = max(top, *ys)
            drawn = True
    for limit in limits:
        # A bound far above the data would squash the series flat: drawn only when it is
        # within reach (or there is nothing else), and the title says it either way.
        if not drawn or limit.value <= max(top * 3, 1e-9):
            plt.hline(limit.value, _SEVERITY_COLORS.get(limit.severity, "red"))
    bounds = ", ".join(f"{lim.value:g}{unit}" for lim in limits)
    plt.title(f"{title}{' (alert ' + bounds + ')' if bounds else ''}{'' if drawn else ': no data'}")
    n = len(labels)
    if n:
        step = max(1, n // 4)
        ticks = list(range(0, n, step))
        plt.xticks(ticks, [labels[i] for i in ticks])
        plt.xlim(0, n - 1)
    plot.refresh()


def plot_bars(plot: Any, title: str, names: Sequence[str], values: Sequence[float],
              limits: Sequence[Threshold] = ()) -> None:
    """Draw ``values`` as bars over ``names`` on ``plot``, ``limits`` as horizontal lines."""
    plt = plot.plt
    plt.clear_data()
    plt.clear_figure()
    if names:
        plt.bar(list(names), list(values), color="cyan")
        for limit in limits:
            plt.hline(limit.value, _SEVERITY_COLORS.get(limit.severity, "red"))
    bounds = ", ".join(f"{lim.value:g}" for lim in limits)
    plt.title(f"{title}{' (alert ' + bounds + ')' if bounds else ''}{'' if names else ': no data'}")
    plot.refresh()


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
    ``deployment``) in total and per slot: one ``platform.monitoring.windows`` call (a
    viewer may make it: figures only, no logged row)."""
    out = WindowFigures(windows)
    count = windows.count
    for window in platform.monitoring.windows(count=count, width_s=windows.width_s, until=windows.until,
                                              deployment=deployment):
        w = window.window
        if not 0 <= w < count:
            continue
        if window.slot is None:
            figures = out.total.setdefault(window.deployment, Figures.empty(count))
        else:
            figures = out.slots.setdefault(window.deployment, {}).setdefault(window.slot, Figures.empty(count))
        figures.requests[w] += window.requests
        figures.errors[w] += window.errors
        figures.p50[w], figures.p99[w] = window.p50_ms, window.p99_ms
    return out
