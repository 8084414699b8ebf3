"""Scale-out: the loop's flows on the ``mlops-lite`` Prefect work pool, run by a real
``mlops-lite worker`` (a Prefect process worker) in processes of their own, reaching the
daemon's stores over HTTP.

The whole chain runs as it would in production: fresh data lands on main; a scheduled
``monitor`` run in the daemon sees the drift and fires the alert; with
``flow_runner = "workers"`` the trigger queues ``retrain-release/workers``; the worker
trains, the daemon answers gates and the canary's verdict, and the candidate is promoted."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.csv as pacsv
import pytest

from mlops_lite.client import RemotePlatform

from ..conftest import DATA, build_loop
from .test_daemon import (
    SCRIPT,
    Daemon,
    _env,
    create_flow_run,
    free_port,
    kill_prefect_server,
    prefect_headers,
    stop_group,
)


def _serve(client: httpx.Client, rows: list[dict[str, Any]], features: list[str]) -> None:
    """One request per row over HTTP, then the rows' true labels as feedback."""
    labels = []
    for row in rows:
        answer = client.post("/v1/deployments/loans/predict", json={"instances": [{k: row[k] for k in features}]})
        assert answer.status_code == 200, answer.text
        labels.append({"request_id": answer.json()["request_id"], "label": int(row["default"])})
    assert client.post("/v1/deployments/loans/feedback", json={"labels": labels}).status_code == 200


@pytest.mark.slow
def test_a_prefect_worker_runs_the_triggered_retrain_and_release(tmp_path: Path, daemons: list[Daemon]) -> None:
    home = tmp_path / "home"
    built, token, spec = build_loop(home)
    built.close()
    (home / "mlops-lite.toml").write_text('flow_runner = "workers"\nmonitor_interval_s = 3600\n')
    features = [*spec.numeric, *spec.categorical]
    drifted = pacsv.read_csv(DATA / "loans_drifted.csv")
    traffic, fresh = drifted.slice(0, 600).to_pylist(), drifted.slice(600)
    fresh_csv = tmp_path / "fresh.csv"
    pacsv.write_csv(fresh, fresh_csv)

    prefect_port = free_port()
    daemon = Daemon(home, free_port(), "--prefect-port", str(prefect_port))
    daemons.append(daemon)
    api = f"http://127.0.0.1:{prefect_port}/api"
    auth = prefect_headers(home)
    worker_log = tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    sender: threading.Thread | None = None
    try:
        daemon.wait_until(daemon.healthy, 90, "GET /v1/health answered 200")

        def deployments() -> dict[str, str]:
            try:
                body = httpx.post(f"{api}/deployments/filter", json={}, timeout=10, headers=auth).json()
                flows = {f["id"]: f["name"]
                         for f in httpx.post(f"{api}/flows/filter", json={}, timeout=10, headers=auth).json()}
            except httpx.HTTPError:
                return {}
            return {f"{flows[d['flow_id']]}/{d['name']}": d["id"] for d in body}

        daemon.wait_until(lambda: {"monitor/workers", "retrain-release/workers", "monitor/mlops-lite"}
                          <= set(deployments()), 120, "the flows deployed to the work pool")
        pool = httpx.get(f"{api}/work_pools/mlops-lite", timeout=10, headers=auth).json()
        assert pool["type"] == "process"

        with open(worker_log, "wb") as out:
            worker = subprocess.Popen([str(SCRIPT), "worker", "--limit", "1"], env=_env(home), stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        # Fresh data merged to main, and drifted, labelled traffic on v1.
        with RemotePlatform(daemon.url, token) as remote:
            remote.data.ingest("loans", fresh_csv, "loans/fresh.csv")
        client = httpx.Client(base_url=daemon.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        _serve(client, traffic[:400], features)

        def live() -> None:
            i = 400
            while not stop.is_set():
                _serve(client, [traffic[i % len(traffic)]], features)
                i += 1

        sender = threading.Thread(target=live, daemon=True)
        sender.start()

        # The daemon's monitor run fires the drift alert; its trigger queues the retrain on the pool.
        create_flow_run(api, deployments()["monitor/mlops-lite"], headers=auth)

        def retrain_runs() -> list[dict[str, Any]]:
            return httpx.post(f"{api}/flow_runs/filter", timeout=10, headers=auth, json={
                "deployments": {"id": {"any_": [deployments()["retrain-release/workers"]]}}}).json()

        def finished() -> bool:
            if worker is not None and worker.poll() is not None:
                pytest.fail(f"the worker exited with {worker.returncode}:\n{worker_log.read_text(errors='replace')}")
            runs = retrain_runs()
            return bool(runs) and runs[0]["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED")

        daemon.wait_until(finished, 300, "the retrain-release/workers run finished")
        run = retrain_runs()[0]
        assert run["state"]["type"] == "COMPLETED", (run["state"], worker_log.read_text(errors="replace"),
                                                     daemon.output())
        assert "drift-feature" in run["parameters"]["trigger"]
        stop.set()
        sender.join(30)

        with RemotePlatform(daemon.url, token) as remote:
            served = remote.deployments.get("loans")
            assert (served.strategy, served.version) != ("single", "1.0.0"), served
            assert served.strategy == "single"
            version = remote.registry.get_version("loan-default", served.version)
            trained = remote.tracking.get_run(version.run_id)
            # Trained in the worker's flow-run process, not in the daemon.
            assert trained.tags["trained_by_pid"] not in (str(daemon.pid), "")
            assert int(trained.tags["trained_by_pid"]) != daemon.pid
            revisions = remote.deployments.revisions("loans")
            assert [r.action for r in revisions[:2]] == ["promote", "canary"]
    finally:
        stop.set()
        if sender is not None:
            sender.join(30)
        if worker is not None:
            stop_group(worker)
        kill_prefect_server(prefect_port)
        time.sleep(0)
