"""The commands that make, run or look at the processes: ``init``, ``up``, ``worker``,
``serve``, ``tui`` and ``status``. ``init``, ``up`` and a single-process ``serve`` own the
stores while they run, so they refuse when the daemon already does."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer

from mlops_lite.cli.common import (
    JsonOption,
    connection,
    console,
    init_home,
    load_settings,
    own_stores,
    read_admin_token,
    refuse_beside_daemon,
)
from mlops_lite.config import Settings
from mlops_lite.daemon import read_daemon
from mlops_lite.errors import InvalidInput, MlopsLiteError


def init() -> None:
    """Create the home, its config file, the metadata database and an admin token.

    Running it again keeps everything that exists, the token included."""
    settings = load_settings()
    refuse_beside_daemon(settings, "`mlops-lite init` creates the stores in this process")
    result = init_home(settings)
    console.print(f"home      {result.home}")
    console.print(f"config    {result.config_file}")
    console.print(f"database  {result.database}")
    if result.token:
        console.print(f"admin token (shown once; also in {result.token_file}, mode 0600):")
        console.print(f"  {result.token}", highlight=False)
    else:
        console.print(f"admin token kept: {result.token_file}")
    _print_audit_signing(settings)


def _print_audit_signing(settings: Settings) -> None:
    """The audit checkpoints' signing key, made by opening the home, and the checkpoint the
    Platform signed as init closed it."""
    from mlops_lite.security.checkpoints import CheckpointFile

    found = CheckpointFile(settings.audit_checkpoints_file).last()
    state = (f"checkpoint at seq {found.seq}" if found is not None
             else "NO checkpoint: run `mlops-lite audit verify`, then `mlops-lite audit checkpoint`")
    console.print(f"audit key {settings.audit_signing_key_file} (Ed25519, 0600); public key "
                  f"{settings.audit_public_key_file}; {state}", highlight=False)


def up(host: Annotated[str | None, typer.Option(help="Interface for the API (default 127.0.0.1).")] = None,
       port: Annotated[int | None, typer.Option(help="API port (default 8000).")] = None,
       prefect_port: Annotated[int | None, typer.Option(help="Prefect server port (default 4200).")] = None,
       prefect: Annotated[bool, typer.Option(help="Also run a Prefect server for its UI.")] = True) -> None:
    """Run the daemon: the API owning the stores, and a Prefect server. Ctrl-C stops both."""
    settings = load_settings(host=host, port=port, prefect_port=prefect_port)
    running = read_daemon(settings.daemon_file)
    if running is not None:
        raise MlopsLiteError(f"mlops-lite is already running (pid {running.pid}) at {running.url}")
    result = init_home(settings)
    if result.token:
        console.print(f"created the home {result.home}; admin token (shown once): {result.token}", highlight=False)
    from server.daemon import run_daemon

    run_daemon(own_stores(settings, actor="daemon"), settings, with_prefect=prefect, echo=console.print,
               load_flows=load_flows)


def load_flows() -> Any:
    """The flows package, for the daemon's jobs (imported when first needed: it costs Prefect's import)."""
    import flows

    return flows


def worker(pool: Annotated[str, typer.Option(help="The Prefect work pool to take flow runs from.")] = "mlops-lite",
           url: Annotated[str | None, typer.Option(
               help="The mlops-lite API (default: the running `mlops-lite up`, or $MLOPS_LITE_URL).")] = None,
           prefect_url: Annotated[str | None, typer.Option(
               help="The Prefect server (default: the running daemon's, or $PREFECT_API_URL).")] = None,
           limit: Annotated[int, typer.Option(min=1, help="Flow runs at a time.")] = 2,
           run_once: Annotated[bool, typer.Option(help="Take the runs queued now, then exit.")] = False) -> None:
    """Run a Prefect worker for the mlops-lite flows (scale-out).

    It takes flow runs from the work pool (`retrain-release/workers`, `monitor/workers`,
    `release-loop/workers`) and runs each in a process of its own. Their tasks reach the
    stores over the mlops-lite API with a token ($MLOPS_LITE_TOKEN, else the home's admin
    token); training and tuning run here, on this host."""
    settings = load_settings()
    running = read_daemon(settings.daemon_file)
    url = url or settings.url or (running.url if running is not None else None)
    prefect_api = prefect_url or os.environ.get("PREFECT_API_URL") or (
        f"{running.prefect_url}/api" if running is not None and running.prefect_url else None)
    if url is None:
        raise InvalidInput("no mlops-lite API to work for: start `mlops-lite up`, or pass --url", field="url",
                           expected="the URL of a running mlops-lite up")
    if prefect_api is None:
        raise InvalidInput("no Prefect server to take flow runs from: run `mlops-lite up` with Prefect, or pass "
                           "--prefect-url", field="prefect_url", expected="a Prefect API URL")
    prefect_api = prefect_api if prefect_api.rstrip("/").endswith("/api") else prefect_api.rstrip("/") + "/api"
    token = settings.token or read_admin_token(settings)
    if not token:
        raise InvalidInput("no token for the mlops-lite API", field="token",
                           expected="$MLOPS_LITE_TOKEN with the operator role")
    from mlops_lite.client import RemotePlatform

    with RemotePlatform(url, token) as remote:  # fail now, clearly, rather than in every flow run
        remote.request("GET", "/v1/whoami")
    env = {**os.environ, "MLOPS_LITE_URL": url, "MLOPS_LITE_TOKEN": token, "PREFECT_API_URL": prefect_api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if "MLOPS_LITE_ANONYMIZATION_KEY" not in env and settings.anonymization_key_file.exists():
        # On the daemon's host: ingest tasks anonymize with the same key as the daemon.
        env["MLOPS_LITE_ANONYMIZATION_KEY"] = settings.anonymization_key_file.read_text().strip()
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
               "--limit", str(limit)] + (["--run-once"] if run_once else [])
    console.print(f"worker on pool {pool!r}: flow runs from {prefect_api}, stores at {url}", highlight=False)
    os.execve(sys.executable, command, env)


def serve(workers: Annotated[int, typer.Option(help="Worker processes (more than 1 needs `mlops-lite up` running).")] = 1,
          host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
          port: Annotated[int, typer.Option(help="Port for the inference API.")] = 8080,
          control_plane: Annotated[str | None, typer.Option(
              help="The control plane's URL (default: the running `mlops-lite up`).")] = None,
          poll: Annotated[float, typer.Option(help="Seconds between routing polls.")] = 1.0) -> None:
    """Serve inference only: native predict, the Open Inference Protocol (/v2) and /metrics.

    With `mlops-lite up` running (or --control-plane), N stateless workers poll it for
    routes and load models from the content-addressed store, so releases made on the
    control plane reach every worker within a poll. Without one, a single process serves
    over the local stores."""
    settings = load_settings(host=host)
    if workers < 1:
        raise InvalidInput(f"--workers {workers} is not a count of workers", field="workers", expected="1 or more")
    running = read_daemon(settings.daemon_file)
    url = control_plane or (running.url if running is not None else None)
    if url is None:
        if workers != 1:
            raise InvalidInput("more than one worker needs a control plane: start `mlops-lite up` first "
                               "(or pass --control-plane URL)", field="workers", expected="1 without a control plane")
        from server.app import create_app
        from server.runner import serve_forever

        with own_stores(settings, actor="serve") as platform:
            loaded = platform.deployments.load_all()
            console.print(f"serving {len(loaded)} deployment(s) on http://{settings.host}:{port} "
                          f"({', '.join(platform.deployments.providers)})", highlight=False)
            serve_forever(create_app(platform), settings.host, port)
        return
    import uvicorn

    os.environ.update({"MLOPS_LITE_SERVE_CONTROL_URL": url, "MLOPS_LITE_SERVE_POLL_S": str(poll),
                       "MLOPS_LITE_SERVE_TOKEN": settings.token or read_admin_token(settings) or ""})
    console.print(f"serving with {workers} worker(s) on http://{settings.host}:{port}, routes from {url}",
                  highlight=False)
    uvicorn.run("server.serving:create_serving_app", factory=True, host=settings.host, port=port, workers=workers,
                log_level="warning", access_log=False)


def tui(refresh: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0) -> None:
    """The operator dashboard: models, versions, deployments and recent runs, live."""
    from tui import run_dashboard

    with connection(initialised=True) as found:
        run_dashboard(found.platform, source=found.source, refresh_seconds=refresh)


def status(as_json: JsonOption = False) -> None:
    """What is running, where, and what it holds."""
    settings = load_settings()
    running = read_daemon(settings.daemon_file)
    report: dict[str, Any] = {"home": str(settings.home), "initialised": settings.initialised,
                              "daemon": None}
    if running is not None:
        report["daemon"] = {"pid": running.pid, "url": running.url, "prefect_url": running.prefect_url,
                            "started_at": running.started_at}
    if report["initialised"] or running is not None:
        with connection() as found:
            report["source"] = found.source
            report["holds"] = found.platform.summary()
    if as_json:
        console.print_json(json.dumps(report, default=str))
        return
    console.print(f"home      {report['home']}")
    if running is None:
        console.print("daemon    not running (start it with `mlops-lite up`)")
    else:
        console.print(f"daemon    pid {running.pid}, API {running.url}, Prefect UI {running.prefect_url or '-'}")
    if not report["initialised"]:
        console.print("stores    not initialised: run `mlops-lite init`")
        return
    holds = report["holds"]
    console.print(f"stores    {holds['database']} (read via {report['source']})")
    console.print("holds     " + ", ".join(f"{holds[k]} {k.replace('_', ' ')}" for k in
                                            ("data_repositories", "runs", "models", "model_versions",
                                             "deployments", "audit_events")))
    console.print(f"inference {', '.join(holds['execution_providers'])}")
