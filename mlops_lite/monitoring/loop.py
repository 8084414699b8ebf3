"""The closed loop's steps, over a Platform: check a deployment, decide to retrain
(triggers.py), judge a candidate on fresh labels, judge a canary against its primary.

Each function is one step a Prefect task calls (flows/closed_loop.py); each leaves a
record (alerts, audit events) so the loop can be traced trigger -> run -> version
-> deployment revision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from mlops_lite.alerts import Observation, Transition
from mlops_lite.monitoring.checks import WindowReport, check_window
from mlops_lite.monitoring.triggers import should_retrain


@dataclass(frozen=True)
class Check:
    report: WindowReport
    transitions: tuple[Transition, ...]


@dataclass(frozen=True)
class Verdict:
    decision: str  # promote | rollback | blocked | wait
    reasons: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)


def reference_of(platform: Any, model: str, version: str) -> tuple[pa.Table, list[tuple[str, str]]]:
    """The training data of ``model@version`` (the exact commit its run read) and its features."""
    record = platform.registry.get_version(model, version)
    run = platform.tracking.get_run(record.run_id)
    features = [(spec["name"], "numeric" if spec["type"] == "float" else "categorical")
                for spec in record.signature["inputs"]]
    training_set = run.tags.get("training_set")
    if training_set:  # trained through a feature service: its rows were the stored point-in-time join
        import pyarrow.compute as pc

        table = platform.features.training_set_table(training_set)
        keep = None
        for name, _ in features:  # the rows it trained from: every input present
            present = pc.is_valid(table.column(name))
            keep = present if keep is None else pc.and_(keep, present)
        return (table if keep is None else table.filter(keep)), features
    repository, path = run.tags.get("repository"), run.tags.get("path")
    table = platform.data.repo(repository).ref(record.data_commits[0]).read_table(path).table
    return table, features


def check_deployment(platform: Any, name: str, *, since: datetime | None = None, **options: Any) -> Check:
    """One window of ``name`` against the training data of the version it serves; the
    figures go through the alert rules. Whether to retrain is decided apart, from the
    alerts this leaves firing and the other triggers (``triggers.should_retrain``)."""
    platform.monitoring.flush()
    deployment = platform.deployments.get(name)
    reference, features = reference_of(platform, deployment.model, deployment.version)
    if since is None:
        since = deployment.updated_at  # the window starts when the current revision went live
    report = check_window(platform.monitoring.predictions_dir, platform.monitoring.feedback_dir, name, reference,
                          features, since=since, errors_dir=platform.monitoring.errors_dir,
                          log_key=platform.monitoring.log_key, **options)
    stats = platform.monitoring.stats()
    lost = Observation("log.lost", "prediction-log", float(stats["rows_dropped"] + stats["write_errors"]),
                       {"rows_dropped": stats["rows_dropped"], "write_errors": stats["write_errors"],
                        "rows_written": stats["rows_written"]})
    return Check(report, tuple(platform.alerts.evaluate([*report.observations(), lost])))


def score_on_labelled(platform: Any, versions: list[tuple[str, str]], table: pa.Table,
                      target: str) -> dict[str, dict[str, float]]:
    """Accuracy, ROC AUC and F1 of each ``(model, version)`` on a labelled table (fresh
    data none of them trained on), through the same ONNX sessions that serve."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    truth = np.asarray(table.column(target).to_pylist())
    out: dict[str, dict[str, float]] = {}
    for model, version in versions:
        record = platform.registry.get_version(model, version)
        instances = table.select([s["name"] for s in record.signature["inputs"]]).to_pylist()
        labels, probabilities = platform.deployments.score(model, version, instances)
        positive = record.signature["classes"][-1]
        out[version] = {"accuracy": float(accuracy_score(truth, labels)),
                        "roc_auc": float(roc_auc_score(truth == positive, np.asarray(probabilities)[:, -1])),
                        "f1": float(f1_score(truth == positive, labels == positive)), "rows": float(len(truth))}
    return out


def no_regression(scores: dict[str, dict[str, float]], candidate: str, incumbent: str, *,
                  metric: str = "roc_auc", tolerance: float = 0.01) -> Verdict:
    """The candidate may not score below the incumbent (minus ``tolerance``) on fresh labels."""
    got, bar = scores[candidate][metric], scores[incumbent][metric] - tolerance
    if got >= bar:
        return Verdict("promote", (f"{metric} {got:.3f} on fresh labels >= {incumbent}'s "
                                   f"{scores[incumbent][metric]:.3f} - {tolerance:g}",), scores)
    return Verdict("blocked", (f"{metric} {got:.3f} on fresh labels is below {incumbent}'s "
                               f"{scores[incumbent][metric]:.3f} - {tolerance:g}",), scores)


