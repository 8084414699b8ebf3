"""The container image's HEALTHCHECK script (deploy/container/healthcheck.py), against a
real HTTP server on 127.0.0.1 that answers as mlops-lite's health routes do."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from ..conftest import REPO

SCRIPT = REPO / "deploy" / "container" / "healthcheck.py"
TOKEN = "predictor-token-for-the-test"


@pytest.fixture
def healthcheck(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("MLOPS_LITE_HOME", str(tmp_path))
    for name in ("MLOPS_LITE_HEALTH_URL", "MLOPS_LITE_HEALTH_TOKEN", "MLOPS_LITE_SERVE_TOKEN", "MLOPS_LITE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    spec = importlib.util.spec_from_file_location("image_healthcheck", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, int]]]:
    """/v1/health: 200 with the token, 401 without; /v2/health/ready: the status set in ``state``."""
    state = {"ready": 503}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            status = 401 if not authorized else 200 if self.path == "/v1/health" else state["ready"]
            body = json.dumps({"status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_which_url_each_command_is_asked_on(healthcheck: ModuleType, tmp_path: Path) -> None:
    python = ["/opt/mlops-lite/bin/python", "/opt/mlops-lite/bin/mlops-lite"]
    assert healthcheck.health_url([*python, "serve", "--host", "0.0.0.0", "--port", "9090"]) == \
        "auto://127.0.0.1:9090/v1/health"
    assert healthcheck.health_url([*python, "serve", "--port=9091", "--insecure-http"]) == \
        "http://127.0.0.1:9091/v1/health"
    assert healthcheck.health_url([*python, "worker", "--pool", "p"]) is None
    with pytest.raises(SystemExit, match=r"daemon\.json"):
        healthcheck.health_url([*python, "up", "--host", "0.0.0.0"])  # not started yet
    (tmp_path / "daemon.json").write_text(json.dumps({"pid": 1, "url": "https://127.0.0.1:8000"}))
    assert healthcheck.health_url([*python, "up"]) == "https://127.0.0.1:8000/v1/health"


def test_probe_answers(healthcheck: ModuleType, server: tuple[str, dict[str, int]]) -> None:
    base, state = server
    assert healthcheck.probe(f"{base}/v1/health", TOKEN)[0] is True
    assert healthcheck.probe(f"{base}/v1/health", None)[0] is True  # 401: up, checking tokens
    assert healthcheck.probe(f"{base}/v1/health", "a-wrong-token")[0] is False  # 401 to a token: not healthy
    assert healthcheck.probe(f"{base}/v2/health/ready", TOKEN) == (False, f"{base}/v2/health/ready: 503")
    state["ready"] = 200
    assert healthcheck.probe(f"{base}/v2/health/ready", TOKEN)[0] is True
    ok, detail = healthcheck.probe("http://127.0.0.1:1/v1/health", TOKEN)
    assert not ok and "127.0.0.1:1" in detail


def test_the_script_exits_by_the_answer(tmp_path: Path, server: tuple[str, dict[str, int]]) -> None:
    base, _ = server
    env = {"PATH": "/usr/bin:/bin", "MLOPS_LITE_HOME": str(tmp_path), "MLOPS_LITE_HEALTH_TOKEN": TOKEN}

    def run(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(SCRIPT)], env={**env, "MLOPS_LITE_HEALTH_URL": url},
                              capture_output=True, text=True, timeout=30)

    assert run(f"{base}/v1/health").returncode == 0
    not_ready = run(f"{base}/v2/health/ready")
    assert not_ready.returncode == 1 and "503" in not_ready.stdout
    # `auto`: a plain HTTP server refuses the TLS handshake, and is then asked over HTTP
    assert run(base.replace("http://", "auto://") + "/v1/health").returncode == 0
