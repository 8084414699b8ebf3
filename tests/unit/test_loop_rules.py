"""The canary verdict: wait for traffic, roll back on latency or a real quality drop,
never on sampling noise alone."""

from __future__ import annotations

import pytest

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


def test_a_failing_canary_is_rolled_back_on_its_error_rate() -> None:
    ok = {"requests": 400.0, "p99_ms": 2.0, "errors": 0.0, "error_rate": 0.0}
    failing = {**ok, "requests": 30.0, "errors": 10.0, "error_rate": 0.25}
    verdict = judge_canary(_report(ok, failing))
    assert verdict.decision == "rollback" and "error rate 0.250" in verdict.reasons[0]
    # before its own requests count: failures alone decide
    assert judge_canary(_report(ok, {**failing, "requests": 0.0, "error_rate": 1.0})).decision == "rollback"
    # a stray error or two is not a verdict
    assert judge_canary(_report(ok, {**ok, "errors": 2.0, "error_rate": 0.005})).decision == "promote"


def test_error_counts_make_the_windows_error_rate(tmp_path) -> None:
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    from mlops_lite.monitoring.checks import check_window
    from mlops_lite.monitoring.prediction_log import ErrorLog

    errors = ErrorLog(tmp_path / "errors")
    for _ in range(6):
        errors.record("loans", 422, "canary")
    errors.record("loans", 404)
    errors.record("bad name/../x", 500)  # no partition for a name that is not one
    assert errors.flush() == 7
    assert errors.flush() == 0
    reference = pa.table({"x": [1.0, 2.0]})
    report = check_window(tmp_path / "predictions", tmp_path / "feedback", "loans", reference, [("x", "numeric")],
                          errors_dir=tmp_path / "errors")
    assert report.infra["errors"] == 7 and report.infra["error_rate"] == 1.0
    assert report.by_slot["canary"]["errors"] == 6 and report.errors_by_status == {"404": 1, "422": 6}
    assert not (tmp_path / "errors" / "deployment=bad name").exists()
    later = check_window(tmp_path / "predictions", tmp_path / "feedback", "loans", reference, [("x", "numeric")],
                         errors_dir=tmp_path / "errors", since=datetime.now(UTC) + timedelta(seconds=2))
    assert later.infra.get("errors", 0) == 0 and "error_rate" not in later.infra


def test_a_recipe_retrains_on_the_folder_of_the_file_it_first_read() -> None:
    from datetime import UTC, datetime

    from mlops_lite.training import TrainingRecipe, TrainingSpec

    spec = TrainingSpec(target="y", numeric=("x",), categorical=())
    recipe = TrainingRecipe(deployment="d", model="m", repository="r", path="sales/2025.parquet", data_commit="c",
                            spec=spec)
    moment = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
    assert recipe.pattern == "sales/*.parquet"
    assert recipe.fresh_path(moment) == "sales/fresh-20260301-123005.parquet"
    top = TrainingRecipe(deployment="d", model="m", repository="r", path="train.csv", data_commit="c", spec=spec)
    assert (top.pattern, top.fresh_path(moment)) == ("*.csv", "fresh-20260301-123005.csv")
    again = TrainingRecipe(deployment="d", model="m", repository="r", path="sales/*.parquet", data_commit="c",
                           spec=spec)
    assert again.pattern == "sales/*.parquet"


def test_a_spec_is_read_back_from_what_its_run_recorded() -> None:
    from mlops_lite.errors import InvalidInput
    from mlops_lite.training import TrainingSpec

    signature = {"inputs": [{"name": "income", "type": "float"}, {"name": "region", "type": "string"}],
                 "target": "default"}
    params = {"algorithm": "logistic_regression", "test_size": "0.25", "seed": "7", "sensitive": "gender",
              "C": "0.5", "max_iter": "1000", "class_weight": "balanced", "l1_ratio": "None"}
    spec = TrainingSpec.recorded(signature, params)
    assert spec == TrainingSpec(target="default", numeric=("income",), categorical=("region",), sensitive="gender",
                                algorithm="logistic_regression", test_size=0.25, seed=7,
                                params={"C": 0.5, "max_iter": 1000, "class_weight": "balanced", "l1_ratio": None})
    assert TrainingSpec.from_dict(spec.as_dict()) == spec
    assert TrainingSpec.recorded(signature, {}).sensitive is None
    with pytest.raises(InvalidInput):
        TrainingSpec.recorded({"inputs": []}, params)


def test_a_decision_says_what_asked_and_what_held() -> None:
    from mlops_lite.monitoring.triggers import Decision

    held = Decision(False, ("drift-feature: psi = 0.4 (threshold 0.2)", "new data merged"), held="debounced: ...",
                    revision=3, repository="r", head="abc")
    assert held.reason == "drift-feature: psi = 0.4 (threshold 0.2); new data merged"
    assert held.as_dict() == {"retrain": False, "reason": held.reason, "reasons": list(held.reasons),
                              "held": "debounced: ...", "revision": 3, "repository": "r", "head": "abc"}
