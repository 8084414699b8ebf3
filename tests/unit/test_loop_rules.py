"""The canary verdict: wait for traffic, roll back on latency or a real quality drop,
never on sampling noise alone."""

from __future__ import annotations

from mlops_lite.monitoring.checks import WindowReport
from mlops_lite.monitoring.loop import judge_canary, no_regression


def _report(primary: dict, canary: dict) -> WindowReport:
    return WindowReport("loans", None, None, 1000, None, by_slot={"primary": primary, "canary": canary})


def test_the_canary_verdict() -> None:
    ok = {"requests": 400.0, "p99_ms": 2.0, "accuracy": 0.80, "labelled": 400.0}
    assert judge_canary(_report(ok, {**ok, "requests": 5.0})).decision == "wait"
    assert judge_canary(_report(ok, ok)).decision == "promote"
    assert judge_canary(_report(ok, {**ok, "p99_ms": 40.0})).decision == "rollback"
    assert judge_canary(_report(ok, {**ok, "accuracy": 0.60})).decision == "rollback"
    few = {"requests": 25.0, "p99_ms": 2.0, "accuracy": 0.68, "labelled": 25.0}
    assert judge_canary(_report(ok, few)).decision == "promote"  # 25 labels: within the noise


def test_no_regression_on_fresh_labels() -> None:
    scores = {"1.0.0": {"roc_auc": 0.84}, "1.1.0": {"roc_auc": 0.835}, "1.2.0": {"roc_auc": 0.70}}
    assert no_regression(scores, "1.1.0", "1.0.0").decision == "promote"
    verdict = no_regression(scores, "1.2.0", "1.0.0")
    assert verdict.decision == "blocked" and "0.700" in verdict.reasons[0]
