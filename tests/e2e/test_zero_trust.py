"""Zero trust inside the node (docs/zero-trust.md): the Prefect API asks for the home's auth
string; a flow run's parameters are checked in the core before anything runs; workers and
serving replicas hold service identities with the narrowest role, never the admin token; a
replica does not ask the control plane again about a token it refused."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import build_loop, holdout_rows
from .test_daemon import SCRIPT, Daemon, _env, _pids_running, free_port, kill_prefect_server, stop_group


def _post_as_prefect_does(url: str, *, headers: dict[str, str], json: Any) -> httpx.Response:
    """A POST retried on 503, as Prefect's own client retries it: Prefect's server answers 503
    ("Service Unavailable") when its SQLite database is briefly locked, and says the request
    may be sent again (the workers that just started and stopped were writing to it)."""
    for attempt in range(6):
        response = httpx.post(url, headers=headers, timeout=10, json=json)
        if response.status_code != 503:
            return response
        time.sleep(0.5 * 2 ** attempt)
    return response


class CountingApp:
    """The control plane's own ASGI app, counting the /v1/whoami requests it answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.whoami = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/whoami":
            self.whoami += 1
        await self.app(scope, receive, send)


@pytest.fixture
def control_plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str, Any]]:
    """A real control plane on 127.0.0.1 over a built loop: (platform, counter, url, spec)."""
    from server.app import create_app
    from server.runner import serve_in_thread

    # The floods below come from one address: keep them under the failed-login limit (429).
    monkeypatch.setenv("MLOPS_LITE_AUTH_FAILURES_MAX", "10000")
    platform, _, spec = build_loop(tmp_path / "home")
    counter = CountingApp(create_app(platform))
    running = serve_in_thread(counter)  # type: ignore[arg-type]  # any ASGI app serves
    try:
        yield platform, counter, running.url, spec
    finally:
        running.stop()
        platform.close()


