"""The loop's rules at rest, in-process and quick (the soak over `up` is in
test_loop_at_rest.py): a candidate that is already out is nothing to release, and a
drift alert resolves once the window's traffic looks like the training data again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow.csv as pacsv

from mlops_lite.clock import utcnow
from mlops_lite.monitoring.loop import check_deployment

from ..conftest import DATA, build_loop
from .test_closed_loop import _send


def test_a_candidate_already_out_is_nothing_to_release(tmp_path: Path) -> None:
    platform, _, spec = build_loop(tmp_path / "home")
    try:
        events = platform.audit.count()
        gates = platform.loop.gate("loans", "loan-default", "1.0.0")
        assert gates["nothing_to_release"] is True and gates["passed"] is False
        assert gates["reasons"] == ["loan-default@1.0.0 already serves loans (revision 1)"]
        [event] = [e for e in platform.audit.events(limit=10) if e.action == "loop.nothing_to_release"]
        assert event.object == "deployment:loans" and event.after["version"] == "1.0.0"
        assert platform.audit.count() == events + 1
        # no alert, no decision: nothing was judged
        assert [a for a in platform.alerts.open_alerts() if a.rule == "candidate-blocked"] == []
        assert platform.deployments.get("loans").revision == 1
        # a version not out yet is judged as before (here: too few fresh labels)
        other = platform.loop.gate("loans", "loan-default", _second_version(platform, spec))
        assert other["nothing_to_release"] is False and other["reasons"]
    finally:
        platform.close()


def _second_version(platform, spec) -> str:
    """Another version of the model: other parameters on the same commit."""
    result = platform.training.train("loans", "main", "loans/train.csv", replace(spec, params={"C": 0.01}),
                                     run_name="other")
    return platform.registry.register_from_run("loan-default", result.run.id).version


def test_a_candidate_in_canary_is_nothing_to_release(tmp_path: Path) -> None:
    platform, _, spec = build_loop(tmp_path / "home")
    try:
        version = _second_version(platform, spec)
        platform.deployments.canary("loans", "loan-default", version, weight=0.2, reason="test")
        gates = platform.loop.gate("loans", "loan-default", version)
        assert gates["nothing_to_release"] is True
        assert "already the canary candidate of loans" in gates["reasons"][0]
    finally:
        platform.close()


def test_the_drift_alert_resolves_when_traffic_looks_like_the_training_data(tmp_path: Path) -> None:
    platform, _, _ = build_loop(tmp_path / "home")
    try:
        _send(platform, pacsv.read_csv(DATA / "loans_drifted.csv").slice(0, 300).to_pylist())
        check_deployment(platform, "loans")
        firing = {a.rule for a in platform.alerts.open_alerts() if a.subject == "loans"}
        assert "drift-feature" in firing
        calm = utcnow()
        _send(platform, pacsv.read_csv(DATA / "loans_holdout.csv").to_pylist())
        result = check_deployment(platform, "loans", since=calm)
        assert ("drift-feature", "resolved") in {(t.alert.rule, t.state) for t in result.transitions}
        assert "drift-feature" not in {a.rule for a in platform.alerts.open_alerts() if a.subject == "loans"}
    finally:
        platform.close()


def test_fresh_labels_of_one_class_block_the_candidate_with_a_reason(tmp_path: Path) -> None:
    platform, _, spec = build_loop(tmp_path / "home")
    try:
        rows = [r for r in pacsv.read_csv(DATA / "loans_holdout.csv").to_pylist() if r["default"] == 0][:40]
        since = utcnow()
        _send(platform, rows)
        gates = platform.loop.gate("loans", "loan-default", _second_version(platform, spec), since=since,
                                   target="default", min_rows=1)
        assert gates["passed"] is False and gates["scores"] == {}
        assert gates["reasons"] == ["the 40 fresh labelled rows hold one class only; "
                                    "ROC AUC needs both to check for regression"]
    finally:
        platform.close()


def test_the_daemon_retrains_once_per_head_and_revision(tmp_path: Path) -> None:
    from server.jobs import DaemonJobs

    platform, _, _ = build_loop(tmp_path / "home")
    try:
        jobs = DaemonJobs(platform, platform.settings, prefect_url=None, load_flows=lambda: None, echo=lambda _: None)
        assert jobs._tried_already("loans") == ""
        assert "nothing new since" in jobs._tried_already("loans")  # the same head, the same revision
        branch = platform.data.repo("loans").branch("more")
        branch.create("main")
        platform.data.ingest("loans", DATA / "loans_holdout.csv", "loans/more.csv", branch="more")
        branch.merge_into("main")
        assert jobs._tried_already("loans") == ""  # new data on main: worth a retrain again
        assert jobs._tried_already("nope") == "deployment 'nope' is gone"
    finally:
        platform.close()


def test_a_schedules_backlog_runs_once_and_runs_started_by_hand_all_run() -> None:
    from types import SimpleNamespace

    from server.jobs import _coalesce

    def run(name: str, deployment: str, auto: bool) -> SimpleNamespace:
        return SimpleNamespace(id=name, deployment_id=deployment, auto_scheduled=auto)

    runs = [run("m1", "monitor", True), run("r1", "retrain", False), run("m2", "monitor", True),
            run("r2", "retrain", False), run("m3", "monitor", True), run("o1", "other", True)]
    assert [(r.id, superseded) for r, superseded in _coalesce(runs)] == [
        ("m1", True), ("r1", False), ("m2", True), ("r2", False), ("m3", False), ("o1", False)]
