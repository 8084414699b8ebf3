"""The closed loop end to end, both outcomes, with real Prefect flows:
serve v1 -> drifted traffic -> drift alert fires -> retrain triggers -> v2 passes the
gates -> canary -> promoted; then a worse candidate is blocked and v2 keeps serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from ..conftest import DATA, build_loop


def _send(platform, rows: list[dict], deployment: str = "loans") -> None:
    """Serve rows one request each (the pipeline logs them), and feed their true labels back."""
    labels = []
    names = {spec["name"] for spec in platform.deployments.route(deployment).primary.session.inputs}
    for row in rows:
        features = {k: v for k, v in row.items() if k in names}
        answer = platform.deployments.predict(deployment, [features])
        labels.append((answer.request_id, int(row["default"])))
    platform.monitoring.record_feedback(deployment, labels)


@contextmanager
def live_traffic(platform, rows: list[dict], *, start: int) -> Iterator[None]:
    """Serve ``rows`` (from ``start``, round and round) on a thread while the block runs."""
    stop = threading.Event()

    def live() -> None:
        i = start
        while not stop.is_set():
            _send(platform, [rows[i % len(rows)]])
            i += 1

    sender = threading.Thread(target=live)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join(30)


@pytest.mark.slow
def test_the_loop_retrains_releases_and_blocks_a_worse_candidate(prefect_harness, tmp_path: Path) -> None:
    import flows

    platform, _, _ = build_loop(tmp_path / "home")
    flows.bind(platform)
    home = str(platform.settings.home)
    drifted = pacsv.read_csv(DATA / "loans_drifted.csv")
    traffic, fresh = drifted.slice(0, 600).to_pylist(), drifted.slice(600)
    fresh_csv = tmp_path / "fresh.csv"
    pacsv.write_csv(fresh, fresh_csv)
    try:
        since = platform.deployments.get("loans").updated_at.isoformat()
        _send(platform, traffic[:400])

        # 1. the monitor sees the drift, the alert fires, retraining is asked for
        checked = flows.monitor_flow(home, "loans")
        fired = {t["rule"]: t["state"] for t in checked["transitions"]}
        assert fired.get("drift-feature") == "firing", checked
        assert checked["retrain"] and "drift-feature" in checked["reason"]
        alert = next(a for a in platform.alerts.open_alerts() if a.rule == "drift-feature")
        assert alert.evidence["feature"] == "credit_score" and alert.evidence["rows"] >= 400

        # 2. retrain on the newest data; gates on fresh labels; canary under live traffic; promoted
        with live_traffic(platform, traffic, start=400):
            result = flows.retrain_release_flow(home, "loans", str(fresh_csv), since=since, observe_s=90,
                                                min_requests=20, trigger=checked["reason"])
        assert result["gates"]["passed"], result["gates"]
        assert result["decision"] == "promote", result
        v2 = result["version"]
        served = platform.deployments.get("loans")
        assert (served.strategy, served.version) == ("single", v2)
        scores = result["gates"]["scores"]
        assert scores[v2]["roc_auc"] >= scores["1.0.0"]["roc_auc"] - 0.01

        # lineage: trigger -> run -> version -> deployment revision, all in the audit chain
        lineage = platform.registry.lineage("loan-default", v2)
        assert lineage.version.run_id == result["run_id"] and result["commit"] in lineage.version.data_commits
        actions = [e.action for e in platform.audit.events(limit=200)]
        for action in ("loop.retrain_triggered", "deployment.canary", "deployment.promote", "alert.fire"):
            assert action in actions, action
        assert [r.action for r in platform.deployments.revisions("loans")[:2]] == ["promote", "canary"]

        # 3. a worse candidate is blocked: v2 keeps serving and the alert says why
        _send(platform, traffic[:200])
        worse = flows.retrain_release_flow(home, "loans", str(fresh_csv), path="loans/fresh-again.csv",
                                           algorithm="random_forest", since=since,
                                           tune=[{"n_estimators": 1, "max_depth": 1},
                                                 {"n_estimators": 2, "max_depth": 2}])
        assert worse["decision"] == "blocked" and worse["gates"]["reasons"], worse
        # tuning trained both parameter sets (in parallel tasks) and kept the better one
        assert len(worse["tuned"]) == 2 and len({t["run_id"] for t in worse["tuned"]}) == 2
        assert worse["run_id"] == max(worse["tuned"], key=lambda t: t["roc_auc"])["run_id"]
        assert platform.deployments.get("loans").version == v2
        blocked = next(a for a in platform.alerts.open_alerts() if a.rule == "candidate-blocked")
        assert blocked.state == "firing" and blocked.evidence["candidate"] == worse["version"]
        assert blocked.evidence["reasons"] == worse["gates"]["reasons"]
        assert platform.audit.verify() is None

        # 4. a flow that fails raises the flow-failed alert; a clean run resolves it
        failed = flows.retrain_release_flow(home, "loans", str(tmp_path / "missing.csv"), return_state=True)
        assert failed.is_failed()
        alert = next(a for a in platform.alerts.open_alerts() if a.rule == "flow-failed")
        assert alert.subject == "retrain-release" and "missing.csv" in alert.evidence["message"]
    finally:
        flows.unbind(platform)
        platform.close()


def test_labelled_window_joins_feedback(tmp_path: Path) -> None:
    from mlops_lite.monitoring.loop import labelled_window

    platform, _, _ = build_loop(tmp_path / "home")
    try:
        rows = pacsv.read_csv(DATA / "loans_holdout.csv").slice(0, 40).to_pylist()
        _send(platform, rows)
        table = labelled_window(platform, "loans", target="default")
        assert table.num_rows == 40 and table.column("default").type == pa.int64()
        assert table.column("default").to_pylist() == [int(r["default"]) for r in rows]
        assert table.column("income").to_pylist() == [float(r["income"]) for r in rows]
    finally:
        platform.close()


def test_a_labelled_window_longer_than_a_batch_is_scored_in_batches(tmp_path: Path) -> None:
    """The gate scores every fresh labelled row, however many: more than the session's
    batch limit (10,000) is scored in batches, with the same figures."""
    from mlops_lite.monitoring.loop import score_on_labelled

    platform, _, spec = build_loop(tmp_path / "home")
    try:
        base = pacsv.read_csv(DATA / "loans_holdout.csv").select([*spec.numeric, *spec.categorical, "default"])
        copies = 10_001 // base.num_rows + 1
        long = pa.concat_tables([base] * copies)
        assert long.num_rows > platform.deployments.route("loans").primary.session.max_batch_size
        one = score_on_labelled(platform, [("loan-default", "1.0.0")], base, "default")["1.0.0"]
        many = score_on_labelled(platform, [("loan-default", "1.0.0")], long, "default")["1.0.0"]
        assert many["rows"] == long.num_rows
        for metric in ("accuracy", "roc_auc", "f1"):
            assert many[metric] == pytest.approx(one[metric]), metric
    finally:
        platform.close()


def test_the_daemons_monitor_job_checks_every_deployment(tmp_path: Path) -> None:
    """The APScheduler job of `mlops-lite up --no-prefect`: one window per deployment."""
    from server.jobs import DaemonJobs

    platform, _, _ = build_loop(tmp_path / "home")
    try:
        _send(platform, pacsv.read_csv(DATA / "loans_drifted.csv").slice(0, 300).to_pylist())
        settings = platform.settings.model_copy(update={"auto_retrain": False})
        jobs = DaemonJobs(platform, settings, prefect_url=None, load_flows=lambda: None, echo=lambda _: None)
        (result,) = jobs.monitor_all()
        assert result["deployment"] == "loans" and result["retrain"] and "drift-feature" in result["reason"]
        again = jobs.monitor_all()[0]  # the same revision and head of main: nothing new since
        assert again["retrain"] is False and "nothing new since" in again["held"]
        # new data merged to main is a trigger of its own; so soon after the drift's, at the
        # same revision, the debounce holds it (the decision's rules: test_loop_settles.py)
        branch = platform.data.repo("loans").branch("more")
        branch.create("main")
        platform.data.repo("loans").create(classification="internal", exist_ok=True)
        platform.data.ingest("loans", DATA / "loans_holdout.csv", "loans/more.csv", branch="more")
        head = branch.merge_into("main").id
        (moved,) = jobs.monitor_all()
        assert not moved["retrain"] and moved["held"].startswith("debounced")
        assert head[:12] in moved["reason"] and "new data merged" in moved["reason"]
    finally:
        platform.close()


@pytest.mark.slow
def test_tuning_runs_on_a_local_dask_cluster(prefect_harness, tmp_path: Path) -> None:
    import flows
    from flows.closed_loop import tune_flow_with
    from mlops_lite.errors import InvalidInput

    platform, _, _ = build_loop(tmp_path / "home")
    flows.bind(platform)
    try:
        home = str(platform.settings.home)
        commit = platform.data.repo("loans").ref("main").resolve()
        grid = [{"C": 0.01}, {"C": 1.0}, {"C": 100.0}]
        best = tune_flow_with("dask")(home, "loans", commit, grid)
        assert [t["params"] for t in best["tuned"]] == grid and len({t["run_id"] for t in best["tuned"]}) == 3
        assert best["metrics"]["roc_auc"] == max(t["roc_auc"] for t in best["tuned"])
        assert {float(platform.tracking.get_run(t["run_id"]).params["C"]) for t in best["tuned"]} == {0.01, 1.0, 100.0}
        with pytest.raises(InvalidInput) as info:
            tune_flow_with("spark")
        assert info.value.field == "task_runner"
    finally:
        flows.unbind(platform)
        platform.close()


@pytest.mark.slow
def test_the_release_waits_for_a_human_when_the_policy_asks(prefect_harness, tmp_path: Path) -> None:
    """[approvals] required = 1: the flow run pauses (Paused in Prefect, keyed by the
    request); an approver's yes resumes it, the canary goes out and is promoted; a no
    resumes it into a block."""
    import flows

    platform, _, _ = build_loop(tmp_path / "home")
    flows.bind(platform)
    home = str(platform.settings.home)
    policies = platform.settings.home / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "loan-default.toml").write_text("[approvals]\nrequired = 1\n")
    approver, _ = platform.tokens.create("alice", "approver")
    drifted = pacsv.read_csv(DATA / "loans_drifted.csv")
    traffic = drifted.slice(0, 400).to_pylist()
    fresh_csv = tmp_path / "fresh.csv"
    pacsv.write_csv(drifted.slice(600), fresh_csv)
    since = platform.deployments.get("loans").updated_at.isoformat()
    _send(platform, traffic[:200])
    results: list[dict] = []

    def release(**kwargs) -> None:
        results.append(flows.retrain_release_flow(home, "loans", str(fresh_csv), since=since, observe_s=60,
                                                  approval_timeout_s=60, **kwargs))

    def pending_request():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = platform.policy.requests("loan-default", "pending")
            if waiting:
                return waiting[0]
            time.sleep(0.2)
        raise AssertionError("no approval request was opened")

    def paused_run():
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
        from prefect.client.schemas.objects import StateType

        deadline = time.monotonic() + 30
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
                if runs:
                    return runs[0]
                time.sleep(0.2)
        raise AssertionError("the flow run never showed as Paused")

    try:
        with live_traffic(platform, traffic, start=200):
            runner = threading.Thread(target=release)
            runner.start()
            request = pending_request()
            paused = paused_run()
            assert paused.state.state_details.pause_key.startswith(f"approval-{request.id}")
            assert platform.deployments.get("loans").strategy == "single"  # nothing moved while it waits
            platform.policy.approve(request.id, identity=approver, comment="looks right")
            runner.join(120)
            (approved,) = results
            assert approved["approval"]["approved"] and approved["decision"] == "promote", approved
            assert approved["approval"]["pauses"] >= 1
            assert platform.deployments.get("loans").version == approved["version"]

            runner = threading.Thread(target=release, kwargs={"path": "loans/fresh-again.csv",
                                                              "params": {"C": 0.5}})
            runner.start()
            request = pending_request()
            platform.policy.reject(request.id, identity=approver, comment="not now")
            runner.join(120)
            rejected = results[1]
            assert rejected["decision"] == "blocked" and "rejected" in rejected["gates"]["reasons"][0]
            assert platform.deployments.get("loans").version == approved["version"]
    finally:
        flows.unbind(platform)
        platform.close()


@pytest.mark.slow
def test_a_rerun_reuses_the_cached_training_and_a_failed_run_moves_nothing(prefect_harness, tmp_path: Path) -> None:
    import flows

    platform, _, _ = build_loop(tmp_path / "home")
    flows.bind(platform)
    try:
        home = str(platform.settings.home)
        fresh_csv = tmp_path / "fresh.csv"
        pacsv.write_csv(pacsv.read_csv(DATA / "loans_drifted.csv").slice(600), fresh_csv)
        first = flows.retrain_release_flow(home, "loans", str(fresh_csv), path="loans/fresh.csv")
        runs = platform.tracking.count()
        again = flows.retrain_release_flow(home, "loans", str(fresh_csv), path="loans/fresh.csv")
        assert again["commit"] == first["commit"] and again["run_id"] == first["run_id"]
        assert platform.tracking.count() == runs  # the same commit and params did not train again
        # both stopped short of a canary (no fresh labels were logged): nothing moved
        assert first["decision"] == again["decision"] == "blocked"
        before = platform.deployments.get("loans")
        aliases = platform.registry.aliases("loan-default")
        failed = flows.retrain_release_flow(home, "nope", str(fresh_csv), path="loans/other.csv", return_state=True)
        assert failed.is_failed()
        assert platform.deployments.get("loans") == before
        assert platform.registry.aliases("loan-default") == aliases
        for version in platform.registry.list_versions("loan-default"):  # registered whole, or not at all
            assert platform.registry.model_bytes("loan-default", version.version)
    finally:
        flows.unbind(platform)
        platform.close()


def test_a_lossy_prediction_log_raises_an_alert(tmp_path: Path) -> None:
    from mlops_lite.monitoring.loop import check_deployment

    platform, _, _ = build_loop(tmp_path / "home")
    try:
        platform.monitoring.log.max_rows = 1  # a tiny queue: a 2-row request cannot be logged
        platform.deployments.predict("loans", _feature_rows(platform, 2))  # answered; its log rows dropped
        check_deployment(platform, "loans")
        lossy = next(a for a in platform.alerts.open_alerts() if a.rule == "prediction-log-loss")
        assert lossy.state == "firing" and lossy.evidence["rows_dropped"] == 2
    finally:
        platform.close()


def _feature_rows(platform, n: int) -> list[dict]:
    names = {spec["name"] for spec in platform.deployments.route("loans").primary.session.inputs}
    return [{k: v for k, v in row.items() if k in names}
            for row in pacsv.read_csv(DATA / "loans_holdout.csv").slice(0, n).to_pylist()]
