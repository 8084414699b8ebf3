"""``mlops-lite up``: the Litestar server owning the stores, beside a Prefect server."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from mlops_lite import Platform
from mlops_lite.clock import utcnow
from mlops_lite.config import Settings, prefect_environment
from mlops_lite.daemon import DaemonInfo, clear_daemon, write_daemon
from mlops_lite.security.service import ensure_prefect_auth
from mlops_lite.security.tls import is_loopback, reloadable_server_context
from server.app import create_app
from server.jobs import DaemonJobs
from server.runner import serve_forever

log = logging.getLogger("mlops_lite.daemon")


def _prefect_command() -> list[str]:
    script = Path(sys.executable).with_name("prefect")
    return [str(script)] if script.exists() else [shutil.which("prefect") or "prefect"]


def start_prefect_server(settings: Settings) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``prefect server start`` with its home under the mlops-lite home, on
    ``prefect_host`` (loopback unless configured), asking every client for the home's auth
    string: a request to its API without it is answered 401 (its health probe excepted)."""
    logs = settings.home / "logs"
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_file = logs / "prefect-server.log"
    auth = ensure_prefect_auth(settings)
    if not is_loopback(settings.prefect_host):
        log.warning("the Prefect server listens on %s, off loopback: its auth string and flow parameters cross "
                    "the network in clear unless a TLS proxy fronts it", settings.prefect_host)
    env = {**os.environ, **prefect_environment(settings), "PREFECT_SERVER_API_AUTH_STRING": auth,
           "PREFECT_API_AUTH_STRING": auth}
    env.pop("PREFECT_API_URL", None)
    with os.fdopen(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        # umask 077: its database, logs and caches under <home>/prefect are the owner's alone
        process = subprocess.Popen(
            [*_prefect_command(), "server", "start", "--host", settings.prefect_host,
             "--port", str(settings.prefect_port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, umask=0o077)
    # This process's Prefect clients (the jobs, the flow runs they start) send it too.
    os.environ["PREFECT_API_AUTH_STRING"] = auth
    return process, log_file


def _announce_when_ready(url: str, process: subprocess.Popen[bytes], echo: Callable[[str], None]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).is_success:
                echo(f"Prefect UI ready at {url}")
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    if process.poll() is not None:
        echo(f"Prefect server exited with code {process.returncode}; see its log")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def drain_prefect_workers(timeout: float = 10.0) -> None:
    """Send what Prefect's log and event workers in this process still hold while its
    server still answers. Their own drain runs at interpreter exit, after the server has
    stopped, and would wait on it for ever (``up`` printed "stopped" and never exited)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout)
        except Exception as exc:  # shutting down: say it, and go on stopping
            log.warning("could not send Prefect's pending %s: %s", worker.__name__, exc)


def run_daemon(platform: Platform, settings: Settings, *, with_prefect: bool = True,
               echo: Callable[[str], None] = print, load_flows: Callable[[], Any] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop Prefect and release the stores."""
    prefect: subprocess.Popen[bytes] | None = None
    prefect_url: str | None = None
    jobs: DaemonJobs | None = None
    try:
        if with_prefect:
            prefect, log_file = start_prefect_server(settings)
            prefect_url = settings.prefect_url
            echo(f"Prefect server starting at {prefect_url} (UI and API; ready in ~15 s; log: {log_file})")
            threading.Thread(target=_announce_when_ready, args=(prefect_url, prefect, echo), daemon=True).start()
        write_daemon(settings.daemon_file, DaemonInfo(pid=os.getpid(), url=settings.server_url,
                                                      prefect_url=prefect_url, started_at=utcnow().isoformat()))
        if load_flows is not None:
            jobs = DaemonJobs(platform, settings, prefect_url=prefect_url, load_flows=load_flows, echo=echo)
            jobs.start()
            platform.loop.runner = jobs.retrain  # a person's retrain request starts at once
        echo(f"mlops-lite API at {settings.server_url} (OpenAPI: {settings.server_url}/schema/openapi.json); "
             "Ctrl-C stops")
        serve_forever(create_app(platform), settings.host, settings.port,
                      tls=reloadable_server_context(settings) if settings.tls else None)
    finally:
        if jobs is not None:
            jobs.stop()
        clear_daemon(settings.daemon_file, os.getpid())
        if prefect is not None:
            drain_prefect_workers()
            _stop(prefect)
        platform.close()
        echo("mlops-lite stopped")
