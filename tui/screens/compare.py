"""Two versions of one model side by side (``registry.compare_versions``): metric deltas
(b - a), the signature's changes, the data commits and the params that changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from mlops_lite.records import ModelVersionRecord, VersionComparison
from tui.screens.base import ConsoleScreen

# Metrics where a lower figure is the better one (their deltas are coloured the other way).
LOWER_IS_BETTER = ("rmse", "mae", "mse", "log_loss", "demographic_parity_difference", "parity_max_abs_diff")


@dataclass(frozen=True)
class CompareView:
    comparison: VersionComparison
    a: ModelVersionRecord
    b: ModelVersionRecord


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else str(value)


class CompareScreen(ConsoleScreen):
    TITLE = "Compare"
    AUTO_REFRESH = False  # versions are immutable
    AUTO_FOCUS = "VerticalScroll"

    DEFAULT_CSS = "CompareScreen #comparison { padding: 0 1; }"

    def __init__(self, model: str, a: str, b: str) -> None:
        super().__init__()
        self.model, self.a, self.b = model, a, b

    def crumb(self) -> str:
        return f"{self.a} ↔ {self.b}"

    def body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("comparing…", style="dim"), id="comparison")

    def load(self) -> CompareView:
        registry = self.platform.registry
        return CompareView(registry.compare_versions(self.model, self.a, self.b),
                           registry.get_version(self.model, self.a), registry.get_version(self.model, self.b))

    def show(self, data: CompareView) -> None:
        self.query_one("#comparison", Static).update(render_comparison(data))


def render_comparison(data: CompareView) -> Group:
    c, a, b = data.comparison, data.a, data.b
    parts: list[Any] = [Text(f"{c.model}: {c.b} against {c.a} (deltas are {c.b} - {c.a})", style="bold")]
    metrics = Table("metric", c.a, c.b, "delta", title="metrics", title_justify="left", expand=True)
    for name in sorted({*a.metrics, *b.metrics}):
        delta = c.metric_deltas.get(name)
        style = ""
        if isinstance(delta, float | int) and delta:
            better = (delta < 0) if name in LOWER_IS_BETTER else (delta > 0)
            style = "green" if better else "red"
        metrics.add_row(name, _num(a.metrics.get(name)), _num(b.metrics.get(name)),
                        Text(f"{delta:+.4g}" if isinstance(delta, float | int) else "only in one", style=style))
    parts.append(metrics)
    signature = Text("signature: ", style="bold")
    if not c.signature_changed:
        signature.append("unchanged")
    else:
        signature.append("CHANGED", style="bold yellow")
        for name in c.inputs_added:
            signature.append(f"\n  + input {name}", style="green")
        for name in c.inputs_removed:
            signature.append(f"\n  - input {name}", style="red")
        for name, (before, after) in sorted(c.inputs_changed.items()):
            signature.append(f"\n  ~ input {name}: {before} → {after}", style="yellow")
        if c.outputs_changed:
            signature.append("\n  ~ outputs changed", style="yellow")
    parts.append(signature)
    data_text = Text("data: ", style="bold")
    data_text.append("CHANGED" if c.data_changed else "the same commits", style="bold yellow" if c.data_changed else "")
    data_text.append(f"\n  {c.a}: {', '.join(x[:12] for x in c.data_commits_a) or '-'}")
    data_text.append(f"\n  {c.b}: {', '.join(x[:12] for x in c.data_commits_b) or '-'}")
    parts.append(data_text)
    if c.params_changed:
        params = Table("param", c.a, c.b, title="params changed", title_justify="left", expand=True)
        for key, (before, after) in sorted(c.params_changed.items()):
            params.add_row(key, _num(before), _num(after))
        parts.append(params)
    else:
        parts.append(Text("params: unchanged", style="bold"))
    return Group(*parts)
