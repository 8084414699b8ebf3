"""The closed loop's flows over HTTP, as a Prefect worker runs them: no Platform is bound,
``MLOPS_LITE_URL`` and ``MLOPS_LITE_TOKEN`` name a real server, so every task gets a
``RemotePlatform``. Training runs in this process and the finished run is recorded on the
server; monitoring, gates, the canary's verdict and alerts are answered by the server,
which owns the prediction log."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from mlops_lite.client import RemotePlatform

from ..conftest import DATA, build_loop
from .test_closed_loop import _send, live_traffic


@pytest.mark.slow
def test_the_loop_runs_over_http_as_on_a_worker(prefect_harness, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import flows
    from server import create_app
    from server.runner import serve_in_thread

    platform, token, _ = build_loop(tmp_path / "home")
    server = serve_in_thread(create_app(platform))
    monkeypatch.setenv("MLOPS_LITE_URL", server.url)
    monkeypatch.setenv("MLOPS_LITE_TOKEN", token)
    worker_home = str(tmp_path / "elsewhere")  # a worker's own path: nothing is opened there
    drifted = pacsv.read_csv(DATA / "loans_drifted.csv")
    traffic, fresh = drifted.slice(0, 600).to_pylist(), drifted.slice(600)
    fresh_csv = tmp_path / "fresh.csv"
    pacsv.write_csv(fresh, fresh_csv)
    runs_before = platform.tracking.count()
    # PII is anonymized on the worker, before upload, with the daemon's key and the
    # repository's patterns (read from the server); main would refuse it in clear.
    platform.data.repo("loans").configure(pii_patterns=["^(name|email|phone)$"])
    monkeypatch.setenv("MLOPS_LITE_ANONYMIZATION_KEY", platform.protection.anonymize_root().key.hex())
    try:
        assert isinstance(flows.platform_for(worker_home), RemotePlatform)
        since = platform.deployments.get("loans").updated_at.isoformat()
        _send(platform, traffic[:400])

        checked = flows.monitor_flow(worker_home, "loans")
        assert {t["rule"]: t["state"] for t in checked["transitions"]}.get("drift-feature") == "firing", checked
        assert checked["retrain"]

        with live_traffic(platform, traffic, start=400):
            result = flows.retrain_release_flow(worker_home, "loans", str(fresh_csv), since=since, observe_s=90,
                                                min_requests=20, trigger=checked["reason"])
        assert result["gates"]["passed"] and result["decision"] == "promote", result
        served = platform.deployments.get("loans")
        assert (served.strategy, served.version) == ("single", result["version"])

        committed = platform.data.repo("loans").ref(result["commit"]).read_table("loans/fresh-*.csv").table
        key = platform.privacy.anonymizer.key("loans", platform.data.repo("loans").config().anonymization_key_version)
        assert committed.column("email").to_pylist() == [
            platform.privacy.anonymizer.token(e, key) for e in fresh.column("email").to_pylist()]

        # The run was trained here and recorded on the server in one request, with its lineage.
        run = platform.tracking.get_run(result["run_id"])
        assert run.status == "finished" and tuple(run.data_commits) == (result["commit"],)
        assert run.tags["trained_by_pid"] == str(os.getpid()) and "trained_on_host" in run.tags
        assert platform.tracking.count() == runs_before + 1
        version = platform.registry.get_version("loan-default", result["version"])
        assert version.run_id == result["run_id"] and result["commit"] in version.data_commits
        actions = [e.action for e in platform.audit.events(limit=200)]
        for action in ("loop.retrain_triggered", "run.start", "deployment.canary", "deployment.promote"):
            assert action in actions, action

        # A failing flow over HTTP raises the flow-failed alert on the server.
        failed = flows.retrain_release_flow(worker_home, "loans", str(tmp_path / "missing.csv"), return_state=True)
        assert failed.is_failed()
        alert = next(a for a in platform.alerts.open_alerts() if a.rule == "flow-failed")
        assert alert.subject == "retrain-release"
        assert platform.audit.verify() is None
    finally:
        flows.forget(worker_home)
        server.stop()
        platform.close()
