"""Releases as users make them: HTTP and CLI, hot swaps under load, stateless workers."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlops_lite import TrainingSpec

from ..conftest import FEATURE_EXCLUDE, build_loop, holdout_rows
from .test_daemon import SCRIPT, Daemon, _env, cli, free_port

SWAP_SECONDS = float(os.environ.get("MLOPS_LITE_SWAP_TEST_S", "30"))


def add_forest(platform) -> str:
    table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender",
                              algorithm="random_forest", params={"n_estimators": 20, "max_depth": 6})
    run = platform.training.train("loans", "main", "loans/train.csv", spec).run
    return platform.registry.register_from_run("loan-default", run.id).version


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str, object, str, str]]:
    from server.app import create_app
    from server.runner import serve_in_thread

    platform, token, spec = build_loop(tmp_path_factory.mktemp("releases") / "home")
    v2 = add_forest(platform)
    running = serve_in_thread(create_app(platform))
    yield platform, token, spec, v2, running.url
    running.stop()
    platform.close()


def test_releases_over_http_are_revisions_with_audit(served) -> None:
    platform, token, spec, v2, url = served
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers) as client:
        assert client.put("/v1/deployments/loans", json={"model": "loan-default", "version": "1.0.0"}).status_code == 200
        canary = client.post("/v1/deployments/loans/canary",
                             json={"model": "loan-default", "version": v2, "weight": 0.5, "reason": "try v2"})
        assert canary.status_code == 200, canary.text
        assert (canary.json()["strategy"], canary.json()["weight"]) == ("canary", 0.5)
        rows = holdout_rows(spec, 1)
        seen = Counter(client.post("/v1/deployments/loans/predict", json={"instances": rows}).json()["version"]
                       for _ in range(60))
        assert set(seen) == {"1.0.0", v2}
        sticky = {client.post("/v1/deployments/loans/predict", json={"instances": rows, "key": "user-7"}).json()
                  ["version"] for _ in range(15)}
        assert len(sticky) == 1
        # the OIP names the version that answered; a named version answers from its slot
        oip = client.post(f"/v2/models/loans/versions/{v2}/infer", json={"inputs": [
            {"name": s["name"], "shape": [1, 1], "datatype": "FP32" if s["type"] == "float" else "BYTES",
             "data": [rows[0][s["name"]]]} for s in platform.deployments.route("loans").primary.session.inputs]})
        assert oip.status_code == 200 and oip.json()["model_version"] == v2
        bad = client.post("/v1/deployments/loans/canary", json={"model": "loan-default", "version": v2, "weight": 2})
        assert bad.status_code == 422 and bad.json()["field"] == "weight"
        assert client.post("/v1/deployments/loans/promote", json={"reason": "v2 looks good"}).json()["version"] == v2
        rolled = client.post("/v1/deployments/loans/rollback", json={}).json()
        assert (rolled["strategy"], rolled["version"]) == ("canary", "1.0.0")
        assert client.post("/v1/deployments/loans/stage", json={"model": "loan-default", "version": v2}).status_code == 200
        assert client.post("/v1/deployments/loans/switch", json={}).json()["live_slot"] == "green"
        revisions = client.get("/v1/deployments/loans/revisions").json()
        assert [r["action"] for r in revisions[:5]] == ["switch", "stage", "rollback", "promote", "canary"]
        assert client.get("/v1/deployments/nope").status_code == 404
    actions = [e.action for e in platform.audit.events(limit=10) if e.object == "deployment:loans"]
    assert actions[:5] == ["deployment.switch", "deployment.stage", "deployment.rollback", "deployment.promote",
                           "deployment.canary"]
    assert platform.audit.verify() is None


@pytest.mark.slow
def test_hot_swaps_under_load_drop_no_request(served) -> None:
    """SWAP_SECONDS of load from 4 clients while the deployment is swapped, canaried,
    promoted, switched and rolled back every ~0.3 s: every request answers 200."""
    platform, token, spec, v2, url = served
    deployments = platform.deployments
    deployments.deploy("loans", "loan-default", "1.0.0")
    rows = holdout_rows(spec, 3)
    stop = threading.Event()
    statuses: Counter = Counter()
    versions: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            while not stop.is_set():
                try:
                    response = http.post("/v1/deployments/loans/predict", json={"instances": rows})
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        versions[response.json()["version"]] += 1
                    else:
                        failures.append(response.text)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    steps = [lambda: deployments.canary("loans", "loan-default", v2, weight=0.3),
             lambda: deployments.promote("loans"),
             lambda: deployments.rollback("loans"),
             lambda: deployments.stage("loans", "loan-default", "1.0.0" if deployments.get("loans").version == v2
                                       else v2),
             lambda: deployments.switch("loans"),
             lambda: deployments.switch("loans"),
             lambda: deployments.deploy("loans", "loan-default", "1.0.0")]
    changes = 0
    deadline = time.monotonic() + SWAP_SECONDS
    try:
        while time.monotonic() < deadline:
            steps[changes % len(steps)]()
            changes += 1
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:3]
    assert set(statuses) == {200} and sum(statuses.values()) > 100
    assert set(versions) == {"1.0.0", v2}
    assert changes >= 10
    assert platform.audit.verify() is None


def test_the_deploy_cli_releases_and_rolls_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform, _, _ = build_loop(home)
    v2 = add_forest(platform)
    platform.close()
    done = cli(home, "deploy", "canary", "loans", f"loan-default@{v2}", "--weight", "0.2", "--reason", "try it")
    assert done.returncode == 0, done.stderr
    assert f"canary loan-default@{v2} takes 20%" in done.stdout
    done = cli(home, "deploy", "status", "loans")
    assert done.returncode == 0 and "canary" in done.stdout and "try it" in done.stdout
    assert f"loans: loan-default@{v2}" in cli(home, "deploy", "promote", "loans").stdout
    done = cli(home, "deploy", "rollback", "loans")
    assert done.returncode == 0 and "canary" in done.stdout
    assert "shadows" in cli(home, "deploy", "shadow", "loans", f"loan-default@{v2}").stdout
    done = cli(home, "deploy", "switch", "loans")
    assert done.returncode == 1 and "no standby slot" in done.stderr and "Traceback" not in done.stderr
    done = cli(home, "deploy", "canary", "loans", "loan-default", "--weight", "0.2")
    assert done.returncode == 1 and "NAME@VERSION" in done.stderr
    listed = cli(home, "deploy", "list", "--json")
    assert listed.returncode == 0 and '"strategy": "shadow"' in listed.stdout


@pytest.mark.slow
def test_stateless_workers_follow_the_control_plane(tmp_path: Path) -> None:
    """`mlops-lite serve --workers 2` beside `mlops-lite up`: workers serve the deployment
    from the object store and pick up a canary made on the control plane within a poll."""
    home = tmp_path / "home"
    platform, token, spec = build_loop(home)
    v2 = add_forest(platform)
    platform.close()
    daemon = Daemon(home, free_port(), "--no-prefect")
    serve = None
    try:
        daemon.wait_until(daemon.healthy, 60, "the daemon answering")
        port = free_port()
        log = tmp_path / "serve.log"
        with open(log, "wb") as out:
            serve = subprocess.Popen([str(SCRIPT), "serve", "--workers", "2", "--port", str(port), "--poll", "0.2"],
                                     env=_env(home), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        headers = {"Authorization": f"Bearer {token}"}
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/v2/health/ready", headers=headers, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + 60
        while not ready():
            assert serve.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.25)
        rows = holdout_rows(spec, 2)
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            first = client.post("/v1/deployments/loans/predict", json={"instances": rows})
            assert first.status_code == 200 and first.json()["version"] == "1.0.0"
            assert client.post("/v1/deployments/loans/predict",
                               headers={"Authorization": "Bearer nope"}, json={"instances": rows}).status_code == 401
            changed = cli(home, "deploy", "canary", "loans", f"loan-default@{v2}", "--weight", "0.5")
            assert changed.returncode == 0, changed.stderr
            deadline = time.monotonic() + 20
            seen: set[str] = set()
            while seen != {"1.0.0", v2} and time.monotonic() < deadline:
                seen.add(client.post("/v1/deployments/loans/predict", json={"instances": rows}).json()["version"])
            assert seen == {"1.0.0", v2}, log.read_text()
            assert "mlops_lite_requests_total" in client.get("/metrics").text
    finally:
        if serve is not None:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(30)
        daemon.kill()