def judge_canary(report: WindowReport, *, min_requests: int = 20, max_latency_ratio: float = 2.0,
                 latency_slack_ms: float = 5.0, max_quality_drop: float = 0.05,
                 max_error_increase: float = 0.02) -> Verdict:
    """Promote, roll back, or wait: the canary against the primary over the same window,
    on error rate, latency and (when labelled) live accuracy."""
    primary, canary = report.by_slot.get("primary", {}), report.by_slot.get("canary", {})
    canary_errors = canary.get("errors", 0.0)
    if canary_errors >= 3 and canary.get("error_rate", 0.0) > primary.get("error_rate", 0.0) + max_error_increase:
        # Failing requests never reach the log as served rows: judge them before counting those.
        return Verdict("rollback", (f"canary error rate {canary['error_rate']:.3f} > primary "
                                    f"{primary.get('error_rate', 0.0):.3f} + {max_error_increase:g} "
                                    f"({canary_errors:.0f} failed requests)",), report.by_slot)
    if canary.get("requests", 0) < min_requests or primary.get("requests", 0) < min_requests:
        return Verdict("wait", (f"{int(canary.get('requests', 0))} canary and {int(primary.get('requests', 0))} "
                                f"primary requests so far; need {min_requests} each",), report.by_slot)
    reasons, bad = [], False
    if canary_errors or primary.get("errors", 0.0):
        reasons.append(f"canary error rate {canary.get('error_rate', 0.0):.3f} vs primary "
                       f"{primary.get('error_rate', 0.0):.3f}")
    limit = primary["p99_ms"] * max_latency_ratio + latency_slack_ms
    if canary["p99_ms"] > limit:
        bad = True
        reasons.append(f"canary p99 {canary['p99_ms']:.1f} ms > {limit:.1f} ms")
    else:
        reasons.append(f"canary p99 {canary['p99_ms']:.1f} ms within {limit:.1f} ms")
    if "accuracy" in canary and "accuracy" in primary:
        # A canary sees few labels: allow the drop plus two standard errors of the
        # difference of the two accuracies, so that sampling noise alone rolls nothing back.
        n1, n2 = canary.get("labelled", 0.0), primary.get("labelled", 0.0)
        pooled = (canary["accuracy"] * n1 + primary["accuracy"] * n2) / max(n1 + n2, 1.0)
        noise = 2.0 * (pooled * (1 - pooled) * (1 / max(n1, 1.0) + 1 / max(n2, 1.0))) ** 0.5
        allowed = max_quality_drop + noise
        if canary["accuracy"] < primary["accuracy"] - allowed:
            bad = True
            reasons.append(f"canary accuracy {canary['accuracy']:.3f} < primary {primary['accuracy']:.3f} "
                           f"- {allowed:.3f}")
        else:
            reasons.append(f"canary accuracy {canary['accuracy']:.3f} vs primary {primary['accuracy']:.3f} "
                           f"(allowed drop {allowed:.3f})")
    return Verdict("rollback" if bad else "promote", tuple(reasons), report.by_slot)


def block_alert(platform: Any, name: str, version: str, reasons: list[str], figures: dict[str, Any]) -> list[Transition]:
    """Say on the alert channel why a candidate did not reach the canary."""
    transitions: list[Transition] = platform.alerts.evaluate([Observation(
        "release.blocked", name, 1.0, {"candidate": version, "reasons": reasons, "figures": figures})])
    return transitions


def labelled_window(platform: Any, name: str, *, since: datetime | None = None, target: str = "label") -> pa.Table:
    """Served rows of ``name`` that got feedback labels: the features (named as the model's
    inputs) and ``target`` (the true label, as an integer when it is one)."""
    from mlops_lite.monitoring.prediction_log import FEATURE_PREFIX

    platform.monitoring.flush()
    where = "AND p.\"at\" >= TIMESTAMPTZ '" + since.isoformat() + "'" if since is not None else ""
    table = platform.monitoring.query(
        "SELECT p.*, f.label AS __label FROM predictions p JOIN "
        "(SELECT request_id, last(label ORDER BY \"at\") AS label FROM feedback GROUP BY request_id) f "
        f"USING (request_id) WHERE p.deployment = '{name}' AND coalesce(p.slot, 'primary') <> 'shadow' {where}")
    columns = {c[len(FEATURE_PREFIX):]: table.column(c) for c in table.column_names if c.startswith(FEATURE_PREFIX)}
    labels = table.column("__label").to_pylist()
    try:
        columns[target] = pa.array([int(v) for v in labels], type=pa.int64())
    except (TypeError, ValueError):
        columns[target] = pa.array(labels, type=pa.string())
    return pa.table(columns)


