"""``mlops-lite up`` as a real subprocess: it owns the stores, answers over HTTP, names
itself in daemon.json, and on SIGTERM stops cleanly (its Prefect server too)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import mlops_lite
from mlops_lite.client import RemotePlatform

SCRIPT = Path(sys.executable).with_name("mlops-lite")
COUNTS = ("data_repositories", "runs", "models", "model_versions", "deployments", "audit_events")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MLOPS_LITE_HOME": str(home)}
    for key in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN", "MLOPS_LITE_CONFIG", "PREFECT_API_URL", "PREFECT_API_AUTH_STRING"):
        env.pop(key, None)
    return env


def cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], env=_env(home), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _process_gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")


def _pids_running(*needles: str) -> list[int]:
    """Our own processes whose command line holds every needle (Linux /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(needle in cmdline for needle in needles) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process started in a session of its own, with its children; SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def kill_prefect_server(port: int) -> None:
    """A Prefect server a daemon started on ``port`` and left behind (the daemon was killed)."""
    for pid in _pids_running("prefect", "server start", f"--port {port}"):
        if not _process_gone(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def prefect_headers(home: Path) -> dict[str, str]:
    """What the daemon's Prefect API asks of every caller: the home's auth string (prefect.auth)
    as HTTP Basic credentials."""
    auth = (home / "prefect.auth").read_text().strip()
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def create_flow_run(api: str, deployment_id: str, seconds: float = 30, *,
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A flow run of a deployment, as the UI's Run button makes it. Prefect's SQLite
    database can answer 500 (locked) while the daemon registers its deployments at
    start-up: ask again, as a user would."""
    deadline = time.monotonic() + seconds
    while True:
        answer = httpx.post(f"{api}/deployments/{deployment_id}/create_flow_run", json={}, timeout=10,
                            headers=headers)
        if answer.status_code == 201 or time.monotonic() > deadline:
            assert answer.status_code == 201, answer.text
            return dict(answer.json())
        time.sleep(1)


class Daemon:
    """One ``mlops-lite up`` subprocess in its own session; ``kill()`` ends its whole group."""

    def __init__(self, home: Path, port: int, *args: str) -> None:
        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = home.parent / f"daemon-{port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([str(SCRIPT), "up", "--port", str(port), *args], env=_env(home),
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def token(self) -> str | None:
        try:
            return (self.home / "admin.token").read_text().strip() or None
        except FileNotFoundError:
            return None

    def healthy(self) -> bool:
        token = self.token()
        if token is None:
            return False
        try:
            response = httpx.get(f"{self.url}/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def wait_until(self, ready: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"the daemon exited with {self.proc.returncode} before {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not within {seconds:.0f} s:\n{self.output()}")
            time.sleep(0.25)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)


def test_up_owns_the_stores_serves_and_stops_cleanly_on_sigterm(tmp_path: Path, daemons: list[Daemon]) -> None:
    home = tmp_path / "home"
    daemon = Daemon(home, free_port(), "--no-prefect")
    daemons.append(daemon)
    daemon.wait_until(daemon.healthy, 30, "GET /v1/health answered 200")

    # daemon.json names this process and its URL.
    info = json.loads((home / "daemon.json").read_text())
    assert info["pid"] == daemon.pid
    assert info["url"] == daemon.url
    assert info["prefect_url"] is None

    # In-process access to the stores is refused at once, pointing at the daemon...
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local

    with pytest.raises(mlops_lite.StoreLocked) as locked:
        open_local(load_settings(home=home))
    assert locked.value.url == daemon.url
    assert locked.value.pid == daemon.pid
    assert daemon.url in locked.value.message
    assert str(daemon.pid) in locked.value.message

    # ...while connect() becomes the daemon's client, with the home's admin token.
    with mlops_lite.connect(home=home) as found:
        assert isinstance(found, RemotePlatform) and found.url == daemon.url
        assert found.deployments.list() == []

    # ...and the URL it names works with the admin token.
    token = daemon.token()
    with mlops_lite.connect(url=locked.value.url, token=token) as remote:
        assert isinstance(remote, RemotePlatform)
        over_http = remote.summary()
        assert remote.deployments.list() == []

    # `mlops-lite status` reads the daemon over HTTP.
    report_run = cli(home, "status", "--json")
    assert report_run.returncode == 0, report_run.stderr
    report = json.loads(report_run.stdout)
    assert report["daemon"]["pid"] == daemon.pid
    assert report["daemon"]["url"] == daemon.url
    assert report["source"] == f"remote: {daemon.url}"
    assert {key: report["holds"][key] for key in COUNTS} == {key: over_http[key] for key in COUNTS}
    assert report["holds"]["audit_events"] >= 1

    text = cli(home, "status")
    assert text.returncode == 0, text.stderr
    squeezed = "".join(text.stdout.split())  # rich wraps long lines at 80 columns without a terminal
    assert f"pid{daemon.pid}" in squeezed
    assert daemon.url in squeezed
    assert "auditevents" in squeezed

    # A second `up` on the same home refuses, in one line.
    again = cli(home, "up", "--no-prefect", "--port", str(free_port()))
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    assert "already running" in again.stderr and str(daemon.pid) in again.stderr

    # SIGTERM: a clean exit, code 0, the daemon file removed, the stores released.
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        code = daemon.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon did not exit within 20 s of SIGTERM:\n{daemon.output()}")
    assert code == 0, f"exit code {code} (a negative code is death by signal):\n{daemon.output()}"
    assert "mlops-lite stopped" in daemon.output()
    assert not (home / "daemon.json").exists()
    assert not listening(daemon.port)

    platform = mlops_lite.connect(home=home)
    try:
        assert platform.remote is False
        assert platform.tokens.authenticate(token).role == "admin"
    finally:
        platform.close()


@pytest.mark.slow
def test_up_with_prefect_serves_the_flows_and_stops_the_prefect_server_too(tmp_path: Path,
                                                                          daemons: list[Daemon]) -> None:
    """The flows are Prefect deployments of the daemon: a run started through Prefect's API
    (as the UI's "Run" does) executes in the daemon, over its stores, and completes."""
    from ..conftest import build_loop

    home = tmp_path / "home"
    built, _, _ = build_loop(home)
    built.close()
    prefect_port = free_port()
    daemon = Daemon(home, free_port(), "--prefect-port", str(prefect_port))
    daemons.append(daemon)
    prefect_pids: list[int] = []
    try:
        def prefect_healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{prefect_port}/api/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + 90
        daemon.wait_until(daemon.healthy, 90, "GET /v1/health answered 200")
        daemon.wait_until(prefect_healthy, max(1.0, deadline - time.monotonic()),
                          f"Prefect's /api/health on port {prefect_port} answered 200")
        prefect_pids = _pids_running("prefect", "server start", f"--port {prefect_port}")
        assert prefect_pids, "no Prefect server process found"

        info = json.loads((home / "daemon.json").read_text())
        assert info["pid"] == daemon.pid
        assert info["prefect_url"] == f"http://127.0.0.1:{prefect_port}"

        api = f"http://127.0.0.1:{prefect_port}/api"
        auth = prefect_headers(home)

        def deployments() -> dict[str, str]:
            body = httpx.post(f"{api}/deployments/filter", json={}, timeout=10, headers=auth).json()
            flows = {f["id"]: f["name"]
                     for f in httpx.post(f"{api}/flows/filter", json={}, timeout=10, headers=auth).json()}
            return {f"{flows[d['flow_id']]}/{d['name']}": d["id"] for d in body}

        daemon.wait_until(lambda: {"monitor/mlops-lite", "retrain-release/mlops-lite", "release-loop/mlops-lite"}
                          <= set(deployments()), 60, "the flows served as Prefect deployments")
        run = create_flow_run(api, deployments()["monitor/mlops-lite"], headers=auth)

        def run_state() -> str:
            return httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10, headers=auth).json()["state"]["type"]

        daemon.wait_until(lambda: run_state() in ("COMPLETED", "FAILED", "CRASHED"), 90,
                          "the monitor run finished")
        assert run_state() == "COMPLETED", daemon.output()

        daemon.proc.send_signal(signal.SIGTERM)
        try:
            code = daemon.proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the daemon did not exit within 45 s of SIGTERM:\n{daemon.output()}")
        assert code == 0, f"exit code {code}:\n{daemon.output()}"
        assert not (home / "daemon.json").exists()

        deadline = time.monotonic() + 30
        while listening(prefect_port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not listening(prefect_port), "the Prefect server still accepts connections"
        assert all(_process_gone(pid) for pid in prefect_pids), "the Prefect server process is still running"
    finally:
        # The Prefect server runs in its own session: if the daemon failed to stop it, do it here.
        for pid in {*prefect_pids, *_pids_running("prefect", "server start", f"--port {prefect_port}")}:
            if not _process_gone(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)  # its own session: the group is its pid
                except OSError:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