def test_a_replica_asks_the_control_plane_once_about_a_refused_token(
        control_plane: tuple[Any, Any, str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from server.runner import serve_in_thread
    from server.serving import RemoteTokens, ServingPlatform, build_serving_app

    platform, counter, url, spec = control_plane
    monkeypatch.setenv("MLOPS_LITE_HOME", str(platform.settings.home))
    identity, replica_token = platform.tokens.create("replica@test", "predictor", service="replica")
    assert identity.kind == "service" and identity.role == "predictor"
    _, caller = platform.tokens.create("app", "predictor")
    replica = serve_in_thread(build_serving_app(ServingPlatform(url, replica_token, poll_s=0.2)))
    try:
        rows = holdout_rows(spec, 2)
        with httpx.Client(base_url=replica.url, timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                answer = client.post("/v1/deployments/loans/predict", json={"instances": rows},
                                     headers={"Authorization": f"Bearer {caller}"})
                if answer.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert answer.status_code == 200, answer.text
            asked = counter.whoami

            # A flood of one bad token: refused every time, asked about once.
            for _ in range(40):
                refused = client.post("/v1/deployments/loans/predict", json={"instances": rows},
                                      headers={"Authorization": "Bearer mll_not-a-token"})
                assert refused.status_code == 401
            assert counter.whoami == asked + 1
            # Each distinct bad token is asked about once, however often it comes back.
            for _ in range(3):
                for i in range(10):
                    assert client.get("/v2/health/ready",
                                      headers={"Authorization": f"Bearer mll_bad-{i}"}).status_code == 401
            assert counter.whoami == asked + 11
            # The good token is still answered from the replica's cache.
            for _ in range(5):
                assert client.post("/v1/deployments/loans/predict", json={"instances": rows},
                                   headers={"Authorization": f"Bearer {caller}"}).status_code == 200
            assert counter.whoami == asked + 11
    finally:
        replica.stop()

    # The refused tokens are remembered for a short while and in bounded number.
    tokens = RemoteTokens(httpx.Client(base_url=url, timeout=10), refused_ttl_s=0.5, refused_max=3)
    before = counter.whoami
    for i in range(5):
        with pytest.raises(Exception, match="not valid"):
            tokens.authenticate(f"mll_other-{i}")
    assert counter.whoami == before + 5 and len(tokens._refused) == 3
    with pytest.raises(Exception, match="not valid"):
        tokens.authenticate("mll_other-4")  # remembered: not asked again
    with pytest.raises(Exception, match="not valid"):
        tokens.authenticate("mll_other-0")  # forgotten (the oldest went first): asked again
    assert counter.whoami == before + 6
    time.sleep(0.6)
    with pytest.raises(Exception, match="not valid"):
        tokens.authenticate("mll_other-4")  # its time is up: asked again
    assert counter.whoami == before + 7

    # The replica's identity reads its routes and nothing else.
    headers = {"Authorization": f"Bearer {replica_token}"}
    assert httpx.get(f"{url}/v1/routing", headers=headers, timeout=10).status_code == 200
    for path in ("/v1/data/repositories/loans/config", "/v1/models", "/v1/runs", "/v1/tokens"):
        assert httpx.get(f"{url}{path}", headers=headers, timeout=10).status_code == 403, path


def test_a_service_token_has_its_service_s_role_and_nothing_more(control_plane: tuple[Any, Any, str, Any]) -> None:
    from mlops_lite.errors import InvalidInput

    platform, _, url, _ = control_plane
    with pytest.raises(InvalidInput) as wrong_role:
        platform.tokens.create("w", "admin", service="worker")
    assert wrong_role.value.field == "role"
    with pytest.raises(InvalidInput) as granted:
        platform.tokens.create("w", "operator", service="worker", grants=["admin:model:*"])
    assert granted.value.field == "grants"
    with pytest.raises(InvalidInput) as unknown:
        platform.tokens.create("w", "operator", service="scheduler")
    assert unknown.value.field == "service"
    admin = platform.tokens.create("ops", "admin")[1]

    # Over HTTP: the same refusals, and the kind in the answer and the listing.
    headers = {"Authorization": f"Bearer {admin}"}
    answer = httpx.post(f"{url}/v1/tokens", headers=headers, timeout=10,
                        json={"name": "w1", "role": "operator", "service": "worker"})
    assert answer.status_code == 201 and answer.json()["kind"] == "service", answer.text
    assert httpx.post(f"{url}/v1/tokens", headers=headers, timeout=10, json={
        "name": "w2", "role": "admin", "service": "worker"}).status_code == 422
    who = httpx.get(f"{url}/v1/whoami", headers={"Authorization": f"Bearer {answer.json()['token']}"},
                    timeout=10).json()
    assert (who["kind"], who["role"], who["principal"]) == ("service", "operator", "token:w1")
    listed = {t["name"]: t for t in httpx.get(f"{url}/v1/tokens", headers=headers, timeout=10).json()}
    assert listed["w1"]["service"] == "worker" and listed["ops"]["service"] is None
    event = next(e for e in platform.audit.events(limit=50) if e.object == f"token:{answer.json()['id']}")
    assert event.after["service"] == "worker"


def test_init_makes_the_prefect_auth_string_once_and_every_client_here_sends_it(tmp_path: Path) -> None:
    from mlops_lite.config import load_settings, prefect_environment
    from mlops_lite.home import init_home

    settings = load_settings(home=tmp_path / "home")
    assert "PREFECT_API_AUTH_STRING" not in prefect_environment(settings)
    init_home(settings)
    auth_file = settings.prefect_auth_file
    auth = auth_file.read_text().strip()
    user, _, password = auth.partition(":")
    assert user == "mlops-lite" and len(password) >= 40
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.inbox.stat().st_mode) == 0o700
    assert prefect_environment(settings)["PREFECT_API_AUTH_STRING"] == auth
    # A home made before the string (none in it) gets one on its next init; an existing one is kept.
    init_home(settings)
    assert auth_file.read_text().strip() == auth
    auth_file.unlink()
    init_home(settings)
    assert auth_file.read_text().strip() not in ("", auth)
    other = load_settings(home=tmp_path / "other")
    init_home(other)
    assert other.prefect_auth_file.read_text() != auth_file.read_text()


# api_tokens as the release before service identities created it.
BEFORE_SERVICES = ("create table api_tokens (id VARCHAR PRIMARY KEY, name VARCHAR, role VARCHAR, token_hash VARCHAR, "
                   "created_at TIMESTAMP WITH TIME ZONE, revoked BOOLEAN, access_key_id VARCHAR, grants JSON, "
                   "expires_at TIMESTAMP WITH TIME ZONE)")


def test_a_home_made_before_service_identities_keeps_its_tokens(tmp_path: Path) -> None:
    import hashlib
    from datetime import UTC, datetime

    import duckdb

    from mlops_lite.metadata import MetadataStore
    from mlops_lite.security.audit import AuditLog
    from mlops_lite.security.tokens import Tokens

    path = tmp_path / "before.duckdb"
    with duckdb.connect(str(path)) as old:
        old.execute(BEFORE_SERVICES)
        old.execute("insert into api_tokens values ('t1', 'old-bot', 'operator', ?, ?, false, null, null, null)",
                    [hashlib.sha256(b"mll_old").hexdigest(), datetime(2026, 1, 2, tzinfo=UTC)])
    store = MetadataStore(f"duckdb:///{path}")
    try:
        tokens = Tokens(store, AuditLog(store, b"k" * 32))
        identity = tokens.authenticate("mll_old")
        assert (identity.name, identity.kind, identity.principal) == ("old-bot", "token", "token:old-bot")
        assert [r.service for r in tokens.list()] == [None]
        made, secret = tokens.create("replica@host", "predictor", service="replica")
        assert made.kind == "service" and tokens.authenticate(secret).kind == "service"
        assert [r.service for r in tokens.list()] == [None, "replica"]
    finally:
        store.close()


def test_a_flow_run_with_a_source_outside_the_allowed_folders_ingests_nothing(
        prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flows
    from mlops_lite.config import load_settings
    from mlops_lite.errors import InvalidInput
    from mlops_lite.platform import open_local

    monkeypatch.delenv("MLOPS_LITE_INGEST_DIRS", raising=False)
    platform = open_local(load_settings(home=tmp_path / "home"))
    flows.bind(platform)
    home = str(platform.settings.home)
    try:
        events = platform.audit.count()
        state = flows.release_loop(home, "/etc/passwd", deployment="loans", model="loan-default",
                                   repository="loans", path="loans/train.csv", target="default",
                                   return_state=True)
        assert state.is_failed()
        error = state.result(raise_on_failure=False)
        assert isinstance(error, InvalidInput) and error.field == "source", error
        for bad in ({"source": "/etc/passwd"}, {"source": str(platform.settings.home / "admin.token")},
                    {"path": "../../etc/x.csv"}, {"repository": "Loans!"}, {"branch": "main..x"}):
            params = {"source": str(platform.settings.inbox / "x.csv"), "repository": "loans", "path": "loans/x.csv",
                      "branch": "main", **bad}
            state = flows.ingest_flow(home, return_state=True, **params)
            assert state.is_failed()
            assert state.result(raise_on_failure=False).field == next(iter(bad)), bad
        # Another home than the one this process serves.
        other = flows.ingest_flow(str(tmp_path / "other"), str(platform.settings.inbox / "x.csv"), "loans",
                                  "loans/x.csv", return_state=True)
        assert other.is_failed() and other.result(raise_on_failure=False).field == "home"
        assert not (tmp_path / "other").exists()
        assert platform.audit.count() == events  # nothing changed
        assert platform.data.repositories() == []
    finally:
        flows.unbind(platform)
        platform.close()


def _basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


@pytest.mark.slow
def test_the_daemon_s_prefect_api_needs_the_home_s_auth_string_and_workers_their_own_identity(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    home = tmp_path / "home"
    built, admin, _ = build_loop(home)
    built.close()
    auth_file = home / "prefect.auth"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    auth = auth_file.read_text().strip()
    prefect_port = free_port()
    daemon = Daemon(home, free_port(), "--prefect-port", str(prefect_port))
    daemons.append(daemon)
    api = f"http://127.0.0.1:{prefect_port}/api"
    good = _basic(auth)
    try:
        daemon.wait_until(daemon.healthy, 90, "GET /v1/health answered 200")

        def deployments() -> dict[str, str]:
            try:
                body = httpx.post(f"{api}/deployments/filter", json={}, headers=good, timeout=10)
                found = httpx.post(f"{api}/flows/filter", json={}, headers=good, timeout=10)
            except httpx.HTTPError:
                return {}
            if body.status_code != 200 or found.status_code != 200:
                return {}
            names = {f["id"]: f["name"] for f in found.json()}
            return {f"{names[d['flow_id']]}/{d['name']}": d["id"] for d in body.json()}

        # The daemon's own clients authenticate: its flows become deployments.
        daemon.wait_until(lambda: {"release-loop/mlops-lite", "monitor/workers"} <= set(deployments()), 150,
                          "the flows deployed")
        # Nobody else does: no auth string, a wrong one, the API token, all 401.
        for headers in ({}, _basic("mlops-lite:wrong"), {"Authorization": f"Bearer {admin}"}):
            assert httpx.post(f"{api}/flows/filter", json={}, headers=headers, timeout=10).status_code == 401
            assert httpx.post(f"{api}/deployments/{deployments()['release-loop/mlops-lite']}/create_flow_run",
                              json={}, headers=headers, timeout=10).status_code == 401
        assert httpx.get(f"{api}/health", timeout=10).status_code == 200  # probes stay open
        (pid,) = _pids_running("prefect", "server start", f"--port {prefect_port}")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--host") + 1] == b"127.0.0.1"
        assert auth not in daemon.output() and auth not in (home / "logs" / "prefect-server.log").read_text()

        # A run asked to ingest /etc/passwd fails in its first step, naming the parameter.
        run = httpx.post(f"{api}/deployments/{deployments()['release-loop/mlops-lite']}/create_flow_run",
                         headers=good, timeout=10, json={"parameters": {
                             "home": str(home), "source": "/etc/passwd", "deployment": "loans",
                             "model": "loan-default", "repository": "loans", "path": "loans/passwd.csv",
                             "target": "default"}})
        assert run.status_code == 201, run.text

        def state() -> dict[str, Any]:
            return dict(httpx.get(f"{api}/flow_runs/{run.json()['id']}", headers=good, timeout=10).json()["state"])

        daemon.wait_until(lambda: state()["type"] in ("COMPLETED", "FAILED", "CRASHED"), 90, "the run finished")
        assert state()["type"] == "FAILED" and "source" in state()["message"], state()
        from mlops_lite.client import RemotePlatform

        with RemotePlatform(daemon.url, admin) as remote:
            assert [o.path for o in remote.data.repo("loans").ref("main").objects()] == ["loans/train.csv"]

        # A worker refuses the admin token, and a wrong Prefect auth string, before it starts.
        refused = subprocess.run([str(SCRIPT), "worker", "--run-once"], env={**_env(home), "MLOPS_LITE_TOKEN": admin},
                                 capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert refused.returncode == 1 and "--allow-admin-token" in refused.stderr, refused.stderr
        wrong = subprocess.run([str(SCRIPT), "worker", "--run-once"],
                               env={**_env(home), "PREFECT_API_AUTH_STRING": "mlops-lite:wrong"},
                               capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert wrong.returncode == 1 and "PREFECT_API_AUTH_STRING" in wrong.stderr, wrong.stderr
        # The second try enrolled the worker's own identity before Prefect refused it.
        enrolled = home / "services" / "worker.token"
        assert stat.S_IMODE(enrolled.stat().st_mode) == 0o600

        # On the daemon's host a worker runs with its own identity (operator): a monitor run on
        # the pool completes through it.
        queued = _post_as_prefect_does(f"{api}/deployments/{deployments()['monitor/workers']}/create_flow_run",
                                       headers=good, json={})
        assert queued.status_code == 201, queued.text
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.Popen([str(SCRIPT), "worker", "--run-once", "--limit", "1"], env=_env(home),
                                      stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        try:
            worker.wait(timeout=240)
        finally:
            stop_group(worker)
        done = httpx.get(f"{api}/flow_runs/{queued.json()['id']}", headers=good, timeout=10).json()["state"]
        assert done["type"] == "COMPLETED", (done, log.read_text(errors="replace"))
        with RemotePlatform(daemon.url, admin) as remote:
            worker_tokens = [t for t in remote.tokens.list() if t.service == "worker"]
            assert [(t.role, t.revoked) for t in worker_tokens] == [("operator", False)]
        who = httpx.get(f"{daemon.url}/v1/whoami", timeout=10,
                        headers={"Authorization": f"Bearer {enrolled.read_text().strip()}"}).json()
        assert (who["kind"], who["role"]) == ("service", "operator")
    finally:
        kill_prefect_server(prefect_port)


def test_serving_replicas_run_with_a_predictor_identity_of_their_own(tmp_path: Path,
                                                                     daemons: list[Daemon]) -> None:
    home = tmp_path / "home"
    platform, admin, spec = build_loop(home)
    _, caller = platform.tokens.create("app", "predictor")
    platform.close()
    daemon = Daemon(home, free_port(), "--no-prefect")
    daemons.append(daemon)
    daemon.wait_until(daemon.healthy, 60, "the daemon answering")
    port = free_port()

    refused = subprocess.run([str(SCRIPT), "serve", "--workers", "2", "--port", str(port)],
                             env={**_env(home), "MLOPS_LITE_SERVE_TOKEN": admin}, capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
    assert refused.returncode == 1 and "admin token" in refused.stderr, refused.stderr

    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen([str(SCRIPT), "serve", "--workers", "2", "--port", str(port), "--poll", "0.2"],
                                 env=_env(home), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        rows = holdout_rows(spec, 2)
        headers = {"Authorization": f"Bearer {caller}"}

        def serving() -> bool:
            try:
                return httpx.post(f"{url}/v1/deployments/loans/predict", json={"instances": rows}, headers=headers,
                                  timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + 90
        while not serving():
            assert serve.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.25)
        enrolled = home / "services" / "replica.token"
        assert stat.S_IMODE(enrolled.stat().st_mode) == 0o600
        replica = {"Authorization": f"Bearer {enrolled.read_text().strip()}"}
        who = httpx.get(f"{daemon.url}/v1/whoami", headers=replica, timeout=10).json()
        assert (who["kind"], who["role"]) == ("service", "predictor")
        assert httpx.get(f"{daemon.url}/v1/routing", headers=replica, timeout=10).status_code == 200
        assert httpx.get(f"{daemon.url}/v1/data/repositories/loans/config", headers=replica,
                         timeout=10).status_code == 403
        assert httpx.get(f"{daemon.url}/api/v1/repositories/loans/refs/main/objects",
                         params={"path": "loans/train.csv"}, headers=replica, timeout=10).status_code == 403
        listed = subprocess.run([str(SCRIPT), "token", "list", "--json"], env=_env(home), capture_output=True,
                                text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert listed.returncode == 0, listed.stderr
        services = [t for t in json.loads(listed.stdout) if t["service"]]
        assert [(t["service"], t["role"]) for t in services] == [("replica", "predictor")]
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, 15)
            serve.wait(30)
        daemon.kill()
