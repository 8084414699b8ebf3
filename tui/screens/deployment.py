"""One deployment: live charts, the canary's verdict as it forms, its revisions, and the
release actions.

- **Charts** (``c``): latency (p50, p99), requests a second (per slot during a canary),
  error rate, over the pulse's windows (``tui.charts.window_figures``: one
  ``monitoring.windows`` call), and per-feature drift (PSI) from the last monitoring pass this screen
  ran (``m``) or else the evidence of the newest drift alert. The alert rules' thresholds
  on those metrics (``platform.alerts.rules()``) are drawn as horizontal lines.
- **Canary** (``v``): ``platform.loop.judge_canary`` since the canary started (the first
  of the current run of ``canary`` revisions of this candidate): the decision so far
  (wait, promote, rollback), the reasons in the core's words, and the figures per slot.
- **Revisions** (``h``): every revision, newest first; the row under the cursor is what
  ``b`` rolls back to.

Actions (operator; each but "monitor now" asks first; ``console.perform`` shows the
answer or the refusal with the gates, and the audit event on ``deployment:<name>``):
promote ``p``, roll back ``b``, canary weight ``w``, abort the canary ``x`` (a rollback to
the revision before the canary began), blue-green switch ``s``, run monitor now ``m``
(``platform.loop.check``: the monitor job's pass, alert rules included), retrain ``t``
(``platform.loop.request_retrain``: the daemon starts ``retrain-release`` at once, unless a
release is in progress; without the daemon the request waits for its next monitoring pass)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from mlops_lite.errors import MlopsLiteError, PermissionDenied
from tui.charts import Figures, Threshold, WindowFigures, Windows, plot_bars, plot_lines, thresholds, window_figures
from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, PromptScreen, Row

SLOT_FIGURES = (("requests", "requests", "{:.0f}"), ("errors", "errors", "{:.0f}"),
                ("error_rate", "err rate", "{:.1%}"), ("p50_ms", "p50 ms", "{:.1f}"), ("p99_ms", "p99 ms", "{:.1f}"),
                ("accuracy", "accuracy", "{:.3f}"), ("labelled", "labelled", "{:.0f}"))
DECISION_STYLE = {"wait": "bold yellow", "promote": "bold green", "rollback": "bold red"}


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


def canary_start(record: Any, revisions: Sequence[Any]) -> Any | None:
    """The revision the current canary began with: the oldest of the newest run of
    ``canary`` revisions with this candidate (a weight change is a canary revision too)."""
    if record.strategy != "canary":
        return None
    start = None
    for revision in sorted(revisions, key=lambda r: r.revision, reverse=True):
        if revision.action != "canary" or revision.candidate_digest != record.candidate_digest:
            break
        start = revision
    return start


@dataclass
class View:
    """What ``show`` puts on the screen, made in ``load``."""

    record: Any
    summary: Text
    verdict: RenderableType
    revisions: tuple[Row, ...]
    labels: list[str]
    latency: dict[str, list[float | None]]
    rate: dict[str, list[float | None]]
    errors: dict[str, list[float | None]]
    drift: tuple[list[str], list[float], str]
    limits: dict[str, list[Threshold]] = field(default_factory=dict)
    history: tuple[Any, ...] = ()


class DeploymentScreen(ConsoleScreen):
    TITLE = "Deployment"
    AUTO_FOCUS = "Tabs"  # the charts first; ``h`` (or the tabs) reaches the revisions table
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("p", "promote", "Promote"),
        Binding("b", "rollback", "Roll back"),
        Binding("w", "weight", "Weight"),
        Binding("x", "abort", "Abort"),
        Binding("s", "switch", "Switch"),
        Binding("m", "monitor", "Monitor"),
        Binding("t", "retrain", "Retrain"),
        Binding("c", "tab('charts')", "Charts", show=False),
        Binding("v", "tab('canary')", "Canary verdict", show=False),
        Binding("h", "tab('revisions')", "Revisions", show=False),
    ]
    ACTION_ROLES = {"promote": "operator", "rollback": "operator", "weight": "operator", "abort": "operator",
                    "switch": "operator", "monitor": "operator", "retrain": "operator"}
    CSS = """
    DeploymentScreen #summary { height: auto; padding: 0 1; }
    DeploymentScreen TabbedContent { height: 1fr; }
    DeploymentScreen TabPane { height: 1fr; padding: 0; }
    DeploymentScreen #charts Grid { grid-size: 2 2; height: 1fr; }
    DeploymentScreen PlotextPlot { height: 1fr; min-height: 6; }
    DeploymentScreen #verdict { height: auto; padding: 0 1; }
    """

    def __init__(self, name: str, *, windows: int = 12, width_s: int = 300) -> None:
        super().__init__()
        self.deployment = name
        self.window_count, self.width_s = windows, width_s
        self.record: Any = None
        self.rules: list[Any] | None = None
        self.verdict_refused = False
        self.last_check: dict[str, Any] | None = None  # the answer of the last "monitor now"
        self.view: View | None = None
        self._gates: dict[int, list[dict[str, Any]]] = {}  # revision -> its gates, for the action's answer

    def crumb(self) -> str:
        return self.deployment

    def body(self) -> ComposeResult:
        yield Static("", id="summary")
        with TabbedContent(initial="charts"):
            with TabPane("Charts", id="charts"), Grid():
                yield PlotextPlot(id="latency")
                yield PlotextPlot(id="rate")
                yield PlotextPlot(id="errors")
                yield PlotextPlot(id="drift")
            with TabPane("Canary", id="canary"):
                yield Static("", id="verdict")
            with TabPane("Revisions", id="revisions-tab"):
                yield FilterTable((("revision", "Rev"), ("action", "Action"), ("split", "Split"),
                                   ("strategy", "Strategy"), ("at", "Changed"), ("by", "By"), ("reason", "Reason")),
                                  id="revisions", title="Revisions (b rolls back to the row under the cursor)")

    # --- load (thread) and show (UI) ---------------------------------------------------

    def load(self) -> View:
        platform, name = self.platform, self.deployment
        record = platform.deployments.get(name)
        revisions = platform.deployments.revisions(name)
        if self.rules is None:
            self.rules = list(platform.alerts.rules())
        alerts = platform.alerts.list(subject=name, limit=50)
        windows = Windows(self.window_count, self.width_s)
        figures = window_figures(platform, windows, name)
        start = canary_start(record, revisions)
        verdict: dict[str, Any] | None = None
        if start is not None and not self.verdict_refused:
            try:
                verdict = platform.loop.judge_canary(name, since=start.changed_at)
            except PermissionDenied:
                self.verdict_refused = True
        return self.build(record, revisions, alerts, windows, figures, start, verdict)

    def build(self, record: Any, revisions: Sequence[Any], alerts: Sequence[Any], windows: Windows,
              figures: WindowFigures, start: Any | None, verdict: dict[str, Any] | None) -> View:
        name, rules = record.name, self.rules or []
        open_alerts = [a for a in alerts if a.is_open]
        summary = Text()
        summary.append(f"{name} ", style="bold")
        summary.append(f"{record.strategy} · {record.model} {split_text(record)} · revision {record.revision} "
                       f"by {record.updated_by}\n")
        total = figures.of(name)
        rate, err = total.rate(float(windows.width_s))[-1], total.error_rate()[-1]
        summary.append(f"now: {0.0 if rate is None else rate:.2f} req/s · p50 {ms(total.p50[-1])} · "
                       f"p99 {ms(total.p99[-1])} · errors {'-' if err is None else f'{err:.1%}'}")
        summary.append(" · alerts: ")
        summary.append(", ".join(f"{a.rule} ({a.state})" for a in open_alerts) or "none open",
                       style="bold red" if open_alerts else "dim")
        if start is not None:
            summary.append("\ncanary: ")
            if verdict is not None:
                decision = str(verdict.get("decision"))
                summary.append(decision.upper(), style=DECISION_STYLE.get(decision, "bold"))
                reasons = verdict.get("reasons") or []
                summary.append(f" · {reasons[0]}" if reasons else "")
            else:
                summary.append("the verdict needs the operator role", style="yellow")
        view_verdict = self._verdict(record, start, verdict)
        rows = tuple(Row(str(r.revision), (str(r.revision), r.action, split_text(r), r.strategy,
                                           f"{r.changed_at:%Y-%m-%d %H:%M:%S}", r.changed_by, r.reason or ""))
                     for r in sorted(revisions, key=lambda r: r.revision, reverse=True))
        rate_series: dict[str, list[float | None]]
        errors: dict[str, list[float | None]]
        latency = {"p50": list(total.p50), "p99": list(total.p99)}
        slots: dict[str, Figures] = figures.slots.get(name, {})
        if start is not None and slots:
            rate_series = {slot: f.rate(float(windows.width_s)) for slot, f in sorted(slots.items())}
            errors = {slot: f.error_rate() for slot, f in sorted(slots.items())}
        else:
            rate_series = {"req/s": total.rate(float(windows.width_s))}
            errors = {"error rate": total.error_rate()}
        limits = {"latency": thresholds(rules, "latency.p99_ms", name) + thresholds(rules, "latency.p50_ms", name),
                  "errors": thresholds(rules, "errors.rate", name), "drift": thresholds(rules, "drift.max_psi", name)}
        return View(record, summary, view_verdict, rows, windows.labels(), latency, rate_series, errors,
                    self._drift(alerts), limits, tuple(revisions))

    def _drift(self, alerts: Sequence[Any]) -> tuple[list[str], list[float], str]:
        """Per-feature PSI: of the last "monitor now", else the newest drift alert's evidence."""
        psi: dict[str, float] = {}
        source = ""
        report = (self.last_check or {}).get("report") or {}
        if report.get("drift"):
            psi = {f["feature"]: float(f["psi"]) for f in report["drift"].get("features", [])}
            source = f"monitor pass until {str(report.get('until') or '')[11:19]}"
        else:
            for alert in alerts:  # newest first
                if alert.metric == "drift.share" and isinstance(alert.evidence.get("psi"), dict):
                    psi = {k: float(v) for k, v in alert.evidence["psi"].items()}
                    source = f"alert {alert.rule} at {alert.last_seen_at:%H:%M:%S}"
                    break
        names = [k.removeprefix("f_") for k in psi]
        return names, list(psi.values()), source

    def _verdict(self, record: Any, start: Any | None, verdict: dict[str, Any] | None) -> RenderableType:
        if start is None:
            return Text(f"No canary in progress ({record.strategy}). A canary's verdict forms here as its "
                        "traffic comes in: candidate against primary over the same window.", style="dim")
        head = Text()
        head.append(f"canary {record.candidate_model}@{record.candidate_version} at {record.weight:.0%} since "
                    f"{start.changed_at:%H:%M:%S} (revision {start.revision}) against "
                    f"{record.model}@{record.version}\n")
        if verdict is None:
            head.append("The verdict needs the operator role (it reads the prediction log).", style="yellow")
            return head
        decision = str(verdict.get("decision"))
        head.append("verdict so far: ")
        head.append(decision.upper(), style=DECISION_STYLE.get(decision, "bold"))
        reasons = Text("".join(f"\n • {reason}" for reason in verdict.get("reasons") or []))
        table = Table("", "primary", "canary", expand=False, box=None, padding=(0, 2))
        by_slot = verdict.get("by_slot") or {}
        primary, canary = by_slot.get("primary", {}), by_slot.get("canary", {})
        for key, label, fmt in SLOT_FIGURES:
            if key in primary or key in canary:
                table.add_row(label, *(fmt.format(s[key]) if key in s else "-" for s in (primary, canary)))
        return Group(head, reasons, Text(""), table)

    def show(self, data: View) -> None:
        before = self.record
        self.view = data
        self.record = data.record
        self.query_one("#summary", Static).update(data.summary)
        self.query_one("#verdict", Static).update(data.verdict)
        self.query_one("#revisions", FilterTable).set_rows(data.revisions)
        plot_lines(self.query_one("#latency", PlotextPlot), "latency ms", data.labels, data.latency,
                   data.limits.get("latency", ()), unit="ms")
        plot_lines(self.query_one("#rate", PlotextPlot), "req/s", data.labels, data.rate)
        plot_lines(self.query_one("#errors", PlotextPlot), "error rate", data.labels, data.errors,
                   data.limits.get("errors", ()))
        names, values, source = data.drift
        plot_bars(self.query_one("#drift", PlotextPlot), f"drift PSI{' · ' + source if source else ''}", names,
                  values, data.limits.get("drift", ()))
        if before is None or (before.revision, before.strategy) != (data.record.revision, data.record.strategy):
            self.refresh_bindings()

    # --- which actions apply --------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if not allowed or action not in self.ACTION_ROLES:
            return allowed
        record = self.record
        if record is None:
            return None if action not in ("monitor", "retrain") else True
        applies = {"promote": bool(record.candidate_digest), "rollback": record.revision > 1,
                   "weight": record.strategy == "canary", "abort": record.strategy == "canary",
                   "switch": record.strategy == "blue_green" and bool(record.candidate_digest)}
        return True if applies.get(action, True) else None

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "revisions-tab" if tab == "revisions" else tab
        if tab == "revisions":
            self.query_one("#revisions", FilterTable).focus_table()

    # --- actions -------------------------------------------------------------------------

    def _audit(self) -> str:
        return f"deployment:{self.deployment}"

    def _describe(self, record: Any) -> RenderableType:
        """The deployment as the action left it, and the gates' answer that let it through
        (from the action's audit event; none ran for a rollback or a shadow)."""
        text = Text(f"{record.name} is {record.strategy}: {record.model} {split_text(record)} "
                    f"(revision {record.revision})")
        gates = self._gates.pop(record.revision, None)
        if not gates:
            return text
        table = Table("gate", "passed", "measured", "bound", expand=True)
        for gate in gates:
            table.add_row(str(gate.get("gate")), "yes" if gate.get("passed") else "NO", _short(gate.get("measured")),
                          _short(gate.get("bound")))
        return Group(text, Text("\nthe release gates:"), table)

    def _change(self, call: Any) -> Any:
        """``call(platform)`` (a deployment change), then the gates its audit event recorded,
        kept for ``_describe``. Runs in the action's worker."""
        def run(platform: Any) -> Any:
            record = call(platform)
            try:
                events = platform.audit.about(f"deployment:{record.name}", action_prefix="deployment.")
            except MlopsLiteError:
                events = []  # who may change a deployment may not read the chain (a grant): the change stands
            for event in reversed(events):
                if event.after.get("revision") == record.revision:
                    self._gates = {record.revision: list(event.after.get("gates") or [])}
                    break
            return record
        return run

    def action_promote(self) -> None:
        name, record = self.deployment, self.record
        if record is None or not record.candidate_digest:
            self.notify(f"{name} has no candidate to promote", severity="warning")
            return
        self.console.perform(
            title="Promote the candidate", target=name, role="operator", audit_object=self._audit(),
            confirm=(f"Promote {record.candidate_model}@{record.candidate_version} to take all of {name}'s traffic "
                     f"(now {record.strategy}, revision {record.revision})? It passes the release gates first."),
            call=self._change(lambda p: p.deployments.promote(name, reason="promoted from the console")), describe=self._describe)

    def rollback_target(self) -> int | None:
        """The revision under the cursor in the revisions table when it is an earlier one,
        else the one before the current."""
        record = self.record
        if record is None or record.revision <= 1:
            return None
        key = self.query_one("#revisions", FilterTable).cursor_key
        chosen = int(key) if key is not None and key.isdigit() else None
        return chosen if chosen is not None and chosen < record.revision else record.revision - 1

    def action_rollback(self) -> None:
        name, target = self.deployment, self.rollback_target()
        if target is None:
            self.notify(f"{name} has no earlier revision to roll back to", severity="warning")
            return
        self.console.perform(
            title=f"Roll back to revision {target}", target=name, role="operator", audit_object=self._audit(),
            confirm=(f"Roll {name} back to revision {target} (as a new revision)? It served before, so no gate "
                     "runs. Pick another revision in the Revisions tab (h) first to roll back further."),
            call=self._change(lambda p: p.deployments.rollback(name, to_revision=target, reason="rolled back from the console")),
            describe=self._describe)

    def action_weight(self) -> None:
        name, record = self.deployment, self.record
        if record is None or record.strategy != "canary":
            self.notify(f"{name} has no canary", severity="warning")
            return

        def chosen(value: str | None) -> None:
            if value is None:
                return
            try:
                weight = float(value.strip().rstrip("%")) / (100 if value.strip().endswith("%") else 1)
            except ValueError:
                self.notify(f"weight: {value!r} is not a number (a share between 0 and 1, or a percentage)",
                            severity="error")
                return
            self.console.perform(
                title=f"Canary weight {weight:g}", target=name, role="operator", audit_object=self._audit(),
                confirm=(f"Send {weight:.0%} of {name}'s traffic to {record.candidate_model}@"
                         f"{record.candidate_version} (now {record.weight:.0%})? It passes the release gates first."),
                call=self._change(lambda p: p.deployments.canary(name, record.candidate_model, record.candidate_version,
                                                    weight=weight, reason="canary weight from the console")),
                describe=self._describe)

        self.console.push_screen(PromptScreen(f"Canary weight of {name} (0-1 exclusive, or a percentage)",
                                              value=f"{record.weight:g}"), chosen)

    def action_abort(self) -> None:
        name, record = self.deployment, self.record
        start = canary_start(record, self._revisions()) if record is not None else None
        if start is None or start.revision <= 1:
            self.notify(f"{name} has no canary to abort", severity="warning")
            return
        target = start.revision - 1
        self.console.perform(
            title="Abort the canary", target=name, role="operator", audit_object=self._audit(),
            confirm=(f"Abort the canary of {record.candidate_model}@{record.candidate_version} on {name}: roll back "
                     f"to revision {target}, as it was before the canary began?"),
            call=self._change(lambda p: p.deployments.rollback(name, to_revision=target, reason="canary aborted from the console")),
            describe=self._describe)

    def _revisions(self) -> list[Any]:
        """The revisions as loaded: enough of each for ``canary_start``."""
        return list(self.view.history) if self.view is not None else []

    def action_switch(self) -> None:
        name, record = self.deployment, self.record
        if record is None or record.strategy != "blue_green" or not record.candidate_digest:
            self.notify(f"{name} has no standby slot to switch to", severity="warning")
            return
        self.console.perform(
            title="Blue-green switch", target=name, role="operator", audit_object=self._audit(),
            confirm=(f"Switch {name}: {record.candidate_model}@{record.candidate_version} goes live at once and "
                     f"{record.model}@{record.version} stands by?"),
            call=self._change(lambda p: p.deployments.switch(name, reason="switched from the console")), describe=self._describe)

    def action_monitor(self) -> None:
        name = self.deployment

        def describe(answer: dict[str, Any]) -> RenderableType:
            report = answer.get("report") or {}
            drift = report.get("drift") or {}
            infra = report.get("infra") or {}
            text = Text(f"window of {name}: {report.get('rows', 0)} rows since {report.get('since') or '-'}\n")
            if drift:
                text.append(f"drift: {drift.get('drifted_share', 0):.0%} of the features drifted "
                            f"({', '.join(drift.get('drifted_features') or []) or 'none'})\n")
            else:
                text.append("drift: too few rows in the window to judge\n")
            if "p99_ms" in infra:
                text.append(f"latency p50 {infra['p50_ms']:.1f} ms, p99 {infra['p99_ms']:.1f} ms\n")
            changes = answer.get("transitions") or []
            text.append("alerts: " + (", ".join(f"{t['rule']} -> {t['state']}" for t in changes) or "no change")
                        + "\n")
            text.append(f"retrain: {'yes' if answer.get('retrain') else 'no'} ({answer.get('reason') or '-'})")
            return text

        def keep(answer: dict[str, Any]) -> None:
            self.last_check = answer

        self.console.perform(title="Run monitor now", target=name, role="operator",
                             call=lambda p: p.loop.check(name), describe=describe, after=keep)

    def action_retrain(self) -> None:
        name = self.deployment

        def ask(reason: str | None) -> None:
            if reason is None:
                return
            self.console.perform(
                title="Retrain", target=name, role="operator",
                confirm=f"Retrain {name} on the newest data now (retrain-release: train, gate, canary)?",
                call=lambda p: p.loop.request_retrain(name, reason=reason), describe=_retrain_answer,
                audit_object=f"deployment:{name}")

        self.console.push_screen(PromptScreen(f"Why retrain {name}? (recorded in the audit chain)",
                                              placeholder="e.g. drift on income after the new campaign"), ask)


def _retrain_answer(answer: dict[str, Any]) -> RenderableType:
    if answer.get("started"):
        return Text(f"retrain-release started: {answer.get('reason') or ''}")
    if answer.get("held"):
        return Text(f"recorded, but held: {answer['held']}", style="bold yellow")
    return Text(str(answer.get("note") or "recorded: the daemon's next monitoring pass starts it"))


def _short(value: Any, limit: int = 30) -> str:
    text = "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