def _moment(value: datetime | str | None, field_name: str) -> datetime | None:
    from mlops_lite.clock import parse_time

    if value is None or isinstance(value, datetime):
        return value
    return parse_time(value, field_name)


class ClosedLoop:
    """``platform.loop``: the closed loop's steps, one call each, with JSON-ready answers.

    A flow task calls one of these. In-process they run over the embedded stores; on
    a ``RemotePlatform`` (a Prefect worker's flow run) the same calls go over HTTP to
    the daemon, which owns the prediction log, the sessions and the alert rules."""

    def __init__(self, platform: Any) -> None:
        self._platform = platform
        self.runner: Callable[[str, str], None] | None = None
        """What starts a retrain now: the daemon sets its own (``retrain-release`` in its
        flow runner, or on the work pool); None in a process that runs no flows."""

    def request_retrain(self, deployment: str, *, reason: str = "", actor: str | None = None) -> dict[str, Any]:
        """A person asks to retrain ``deployment`` (audit ``loop.retrain_requested``); the
        retrain decision counts the request as a trigger, held only by a release in
        progress. In the daemon the retrain starts now (``started``); elsewhere the
        daemon's next monitoring pass starts it (``pending``)."""
        from mlops_lite.errors import InvalidInput
        from mlops_lite.monitoring.triggers import request_retrain

        if not isinstance(reason, str) or len(reason) > 500:
            raise InvalidInput("reason must be text of at most 500 characters", field="reason")
        platform = self._platform
        request_retrain(platform, deployment, reason=reason.strip(), actor=actor or platform.actor)
        if self.runner is None:
            return {"started": False, "pending": True, "held": "",
                    "note": "recorded: the next monitoring pass of `mlops-lite up` starts the retrain"}
        decision = should_retrain(platform, deployment)
        if decision.retrain:
            self.runner(deployment, decision.reason)
        return {"started": decision.retrain, "pending": False, "held": decision.held, "reason": decision.reason,
                "revision": decision.revision}

    def check(self, deployment: str, *, since: datetime | str | None = None,
              debounce_s: float = 600.0) -> dict[str, Any]:
        """One monitoring pass: a window (see ``check_deployment``), its alert transitions,
        and then the retrain decision (see ``should_retrain``), whose fields it carries."""
        check = check_deployment(self._platform, deployment, since=_moment(since, "since"))
        decision = should_retrain(self._platform, deployment, debounce_s=debounce_s)
        return {"report": check.report.as_dict(), **decision.as_dict(),
                "transitions": [{"rule": t.alert.rule, "state": t.state, "value": t.alert.value}
                                for t in check.transitions]}

    def should_retrain(self, deployment: str, *, now: datetime | str | None = None,
                       debounce_s: float = 600.0) -> dict[str, Any]:
        """The one retrain decision (mlops_lite/monitoring/triggers.py): ``retrain``, the
        triggers' ``reasons`` (and ``reason``, them joined), what ``held`` it, and the
        ``revision`` and ``head`` of main it was decided on. A yes is recorded."""
        return should_retrain(self._platform, deployment, now=_moment(now, "now"), debounce_s=debounce_s).as_dict()

    def gate(self, deployment: str, model: str, version: str, *, since: datetime | str | None = None,
             target: str = "label", min_rows: int = 30) -> dict[str, Any]:
        """The policy gates, and no regression against the serving version on fresh
        labelled rows. ``awaiting_approval`` when only the approvals gate is missing (a
        human decides); a block raises the ``release.blocked`` alert and an audit event."""
        from mlops_lite.errors import PolicyViolation

        platform = self._platform
        serving = platform.deployments.get(deployment)
        already = self._already_serving(serving, model, version)
        if already:
            # The loop at rest: a retrain on data the serving version already learned from
            # reproduces it; there is nothing to judge and nothing to release.
            platform.audit.record(actor=platform.actor, action="loop.nothing_to_release",
                                  object=f"deployment:{deployment}",
                                  after={"model": model, "version": version, "reason": already})
            return {"passed": False, "awaiting_approval": False, "nothing_to_release": True, "reasons": [already],
                    "scores": {}, "serving": serving.version, "serving_model": serving.model}
        reasons: list[str] = []
        awaiting = False
        try:
            platform.policy.enforce(platform.registry.get_version(model, version))
        except PolicyViolation as exc:
            failed = [g for g in exc.details.get("gates", []) if not g.get("passed")]
            if failed and all(g.get("gate") == "approvals" for g in failed):
                awaiting = True
            else:
                reasons.append(exc.message)
        fresh = labelled_window(platform, deployment, since=_moment(since, "since"), target=target)
        scores: dict[str, Any] = {}
        classes = set(fresh.column(target).to_pylist()) if fresh.num_rows else set()
        if fresh.num_rows >= min_rows and len(classes) < 2:
            reasons.append(f"the {fresh.num_rows} fresh labelled rows hold one class only; "
                           "ROC AUC needs both to check for regression")
        elif fresh.num_rows >= min_rows:
            scores = score_on_labelled(platform, [(serving.model, serving.version), (model, version)], fresh, target)
            verdict = no_regression(scores, version, serving.version)
            if verdict.decision == "blocked":
                reasons.extend(verdict.reasons)
        else:
            reasons.append(f"only {fresh.num_rows} fresh labelled rows; need {min_rows} to check for regression")
        if reasons:
            awaiting = False
            self.block(deployment, model, version, reasons, scores)
        return {"passed": not reasons and not awaiting, "awaiting_approval": awaiting, "nothing_to_release": False,
                "reasons": reasons, "scores": scores, "serving": serving.version, "serving_model": serving.model}

    def _already_serving(self, serving: Any, model: str, version: str) -> str:
        """Why ``model@version`` is already out on ``serving`` (as its primary or its
        candidate, by version or by the same model bytes), or '' when it is new."""
        digest = self._platform.registry.get_version(model, version).digest
        if (serving.model, serving.version) == (model, version) or serving.digest == digest:
            return f"{model}@{version} already serves {serving.name} (revision {serving.revision})"
        if serving.candidate_digest == digest:
            return (f"{model}@{version} is already the {serving.strategy} candidate of {serving.name} "
                    f"(revision {serving.revision})")
        return ""

    def block(self, deployment: str, model: str, version: str, reasons: list[str],
              scores: dict[str, Any] | None = None) -> None:
        """Say why a candidate does not reach the canary: the ``release.blocked`` alert
        (with the figures) and a ``loop.candidate_blocked`` audit event."""
        platform = self._platform
        block_alert(platform, deployment, version, list(reasons), dict(scores or {}))
        platform.audit.record(actor=platform.actor, action="loop.candidate_blocked", object=f"deployment:{deployment}",
                              after={"model": model, "version": version, "reasons": list(reasons),
                                     "scores": dict(scores or {})})

    def judge_canary(self, deployment: str, *, since: datetime | str, min_requests: int = 20) -> dict[str, Any]:
        """The canary against the primary over the window from ``since``: ``promote``,
        ``rollback``, or ``wait`` (not enough requests yet), with the reasons."""
        platform = self._platform
        moment = _moment(since, "since")
        serving = platform.deployments.get(deployment)
        reference, features = reference_of(platform, serving.model, serving.version)
        platform.monitoring.flush()
        report = check_window(platform.monitoring.predictions_dir, platform.monitoring.feedback_dir, deployment,
                              reference, features, since=moment, min_labels=10,
                              errors_dir=platform.monitoring.errors_dir, log_key=platform.monitoring.log_key)
        verdict = judge_canary(report, min_requests=min_requests)
        return {"decision": verdict.decision, "reasons": list(verdict.reasons), "by_slot": report.by_slot}

    def finish(self, deployment: str, decision: str, reasons: list[str]) -> dict[str, Any]:
        """Promote the canary (and resolve ``release.blocked``) or roll it back."""
        from mlops_lite.errors import InvalidInput

        platform = self._platform
        why = "; ".join(reasons)
        if decision == "promote":
            record = platform.deployments.promote(deployment, reason=f"canary passed: {why}")
            platform.alerts.evaluate([Observation("release.blocked", deployment, 0.0, {})])
        elif decision == "rollback":
            record = platform.deployments.rollback(deployment, reason=f"canary failed: {why}")
        else:
            raise InvalidInput(f"unknown decision {decision!r}", field="decision", expected="'promote' or 'rollback'")
        return {"revision": record.revision, "model": record.model, "version": record.version,
                "strategy": record.strategy}

    def flow_finished(self, flow: str, *, failed: bool, details: dict[str, Any] | None = None) -> None:
        """A flow run ended: a failure fires the ``flow-failed`` alert with its message, a
        clean run resolves it."""
        self._platform.alerts.evaluate([Observation("flow.failed", flow, 1.0 if failed else 0.0,
                                                    dict(details or {}) if failed else {})])
