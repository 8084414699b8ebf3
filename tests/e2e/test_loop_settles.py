"""The loop's rules at rest, in-process and quick (the soak over `up` is in
test_loop_at_rest.py): a candidate that is already out is nothing to release, a
drift alert resolves once the window's traffic looks like the training data again, and
the one retrain decision (new data, the schedule, its guards kept in the store) holds
the same over HTTP, after a restart, and with Prefect as the scheduler."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

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


def _merge_more_data(platform, branch: str = "more") -> str:
    """Merge a file of new rows to main of 'loans' beside the training file; the new head."""
    platform.data.repo("loans").branch(branch).create("main")
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    platform.data.ingest("loans", DATA / "loans_holdout.csv", f"loans/{branch}.csv", branch=branch)
    return platform.data.repo("loans").branch(branch).merge_into("main").id


def test_new_data_triggers_once_per_head_and_revision_and_the_guard_survives_a_restart(tmp_path: Path) -> None:
    from mlops_lite.config import load_settings
    from mlops_lite.errors import NotFound
    from mlops_lite.monitoring.triggers import abandon
    from mlops_lite.platform import open_local

    platform, _, _ = build_loop(tmp_path / "home")
    try:
        quiet = platform.loop.should_retrain("loans")
        assert (quiet["retrain"], quiet["reasons"], quiet["held"]) == (False, [], "")
        head = _merge_more_data(platform)
        asked = platform.loop.should_retrain("loans")
        assert asked["retrain"] and asked["head"] == head and asked["revision"] == 1
        assert asked["reasons"] == [f"new data merged to main of loans: {head[:12]} (the serving version trained on "
                                    f"{platform.registry.get_version('loan-default', '1.0.0').data_commits[0][:12]})"]
        [event] = platform.audit.about("deployment:loans", action_prefix="loop.retrain_triggered")
        assert (event.after["revision"], event.after["head"]) == (1, head)
        again = platform.loop.should_retrain("loans")
        assert not again["retrain"] and again["reasons"] == asked["reasons"]
        assert again["held"] == f"already retrained on main@{head[:12]} of loans with revision 1 serving; nothing new since"
    finally:
        platform.close()

    platform = open_local(load_settings(home=tmp_path / "home"))  # the daemon restarted: the guard is in the store
    try:
        assert "nothing new since" in platform.loop.should_retrain("loans")["held"]
        # A yes that could not run is abandoned: the same state may be tried again after the debounce.
        abandon(platform, "loans", "another retrain was running")
        held = platform.loop.should_retrain("loans", debounce_s=600)
        assert not held["retrain"] and held["held"].startswith("debounced: a retrain was triggered")
        later = (utcnow() + timedelta(seconds=601)).isoformat()
        assert platform.loop.should_retrain("loans", now=later, debounce_s=600)["retrain"]
        assert "nothing new since" in platform.loop.should_retrain("loans", now=later)["held"]
        with pytest.raises(NotFound):
            platform.loop.should_retrain("nope")
    finally:
        platform.close()


def test_the_schedule_is_a_trigger_and_a_release_in_progress_holds_every_trigger(tmp_path: Path) -> None:
    platform, _, spec = build_loop(tmp_path / "home")
    try:
        platform.settings = platform.settings.model_copy(update={"retrain_interval_s": 3600.0})
        assert platform.loop.should_retrain("loans")["reasons"] == []  # the revision went live just now
        due = (utcnow() + timedelta(seconds=3601)).isoformat()
        scheduled = platform.loop.should_retrain("loans", now=due)
        assert scheduled["retrain"] and scheduled["reasons"][0].startswith("scheduled retrain: every 3600 s")
        # nothing changed since: the schedule alone would only repeat that retrain
        assert "nothing new since" in platform.loop.should_retrain("loans", now=due)["held"]

        version = _second_version(platform, spec)
        platform.deployments.canary("loans", "loan-default", version, weight=0.2, reason="test")
        _merge_more_data(platform)
        held = platform.loop.should_retrain("loans")
        assert not held["retrain"] and held["reasons"][0].startswith("new data merged to main of loans")
        assert held["held"] == f"a release is in progress: canary of loan-default@{version}"
    finally:
        platform.close()


def test_the_decision_is_asked_over_http_as_a_flow_on_a_worker_does(tmp_path: Path) -> None:
    from mlops_lite.client import RemotePlatform
    from mlops_lite.errors import InvalidInput
    from server import create_app
    from server.runner import serve_in_thread

    platform, token, _ = build_loop(tmp_path / "home")
    server = serve_in_thread(create_app(platform))
    try:
        with RemotePlatform(server.url, token) as remote:
            head = _merge_more_data(platform)
            asked = remote.loop.should_retrain("loans")
            assert asked["retrain"] and asked["head"] == head
            assert "nothing new since" in remote.loop.should_retrain("loans")["held"]
            with pytest.raises(InvalidInput) as bad:
                remote.loop.should_retrain("loans", now="yesterday")
            assert bad.value.field == "now"
    finally:
        server.stop()
        platform.close()


def test_with_prefect_as_the_scheduler_new_data_triggers_one_retrain(prefect_harness, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's Prefect path: its ``monitor`` deployment runs (here, a run created by
    hand), the flow's decision sees new data on main, the daemon runs one retrain; the
    next pass, and a pass after a restart, hold it: nothing new since."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    import flows
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local
    from server.jobs import DaemonJobs

    api = str(PREFECT_API_URL.value())
    monkeypatch.setenv("PREFECT_API_URL", api)  # the daemon sets it for its runs; put back afterwards
    platform, _, _ = build_loop(tmp_path / "home")
    said: list[str] = []
    jobs = DaemonJobs(platform, platform.settings, prefect_url=api.removesuffix("/api"), load_flows=lambda: flows,
                      echo=said.append)
    jobs.start()
    try:
        _wait(lambda: "monitor" in jobs.deployment_ids, 120, "the monitor deployment")
        head = _merge_more_data(platform)

        def monitor_pass() -> None:
            done = jobs.runs_executed
            with get_client(sync_client=True) as client:
                client.create_flow_run_from_deployment(UUID(jobs.deployment_ids["monitor"]))
            _wait(lambda: jobs.runs_executed > done, 120, "the monitor run")

        monitor_pass()
        _wait(lambda: any(s.startswith("retrain for loans:") for s in said), 180, "the retrain")
        [event] = platform.audit.about("deployment:loans", action_prefix="loop.retrain_triggered")
        assert event.after["head"] == head and "new data merged to main of loans" in event.after["reasons"][0]
        trained = platform.registry.get_version("loan-default", "1.1.0")
        assert trained.data_commits == (head,)  # retrained on the new head, with the recipe of 1.0.0
        recipe = platform.tracking.get_run(trained.run_id)
        assert recipe.tags["path"] == "loans/*.csv" and recipe.params["sensitive"] == "gender"

        monitor_pass()
        assert len(platform.audit.about("deployment:loans", action_prefix="loop.retrain_triggered")) == 1
        assert [s for s in said if s.startswith("retrain for loans:")] == ["retrain for loans: blocked (1.1.0)"]
    finally:
        jobs.stop()
        flows.unbind(platform)
        platform.close()

    platform = open_local(load_settings(home=tmp_path / "home"))
    try:
        restarted = DaemonJobs(platform, platform.settings, prefect_url=None, load_flows=lambda: flows,
                               echo=said.append)
        [answer] = restarted.monitor_all()
        assert not answer["retrain"] and "nothing new since" in answer["held"]
    finally:
        platform.close()


def _wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        time.sleep(0.2)


def test_a_schedules_backlog_runs_once_and_runs_started_by_hand_all_run() -> None:
    from types import SimpleNamespace

    from server.jobs import _coalesce

    def run(name: str, deployment: str, auto: bool) -> SimpleNamespace:
        return SimpleNamespace(id=name, deployment_id=deployment, auto_scheduled=auto)

    runs = [run("m1", "monitor", True), run("r1", "retrain", False), run("m2", "monitor", True),
            run("r2", "retrain", False), run("m3", "monitor", True), run("o1", "other", True)]
    assert [(r.id, superseded) for r, superseded in _coalesce(runs)] == [
        ("m1", True), ("r1", False), ("m2", True), ("r2", False), ("m3", False), ("o1", False)]
