"""The ``mlops-lite`` command. The one core module that may import the shells
(server, flows, tui), and only lazily, inside the commands that need them."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, BinaryIO, cast

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from mlops_lite.daemon import read_daemon
from mlops_lite.errors import InvalidInput, MlopsLiteError, NotFound
from mlops_lite.samples import LOANS, sample_data_dir

if TYPE_CHECKING:
    from mlops_lite.config import Settings
    from mlops_lite.data import DataStore, RepositoryConfig
    from mlops_lite.home import InitResult
    from mlops_lite.platform import Platform


# The settings (pydantic-settings), the stores (SQLAlchemy, DuckDB, pyarrow) and the HTTP
# client cost most of a second to import. These load them when a command runs, so that
# `--help`, a usage error or a command that goes over HTTP does not pay for the rest.
def load_settings(**overrides: Any) -> Settings:
    from mlops_lite.config import load_settings as load

    return load(**overrides)


def apply_prefect_environment(settings: Settings) -> None:
    from mlops_lite.config import apply_prefect_environment as apply

    apply(settings)


def open_local(settings: Settings, *, actor: str | None = None) -> Platform:
    from mlops_lite.platform import open_local as open_

    return open_(settings, actor=actor)


def init_home(settings: Settings) -> InitResult:
    from mlops_lite.home import init_home as init

    return init(settings)


def read_admin_token(settings: Settings) -> str | None:
    from mlops_lite.home import read_admin_token as read

    return read(settings)


app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="mlops-lite: versioned data, tracked training, a governed registry and ONNX serving.")
console = Console(soft_wrap=True)
err = Console(stderr=True)


@app.callback()
def _root(home: Annotated[Path | None, typer.Option(help="The home folder (default: $MLOPS_LITE_HOME or ~/.mlops-lite).")] = None) -> None:
    if home is not None:
        os.environ["MLOPS_LITE_HOME"] = str(home.expanduser().resolve())


@app.command()
def init() -> None:
    """Create the home, its config file, the metadata database and an admin token.

    Running it again keeps everything that exists, the token included."""
    settings = load_settings()
    result = init_home(settings)
    console.print(f"home      {result.home}")
    console.print(f"config    {result.config_file}")
    console.print(f"database  {result.database}")
    if result.token:
        console.print(f"admin token (shown once; also in {result.token_file}, mode 0600):")
        console.print(f"  {result.token}", highlight=False)
    else:
        console.print(f"admin token kept: {result.token_file}")


@app.command()
def demo(requests: Annotated[int, typer.Option(min=1, max=5000, help="Held-out rows to send over HTTP.")] = 300,
         loop: Annotated[bool, typer.Option(help="Run the second act: drift, alert, retrain, canary, promotion.")]
         = True) -> None:
    """Run the whole loop on the bundled data: Prefect flows ingest, train, register
    and deploy; a server on a free loopback port answers held-out rows over HTTP.
    Second act: drifted traffic, a drift alert, retraining on fresh data, the gates,
    a canary observed against the primary, and its promotion (or rollback)."""
    import httpx
    import pyarrow.csv as pacsv

    from mlops_lite.home_log import records_to_home_log

    settings = load_settings()
    started = time.perf_counter()
    data_dir = sample_data_dir()
    holdout = pacsv.read_csv(data_dir / LOANS.holdout)
    apply_prefect_environment(settings)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress, ExitStack() as quiet:
        step = progress.add_task("Preparing the home", total=6)
        init_home(settings)
        token = read_admin_token(settings)
        import flows
        from server import create_app
        from server.runner import serve_in_thread

        # after Prefect's logging setup (on import), which prints every warning to stderr
        logged = quiet.enter_context(records_to_home_log(settings.home))

        platform = open_local(settings, actor="demo")
        flows.bind(platform)
        home = str(settings.home)
        try:
            progress.update(step, advance=1, description="Ingesting loans.csv (Prefect's API starts first, ~15 s)")
            # PII (name, email, phone) is anonymized before it is committed, and main refuses it in clear.
            repo = platform.data.repo("loans")
            repo.create(exist_ok=True)
            pii = (f"^({'|'.join(LOANS.pii)})$",)
            if repo.config().pii_patterns != pii:
                repo.configure(pii_patterns=pii)
            commit = flows.ingest_flow(home, str(data_dir / LOANS.train))
            progress.update(step, advance=1, description="Training, converting to ONNX, checking parity")
            trained = flows.train_flow(home, ref=commit)
            progress.update(step, advance=1, description="Registering the model version")
            version = flows.register_flow(home, "loan-default", trained["run_id"])
            progress.update(step, advance=1, description="Deploying through the policy gates")
            revision = flows.deploy_flow(home, "loans", "loan-default", version)
            progress.update(step, advance=1, description="Starting the server on a free loopback port")
            server = serve_in_thread(create_app(platform), settings.host, 0)
            progress.update(step, advance=1, description="Loop done")
            act_two = None
            try:
                served = _send_holdout(progress, httpx, server.url, token, holdout, requests)
                if loop:
                    act_two = _act_two(progress, httpx, server.url, token, home, data_dir, settings)
            finally:
                server.stop()
            summary = platform.summary()
            record = platform.registry.get_version("loan-default", version)
        finally:
            flows.unbind(platform)
            platform.close()
    _print_report(settings, commit, record, revision, trained, served, summary, time.perf_counter() - started)
    if act_two is not None:
        _print_act_two(act_two)
    if logged.summary():
        console.print(logged.summary(), highlight=False)


def _send_holdout(progress: Progress, httpx: Any, url: str, token: str | None, holdout: Any,
                  count: int) -> dict[str, Any]:
    rows = holdout.to_pylist()[:count]
    task = progress.add_task("Sending held-out rows over HTTP", total=len(rows))
    latencies: list[float] = []
    correct = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        schema = client.get("/v1/deployments").raise_for_status().json()
        model = next(d for d in schema if d["name"] == "loans")
        versions = client.get(f"/v1/models/{model['model']}/versions").raise_for_status().json()
        signature = next(v for v in versions if v["version"] == model["version"])["signature"]
        features = [spec["name"] for spec in signature["inputs"]]
        began = time.perf_counter()
        for row in rows:
            t0 = time.perf_counter()
            response = client.post("/v1/deployments/loans/predict",
                                   json={"instances": [{name: row[name] for name in features}]})
            latencies.append(time.perf_counter() - t0)
            response.raise_for_status()
            correct += int(response.json()["predictions"][0] == row[LOANS.target])
            progress.advance(task)
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {"url": url, "count": len(rows), "accuracy": correct / len(rows),
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
            "per_second": len(rows) / elapsed}


def _serve_labelled(client: Any, rows: list[dict[str, Any]], features: list[str]) -> None:
    """Rows over HTTP one request each, then their true labels as feedback."""
    labels = []
    for row in rows:
        answer = client.post("/v1/deployments/loans/predict",
                             json={"instances": [{name: row[name] for name in features}]}).raise_for_status().json()
        labels.append({"request_id": answer["request_id"], "label": row[LOANS.target]})
    client.post("/v1/deployments/loans/feedback", json={"labels": labels}).raise_for_status()


def _act_two(progress: Progress, httpx: Any, url: str, token: str | None, home: str, data_dir: Path,
             settings: Settings) -> dict[str, Any]:
    """Drifted traffic -> monitor -> alert -> retrain -> gates -> canary -> promote or roll back."""
    import tempfile
    import threading

    import pyarrow.csv as pacsv

    import flows

    began_at = time.time()
    timeline: list[tuple[float, str]] = []

    def mark(what: str) -> None:
        timeline.append((time.time() - began_at, what))

    drifted = pacsv.read_csv(data_dir / LOANS.drifted)
    traffic, fresh = drifted.slice(0, 600).to_pylist(), drifted.slice(600)
    step = progress.add_task("Act two: sending 400 drifted rows with their labels", total=4)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        record = client.get("/v1/deployments/loans").raise_for_status().json()
        versions = client.get(f"/v1/models/{record['model']}/versions").raise_for_status().json()
        signature = next(v for v in versions if v["version"] == record["version"])["signature"]
        features = [spec["name"] for spec in signature["inputs"]]
        from mlops_lite.clock import utcnow

        since = utcnow().isoformat()
        mark(f"serving {record['model']}@{record['version']}; 400 drifted rows sent with their true labels")
        _serve_labelled(client, traffic[:400], features)
        progress.update(step, advance=1, description="Act two: the monitor checks the window")
        checked = flows.monitor_flow(home, "loans", since=since)
        for t in checked["transitions"]:
            mark(f"alert {t['rule']} {t['state']} (value {t['value']:.3g})")
        if not checked["retrain"]:
            mark("no retraining asked for: the window is within the rules")
            return {"timeline": timeline, "result": None}
        mark(f"retraining triggered: {checked['reason']}")
        progress.update(step, advance=1, description="Act two: retrain, gates, canary under live traffic")
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "fresh.csv"
            pacsv.write_csv(fresh, source)
            stop = threading.Event()

            def live() -> None:
                i = 400
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
                    while not stop.is_set():
                        _serve_labelled(c, traffic[i % 600: i % 600 + 10], features)
                        i += 10

            sender = threading.Thread(target=live, daemon=True)
            sender.start()
            try:
                result = flows.retrain_release_flow(home, str(source), since=since, observe_s=90, min_requests=80,
                                                    trigger=checked["reason"])
            finally:
                stop.set()
                sender.join(30)
        for at, what in result["timeline"]:
            timeline.append((datetime.fromisoformat(at).timestamp() - began_at, what))
        progress.update(step, advance=2, description="Act two done")
        return {"timeline": timeline, "result": result}
    finally:
        client.close()


def _print_act_two(act: dict[str, Any]) -> None:
    table = Table(title="act two: the closed loop", show_header=False, title_justify="left")
    table.add_column(style="bold", justify="right")
    table.add_column()
    for at, what in act["timeline"]:
        table.add_row(f"+{at:.1f} s", what)
    console.print(table)
    console.print("Every step is in the audit chain (`mlops-lite audit verify`) and in the Prefect UI "
                  "(`mlops-lite up`); `mlops-lite deploy status loans` shows the revisions, and "
                  "`mlops-lite deploy lineage loans` the data, run and approvals behind what serves.")


def _print_report(settings: Settings, commit: str, record: Any, revision: int, trained: dict[str, Any],
                  served: dict[str, Any], summary: dict[str, Any], wall: float) -> None:
    metrics = record.metrics
    table = Table(title="mlops-lite demo", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("data commit", f"loans@main {commit[:12]} (loans/train.csv)")
    table.add_row("training run", trained["run_id"])
    table.add_row("model version", f"{record.model} {record.version}  sha256:{record.digest[:16]}…")
    table.add_row("held-out metrics", f"ROC AUC {metrics['roc_auc']:.3f}  accuracy {metrics['accuracy']:.3f}  "
                  f"F1 {metrics['f1']:.3f}  demographic parity diff {metrics.get('demographic_parity_difference', 0):.3f}")
    table.add_row("ONNX parity", f"max |p_onnx - p_sklearn| = {metrics['parity_max_abs_diff']:.2e} (limit 1e-4)")
    table.add_row("deployment", f"loans -> {record.model}@{record.version} (revision {revision})")
    table.add_row("served over HTTP", f"{served['count']} held-out rows at {served['url']}: accuracy "
                  f"{served['accuracy']:.3f}, p50 {served['p50_ms']:.2f} ms, p99 {served['p99_ms']:.2f} ms, "
                  f"{served['per_second']:.0f} req/s (one client, batch 1)")
    table.add_row("stores", f"{settings.home}  (metadata.duckdb, objects/, prefect/)")
    table.add_row("recorded", f"{summary['runs']} runs, {summary['model_versions']} versions, "
                  f"{summary['audit_events']} audit events (hash-chained)")
    table.add_row("wall time", f"{wall:.1f} s")
    console.print(table)
    console.print("Look further:  mlops-lite deploy lineage loans  (what serves, and the data, run and approvals "
                  "behind it)   mlops-lite tui  (dashboard)   mlops-lite up  (API on "
                  f"{settings.server_url}, Prefect UI on http://{settings.host}:{settings.prefect_port})   "
                  "mlops-lite status")


@app.command()
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

    run_daemon(open_local(settings, actor="daemon"), settings, with_prefect=prefect, echo=console.print,
               load_flows=_load_flows)


@app.command()
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


def _load_flows() -> Any:
    """The flows package, for the daemon's jobs (imported when first needed: it costs Prefect's import)."""
    import flows

    return flows


@app.command()
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

        with open_local(settings, actor="serve") as platform:
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


def _open_for_reading(settings: Settings) -> tuple[Any, str]:
    running = read_daemon(settings.daemon_file)
    if running is not None:
        from mlops_lite.client import RemotePlatform

        return RemotePlatform(running.url, settings.token or read_admin_token(settings)), f"remote: {running.url}"
    if not settings.initialised:
        raise NotFound(f"nothing at {settings.home} yet: run `mlops-lite init` (or `mlops-lite demo`)")
    return open_local(settings), f"local: {settings.home}"


@app.command()
def tui(refresh: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0) -> None:
    """The operator dashboard: models, versions, deployments and recent runs, live."""
    from tui import run_dashboard

    platform, source = _open_for_reading(load_settings())
    try:
        run_dashboard(platform, source=source, refresh_seconds=refresh)
    finally:
        platform.close()


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What is running, where, and what it holds."""
    settings = load_settings()
    running = read_daemon(settings.daemon_file)
    report: dict[str, Any] = {"home": str(settings.home), "initialised": settings.initialised,
                              "daemon": None}
    if running is not None:
        report["daemon"] = {"pid": running.pid, "url": running.url, "prefect_url": running.prefect_url,
                            "started_at": running.started_at}
    if report["initialised"] or running is not None:
        platform, source = _open_for_reading(settings)
        try:
            report["source"] = source
            report["holds"] = platform.summary()
        finally:
            platform.close()
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

# --- access keys ------------------------------------------------------------
access_key_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                             help="Access keys for lakeFS clients (HTTP Basic against `mlops-lite up`'s /api/v1).")
app.add_typer(access_key_app, name="access-key")


@access_key_app.command("create")
def access_key_create(
        name: Annotated[str, typer.Option(help="Who or what the key is for.")],
        role: Annotated[str, typer.Option(help="viewer | operator | approver | admin.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Create an access key (id + secret) for a lakeFS client; the secret is shown once."""
    with open_local(load_settings()) as platform:
        identity, key_id, secret = platform.tokens.create_access_key(name, role, actor=platform.actor)
        url = platform.settings.server_url
    if as_json:
        _print_json({"name": identity.name, "role": identity.role, "access_key_id": key_id,
                     "secret_access_key": secret, "endpoint": f"{url}/api/v1"})
        return
    _line(f"access key for {identity.name} (role {identity.role})")
    _line(f"  access key id      {key_id}")
    _line(f"  secret access key  {secret}")
    _line(f"The secret is shown only now. lakeFS clients: endpoint {url}/api/v1 (run `mlops-lite up`).")


# --- tokens -----------------------------------------------------------------
token_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Bearer tokens: create, list, revoke (through the daemon when `up` runs).")
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(name: Annotated[str, typer.Option(help="Who or what the token is for.")],
                 role: Annotated[str, typer.Option(help="viewer | operator | approver | admin.")],
                 as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Create a bearer token; its secret is shown once."""
    with _control_plane() as platform:
        identity, secret = platform.tokens.create(name, role, actor=getattr(platform, "actor", "cli"))
    if as_json:
        _print_json({"id": identity.token_id, "name": identity.name, "role": identity.role, "token": secret})
        return
    _line(f"token {identity.token_id} for {identity.name} (role {identity.role}): {secret}")
    _line("The secret is shown only now.")


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every token and access key (never a secret)."""
    with _control_plane() as platform:
        records = platform.tokens.list()
    if as_json:
        _print_json(records)
        return
    table = _table("id", "name", "role", "kind", "created", "revoked")
    for r in records:
        table.add_row(r.id, r.name, r.role, "access key" if r.access_key_id else "token",
                      f"{r.created_at:%Y-%m-%d %H:%M}", "yes" if r.revoked else "")
    _print_table(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see `token list`).")]) -> None:
    """Revoke a token or access key: refused at once by the daemon, by serving workers within 30 s."""
    with _control_plane() as platform:
        record = platform.tokens.revoke(token_id, actor=getattr(platform, "actor", "cli"))
    _line(f"revoked {record.id} ({record.name}, role {record.role})")


# --- deploy -----------------------------------------------------------------
deploy_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="Deployments: single, canary, blue-green and shadow releases; every change a revision.")
app.add_typer(deploy_app, name="deploy")

_REASON = typer.Option(help="Why, recorded in the revision and the audit trail.")
_JSON = typer.Option("--json", help="Print JSON.")


@contextmanager
def _control_plane() -> Iterator[Any]:
    """The running daemon over HTTP when there is one, else the local stores."""
    settings = load_settings()
    running = read_daemon(settings.daemon_file)
    if running is not None:
        from mlops_lite.client import RemotePlatform

        with RemotePlatform(running.url, settings.token or read_admin_token(settings)) as remote:
            yield remote
        return
    with open_local(settings) as platform:
        yield platform


def _print_deployment(record: Any, as_json: bool) -> None:
    if as_json:
        _print_json(record)
        return
    _line(_describe(record))


def _describe(record: Any) -> str:
    primary = f"{record.model}@{record.version}"
    if record.strategy == "canary":
        return (f"{record.name}: canary {record.candidate_model}@{record.candidate_version} "
                f"takes {record.weight:.0%}, {primary} the rest (revision {record.revision})")
    if record.strategy == "shadow":
        return (f"{record.name}: {primary} answers, {record.candidate_model}@{record.candidate_version} "
                f"shadows (revision {record.revision})")
    if record.strategy == "blue_green":
        standby = "green" if (record.live_slot or "blue") == "blue" else "blue"
        return (f"{record.name}: {record.live_slot} {primary} live, {standby} "
                f"{record.candidate_model}@{record.candidate_version} standing by (revision {record.revision})")
    return f"{record.name}: {primary} (revision {record.revision})"


@deploy_app.command("create")
def deploy_create(name: Annotated[str, typer.Argument(help="The deployment's name.")],
                  ref: Annotated[str, typer.Argument(help="NAME@VERSION of the model.")],
                  reason: Annotated[str, _REASON] = "", as_json: Annotated[bool, _JSON] = False) -> None:
    """Point a deployment at one version (strategy single), through the policy gates."""
    model, version = _model_ref(ref)
    with _control_plane() as platform:
        _print_deployment(platform.deployments.deploy(name, model, version, reason=reason), as_json)


@deploy_app.command("list")
def deploy_list(as_json: Annotated[bool, _JSON] = False) -> None:
    """Every deployment and what it serves."""
    with _control_plane() as platform:
        records = platform.deployments.list()
    if as_json:
        _print_json(records)
        return
    table = _table("deployment", "strategy", "primary", "candidate", "weight", "revision", "updated")
    for r in records:
        table.add_row(r.name, r.strategy, f"{r.model}@{r.version}",
                      f"{r.candidate_model}@{r.candidate_version}" if r.candidate_digest else "-",
                      f"{r.weight:.2f}" if r.weight else "-", str(r.revision), f"{r.updated_at:%Y-%m-%d %H:%M}")
    _print_table(table)


@deploy_app.command("canary")
def deploy_canary(name: Annotated[str, typer.Argument(help="The deployment.")],
                  ref: Annotated[str, typer.Argument(help="NAME@VERSION of the candidate.")],
                  weight: Annotated[float, typer.Option(help="Share of requests for the candidate, 0-1.")] = 0.1,
                  reason: Annotated[str, _REASON] = "", as_json: Annotated[bool, _JSON] = False) -> None:
    """Send a share of the traffic to a candidate (sticky by the request's key); gated."""
    model, version = _model_ref(ref)
    with _control_plane() as platform:
        _print_deployment(platform.deployments.canary(name, model, version, weight=weight, reason=reason), as_json)


@deploy_app.command("shadow")
def deploy_shadow(name: Annotated[str, typer.Argument(help="The deployment.")],
                  ref: Annotated[str, typer.Argument(help="NAME@VERSION of the candidate.")],
                  reason: Annotated[str, _REASON] = "", as_json: Annotated[bool, _JSON] = False) -> None:
    """Mirror the traffic to a candidate that answers nobody; both answers are logged."""
    model, version = _model_ref(ref)
    with _control_plane() as platform:
        _print_deployment(platform.deployments.shadow(name, model, version, reason=reason), as_json)


@deploy_app.command("stage")
def deploy_stage(name: Annotated[str, typer.Argument(help="The deployment.")],
                 ref: Annotated[str, typer.Argument(help="NAME@VERSION for the standby slot.")],
                 reason: Annotated[str, _REASON] = "", as_json: Annotated[bool, _JSON] = False) -> None:
    """Blue-green: load a version into the standby slot."""
    model, version = _model_ref(ref)
    with _control_plane() as platform:
        _print_deployment(platform.deployments.stage(name, model, version, reason=reason), as_json)


@deploy_app.command("switch")
def deploy_switch(name: Annotated[str, typer.Argument(help="The deployment.")],
                  reason: Annotated[str, _REASON] = "", as_json: Annotated[bool, _JSON] = False) -> None:
    """Blue-green: the standby slot goes live at once (run again to switch back)."""
    with _control_plane() as platform:
        _print_deployment(platform.deployments.switch(name, reason=reason), as_json)


@deploy_app.command("promote")
def deploy_promote(name: Annotated[str, typer.Argument(help="The deployment.")],
                   reason: Annotated[str, _REASON] = "", as_json: Annotated[bool, _JSON] = False) -> None:
    """The candidate becomes the only version, through the policy gates."""
    with _control_plane() as platform:
        _print_deployment(platform.deployments.promote(name, reason=reason), as_json)


@deploy_app.command("rollback")
def deploy_rollback(name: Annotated[str, typer.Argument(help="The deployment.")],
                    to: Annotated[int | None, typer.Option("--to", help="The revision to restore.")] = None,
                    reason: Annotated[str, _REASON] = "", as_json: Annotated[bool, _JSON] = False) -> None:
    """Restore the revision before (or --to N) as a new revision."""
    with _control_plane() as platform:
        _print_deployment(platform.deployments.rollback(name, to_revision=to, reason=reason), as_json)


@deploy_app.command("status")
def deploy_status(name: Annotated[str, typer.Argument(help="The deployment.")],
                  limit: Annotated[int, typer.Option(help="How many revisions to show.")] = 10,
                  as_json: Annotated[bool, _JSON] = False) -> None:
    """What a deployment serves now, and its revisions."""
    with _control_plane() as platform:
        record = platform.deployments.get(name)
        revisions = platform.deployments.revisions(name)[:limit]
    if as_json:
        _print_json({"deployment": record, "revisions": revisions})
        return
    _line(_describe(record))
    table = _table("revision", "action", "strategy", "primary", "candidate", "by", "when", "reason")
    for r in revisions:
        table.add_row(str(r.revision), r.action, r.strategy, f"{r.model}@{r.version}",
                      f"{r.candidate_model}@{r.candidate_version}" if r.candidate_digest else "-",
                      r.changed_by, f"{r.changed_at:%Y-%m-%d %H:%M:%S}", r.reason)
    _print_table(table)


@deploy_app.command("lineage")
def deploy_lineage(name: Annotated[str, typer.Argument(help="The deployment.")],
                   at: Annotated[str | None, typer.Option(help="What served at this ISO time (default now).")] = None,
                   as_json: Annotated[bool, _JSON] = False) -> None:
    """Which data, run and approvals produced what a deployment serves (or served at --at):
    the revision in force, each slot's version, run, data commits, gates, decisions and
    approvals, and the revisions up to then."""
    with _control_plane() as platform:
        lineage = platform.deployments.lineage(name, at)
    if as_json:
        _print_json({**_jsonable(lineage), "missing": list(lineage.missing)})
        return
    _print_lineage(lineage)


@app.command("trace")
def trace(request_id: Annotated[str, typer.Argument(help="The request id a predict call answered.")],
          as_json: Annotated[bool, _JSON] = False) -> None:
    """One logged prediction traced back: the slot and version that answered, when, its
    input rows and answers, its feedback label, and the deployment's lineage then."""
    with _control_plane() as platform:
        found = platform.monitoring.trace(request_id)
    if as_json:
        _print_json({**_jsonable(found), "missing": list(found.lineage.missing)})
        return
    latency = f", {found.latency_ms:.2f} ms" if found.latency_ms is not None else ""
    _line(f"request {found.request_id}: {found.deployment} {found.slot} {found.model}@{found.version}  "
          f"sha256:{found.digest[:16]}  at {found.at.isoformat()}{latency}")
    for row, label, probability in zip(found.instances, found.predictions, found.probabilities, strict=True):
        _line(f"  input      {json.dumps(row, sort_keys=True)}")
        _line(f"  answer     {label}" + (f"  p(positive)={probability:.4f}" if probability is not None else ""))
    _line(f"  feedback   {found.feedback} (given {found.feedback_at.isoformat()})" if found.feedback_at
          else "  feedback   none")
    for shadow in found.shadow:
        _line(f"  shadow     {shadow.model}@{shadow.version} answered {', '.join(map(str, shadow.predictions))}")
    _print_lineage(found.lineage)


def _print_lineage(lineage: Any) -> None:
    revision = lineage.revision
    _line(f"{lineage.deployment} at {lineage.at.isoformat()}: revision {revision.revision} ({revision.action} by "
          f"{revision.changed_by} at {revision.changed_at.isoformat()}{': ' + revision.reason if revision.reason else ''})")
    for slot in lineage.slots:
        share = f"{slot.weight:.0%} of requests" if slot.weight else "answers nobody"
        _line(f"{slot.slot:<8} {slot.model}@{slot.version}  sha256:{slot.digest}  ({share})")
        if slot.registered is not None:
            _line(f"  registered {slot.registered.created_at.isoformat()} by {slot.registered.created_by}")
        run = slot.run
        _line(f"  run        {slot.run_id or '-'}" + (f" ({run.name}, {run.status})" if run is not None else ""))
        for commit in slot.commits:
            _line(f"  data       {slot.data_repository}@{commit.id}  {commit.created_at.isoformat()} "
                  f"by {commit.author}: {commit.message}")
        if not slot.commits:
            _line(f"  data       {', '.join(slot.data_commits) or '-'}")
        _line(f"  params     {json.dumps(slot.params, sort_keys=True)}")
        _line("  metrics    " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(slot.metrics.items())
                                           if isinstance(v, int | float)))
        if slot.released_in is not None:
            _line(f"  gates      at revision {slot.released_in}: "
                  + ", ".join(_gate_text(g) for g in slot.release_gates))
        if not slot.decisions:
            _line("  decisions  none stored for this version")
        for decision in slot.decisions:
            verdict = "passed" if decision.passed else "failed " + ", ".join(g.gate for g in decision.failed)
            override = f", overridden: {decision.override_reason}" if decision.override_reason else ""
            _line(f"  decision   {decision.at.isoformat()} -> {decision.alias}: {verdict}{override} "
                  f"by {decision.actor}")
        if not slot.approvals:
            _line("  approvals  none requested")
        for request in slot.approvals:
            _line(f"  approval   {request.id} -> {request.alias}: {request.status}, asked by {request.requested_by} "
                  f"at {request.requested_at.isoformat()}" + (f" ({request.comment})" if request.comment else ""))
            for vote in request.votes:
                _line(f"    {vote.vote:<8} by {vote.approver} at {vote.at.isoformat()}"
                      + (f" ({vote.comment})" if vote.comment else ""))
        for gap in slot.missing:
            _line(f"  MISSING    {gap}")
    table = _table("revision", "action", "strategy", "primary", "candidate", "weight", "by", "when", "reason")
    for r in lineage.history:
        table.add_row(str(r.revision), r.action, r.strategy, f"{r.model}@{r.version}",
                      f"{r.candidate_model}@{r.candidate_version}" if r.candidate_digest else "-",
                      f"{r.weight:.2f}" if r.weight else "-", r.changed_by, f"{r.changed_at:%Y-%m-%d %H:%M:%S}",
                      r.reason)
    _line("revisions up to then:")
    _print_table(table)


def _gate_text(gate: Any) -> str:
    """A gate's verdict, with its measure when that is one figure (lists and maps stay in --json)."""
    verdict = f"{gate.gate} {'passed' if gate.passed else 'FAILED'}"
    measured = gate.measured
    if isinstance(measured, float):
        return f"{verdict} ({measured:.4g}, needs {gate.bound})"
    if isinstance(measured, str | int) and not isinstance(measured, bool):
        return f"{verdict} ({measured}, needs {gate.bound})"
    return verdict


# --- models -----------------------------------------------------------------
models_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="The model registry: versions, aliases and their history, lineage.")
alias_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Aliases (staging, production, ...).")
app.add_typer(models_app, name="models")
models_app.add_typer(alias_app, name="alias")


def _model_ref(value: str) -> tuple[str, str]:
    model, sep, ref = value.partition("@")
    if not sep or not model or not ref:
        raise InvalidInput(f"bad model reference {value!r}", field="model",
                           expected="NAME@VERSION or NAME@ALIAS, e.g. loan-default@production")
    return model, ref


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"bad time {value!r}", field="at", expected="an ISO time like 2026-03-03T12:00") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Models, their versions and aliases."""
    with _control_plane() as platform:
        rows = [(m, platform.registry.aliases(m.name)) for m in platform.registry.list_models()]
    if as_json:
        _print_json([{**_jsonable(m), "aliases": a} for m, a in rows])
        return
    table = _table("model", "versions", "aliases")
    for model, aliases in rows:
        table.add_row(model.name, ", ".join(model.versions), ", ".join(f"{k}={v}" for k, v in sorted(aliases.items())))
    _print_table(table)


@models_app.command("lineage")
def models_lineage(ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS.")],
                   at: Annotated[str | None, typer.Option(help="Resolve the alias at this ISO time.")] = None,
                   as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Where a model came from: data commits, run, params, metrics, who moved its alias, and
    every audit event about it (registrations, decisions, approvals, overrides)."""
    model, name = _model_ref(ref)
    with open_local(load_settings()) as platform:
        lineage = platform.registry.lineage(model, name, at=_moment(at))
    if as_json:
        _print_json(lineage)
        return
    version = lineage.version
    when = f" at {lineage.at.isoformat()}" if lineage.at else ""
    _line(f"{model}@{name}{when} is version {version.version}  sha256:{version.digest}")
    _line(f"  registered {version.created_at.isoformat()} by {version.created_by}")
    _line(f"  run        {lineage.run_id or '-'}")
    _line(f"  data       {', '.join(lineage.data_commits) or '-'}")
    _line(f"  params     {json.dumps(lineage.params, sort_keys=True)}")
    _line("  metrics    " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(lineage.metrics.items())
                                       if isinstance(v, int | float)))
    for event in lineage.alias_events:
        _line(f"  alias      {event.at.isoformat()} {event.kind} {event.alias}: {event.from_version or '-'} -> "
              f"{event.to_version or '-'} by {event.actor} ({event.reason})")
    for event in lineage.audit_events:
        _line(f"  audit      #{event.seq} {event.at.isoformat()} {event.action} by {event.actor}")


@models_app.command("compare")
def models_compare(model: str, a: str, b: str,
                   as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Version B against version A: metric deltas, signature and data differences."""
    with open_local(load_settings()) as platform:
        comparison = platform.registry.compare_versions(model, a, b)
    if as_json:
        _print_json(comparison)
        return
    _line(f"{model} {b} vs {a}")
    for key, delta in sorted(comparison.metric_deltas.items()):
        _line(f"  {key:<32} {delta:+.4g}")
    _line(f"  signature changed: {comparison.signature_changed}; data changed: {comparison.data_changed}")


@alias_app.command("set")
def alias_set(model: str, alias: str, version: str,
              reason: Annotated[str, typer.Option(help="Why (kept in the alias history).")]) -> None:
    """Point an alias at a version."""
    with open_local(load_settings()) as platform:
        record = platform.registry.set_alias(model, alias, version, reason=reason, actor=platform.actor)
    _line(f"{model}@{alias} -> {record.version}")


@alias_app.command("rollback")
def alias_rollback(model: str, alias: str,
                   reason: Annotated[str, typer.Option(help="Why (kept in the alias history).")]) -> None:
    """Move an alias back to the version it pointed to before its last move."""
    with open_local(load_settings()) as platform:
        record = platform.registry.rollback(model, alias, reason=reason, actor=platform.actor)
    _line(f"{model}@{alias} rolled back to {record.version}")


@alias_app.command("history")
def alias_history(model: str, alias: Annotated[str | None, typer.Argument()] = None,
                  as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every move of a model's aliases (or one alias), oldest first."""
    with open_local(load_settings()) as platform:
        events = platform.registry.alias_history(model, alias)
    if as_json:
        _print_json(events)
        return
    table = _table("when", "alias", "kind", "from", "to", "by", "reason")
    for e in events:
        table.add_row(e.at.isoformat(timespec="seconds"), e.alias, e.kind, e.from_version or "-",
                      e.to_version or "-", e.actor, e.reason)
    _print_table(table)


@app.command()
def sql(query: Annotated[str, typer.Argument(help="One SELECT (or WITH ... SELECT) over the metadata tables.")],
        max_rows: Annotated[int, typer.Option(help="Rows to show at most.")] = 200,
        csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False) -> None:
    """Read-only SQL over the metadata: runs, params, metrics, models, versions, aliases, audit..."""
    with open_local(load_settings()) as platform:
        table = platform.tracking.sql(query, max_rows=max_rows)
    if csv:
        import pyarrow.csv as pacsv

        sink = sys.stdout.buffer
        pacsv.write_csv(table, sink)
        sink.flush()
        return
    out = _table(*table.column_names)
    for row in table.to_pylist():
        out.add_row(*("" if v is None else str(v) for v in row.values()))
    _print_table(out)
    err.print(f"{table.num_rows} row(s)")


# --- audit ------------------------------------------------------------------
audit_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="The audit chain: verify it, export it, read it.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(file: Annotated[Path | None, typer.Option(
        "--file", help="Verify an exported JSONL file instead of the database.")] = None) -> None:
    """Check every link of the chain; name the first bad event and exit 1 when one is found."""
    from mlops_lite.security.audit import load_or_create_key, verify_events

    settings = load_settings()
    if file is not None:
        try:
            events = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read {file} as JSONL: {exc}", field="file",
                               expected="an export written by `mlops-lite audit export`") from exc
        bad = verify_events(load_or_create_key(settings.audit_key_file), events)
        count = len(events)
        where = str(file)
        first_bad = None if bad is None else f"seq {bad.get('seq')} ({bad.get('action')} on {bad.get('object')})"
    else:
        with open_local(settings) as platform:
            record = platform.audit.verify()
            count = platform.audit.count()
        where = "the database"
        first_bad = None if record is None else f"seq {record.seq} ({record.action} on {record.object})"
    if first_bad is not None:
        _line(f"audit chain in {where} does NOT verify: first bad event is {first_bad}")
        raise typer.Exit(1)
    _line(f"audit chain in {where} verifies: {count} events")


@audit_app.command("export")
def audit_export(since: Annotated[str | None, typer.Option(help="Only events at or after this ISO time.")] = None,
                 output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here, not stdout.")] = None,
                 ) -> None:
    """Write the chain as JSONL, one event a line (verifiable with `audit verify --file`)."""
    moment = None
    if since is not None:
        from datetime import UTC, datetime

        try:
            moment = datetime.fromisoformat(since)
        except ValueError as exc:
            raise InvalidInput(f"bad time {since!r}", field="since", expected="an ISO time like 2026-03-03T00:00") \
                from exc
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    with open_local(load_settings()) as platform:
        events = platform.audit.export(since=moment)
    text = "".join(json.dumps(event, sort_keys=True) + "\n" for event in events)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"{len(events)} events written to {output}")


# --- data -------------------------------------------------------------------
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Versioned data: repositories, branches, objects, commits, merges, tags, queries.")
repo_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Data repositories.")
branch_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Branches of a data repository.")
tag_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Tags of a data repository.")
app.add_typer(data_app, name="data")
data_app.add_typer(repo_app, name="repo")
data_app.add_typer(branch_app, name="branch")
data_app.add_typer(tag_app, name="tag")

PROGRESS_BYTES = 8 << 20
"""Files bigger than this show a progress bar while they stream."""
_CHUNK = 1 << 20

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RepoArg = Annotated[str, typer.Argument(help="The data repository.", show_default=False)]


@contextmanager
def _data() -> Iterator[DataStore]:
    """The data facet of the local platform, closed (stores released) on the way out."""
    with open_local(load_settings()) as platform:
        yield platform.data


def _line(text: str) -> None:
    """A plain line on stdout: no markup, no highlighting, no emoji codes."""
    console.print(Text(text), highlight=False)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(value), indent=2) + "\n")
    sys.stdout.flush()


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "-"


def _pairs(values: list[str] | None, what: str, expected: str) -> dict[str, str]:
    """``k=v`` options as a dict (the last '=' splits, so a glob may hold one)."""
    out: dict[str, str] = {}
    for value in values or ():
        key, sep, rest = value.rpartition("=") if what == "rule" else value.partition("=")
        if not sep or not key:
            raise InvalidInput(f"bad --{what} {value!r}", field=what, expected=expected)
        out[key] = rest
    return out


def _table(*headers: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _print_table(table: Table) -> None:
    """Print a table; to a file or pipe, at its natural width rather than folded into 80 columns."""
    if console.is_terminal:
        console.print(table)
        return
    width = max(80, console.measure(table, options=console.options.update_width(10_000)).maximum)
    Console(width=width, soft_wrap=True, highlight=False, force_terminal=False).print(table)


def _bytes_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


class _ProgressReader:
    """A binary stream that advances a progress bar as it is read."""

    def __init__(self, stream: IO[bytes], progress: Progress, task: TaskID) -> None:
        self._stream, self._progress, self._task = stream, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk


# --- data repo --------------------------------------------------------------
@repo_app.command("create")
def repo_create(name: RepoArg,
                default_branch: Annotated[str, typer.Option(help="The default branch (created empty, protected).")]
                = "main") -> None:
    """Create a data repository with an empty, protected default branch."""
    with _data() as data:
        record = data.repo(name).create(default_branch=default_branch)
    _line(f"created repository {record.name} (default branch {record.default_branch}, "
          f"protected: {', '.join(record.protected_branches) or 'none'})")


@repo_app.command("list")
def repo_list(as_json: JsonOption = False) -> None:
    """List the data repositories."""
    with _data() as data:
        records = data.repositories()
    if as_json:
        _print_json(records)
        return
    if not records:
        _line("no data repositories (create one: mlops-lite data repo create NAME)")
        return
    table = _table("repository", "default", "branches", "protected", "created")
    for r in records:
        table.add_row(Text(r.name), Text(r.default_branch), str(len(r.branches)),
                      Text(", ".join(r.protected_branches) or "-"), r.created_at.strftime("%Y-%m-%d %H:%M"))
    _print_table(table)


@repo_app.command("delete")
def repo_delete(name: RepoArg,
                yes: Annotated[bool, typer.Option("--yes", help="Confirm: drop every branch, tag and commit.")]
                = False) -> None:
    """Delete a repository's branches, tags and commits (its objects go at the next `data gc --apply`)."""
    if not yes:
        raise InvalidInput(f"deleting {name!r} drops every branch, tag and commit of it: pass --yes to confirm",
                           field="yes", expected="--yes")
    with _data() as data:
        data.repo(name).delete()
    _line(f"deleted repository {name} (run `mlops-lite data gc --apply` to free its objects)")


def _load_schema(spec: str) -> Any:
    from mlops_lite.data import ColumnRule, SchemaRule

    glob, sep, file = spec.rpartition("=")
    if not sep or not glob or not file:
        raise InvalidInput(f"bad --schema {spec!r}", field="schema", expected="GLOB=FILE.json")
    try:
        columns = json.loads(Path(file).expanduser().read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read the schema file {file}: {exc.strerror}", field="schema",
                           expected="a readable JSON file") from exc
    except ValueError as exc:
        raise InvalidInput(f"the schema file {file} is not JSON: {exc}", field="schema",
                           expected='[{"name": ..., "type": ..., "nullable": ...}, ...]') from exc
    try:
        if not isinstance(columns, list) or not columns:
            raise TypeError("expected a non-empty list of columns")
        return SchemaRule(paths=glob, columns=tuple(ColumnRule(**c) for c in columns))
    except TypeError as exc:
        raise InvalidInput(f"bad schema in {file}: {exc}", field="schema",
                           expected='[{"name": str, "type": "int|float|string|bool|timestamp|date", '
                                    '"nullable": bool}, ...]') from exc


def _print_config(name: str, config: RepositoryConfig) -> None:
    _line(f"repository        {name}")
    _line(f"protected         {', '.join(config.protected_branches) or '-'}")
    _line(f"pii patterns      {', '.join(config.pii_patterns) or '-'}")
    _line(f"max object bytes  {config.max_object_bytes if config.max_object_bytes is not None else '-'}")
    if not config.schemas:
        _line("schemas           -")
    for index, schema in enumerate(config.schemas):
        columns = ", ".join(f"{c.name}:{c.type}{'' if c.nullable else '!'}" for c in schema.columns)
        _line(f"{'schemas' if index == 0 else '':<18}{schema.paths} -> {columns}")


@repo_app.command("config")
def repo_config(
        name: RepoArg,
        protect: Annotated[list[str] | None, typer.Option(
            "--protect", metavar="BRANCH", help="A protected branch (repeat; replaces the list).")] = None,
        pii_pattern: Annotated[list[str] | None, typer.Option(
            "--pii-pattern", metavar="REGEX", help="A PII column-name pattern (repeat; replaces the list).")]
        = None,
        max_object_bytes: Annotated[int | None, typer.Option(help="The largest object a commit may add.")] = None,
        schema: Annotated[list[str] | None, typer.Option(
            "--schema", metavar="GLOB=FILE.json",
            help='A pinned schema for tables matching GLOB; the file holds [{"name", "type", "nullable"}, ...] '
                 "(repeat; replaces the list).")] = None,
        as_json: JsonOption = False) -> None:
    """Show a repository's rules, or change them (what is not given stays as it is)."""
    schemas = [_load_schema(s) for s in schema] if schema else None
    with _data() as data:
        repo = data.repo(name)
        if protect is None and pii_pattern is None and max_object_bytes is None and schemas is None:
            config = repo.config()
        else:
            config = repo.configure(protected_branches=protect, pii_patterns=pii_pattern,
                                    max_object_bytes=max_object_bytes, schemas=schemas)
    if as_json:
        _print_json(config.to_json())
    else:
        _print_config(name, config)


# --- data branch ------------------------------------------------------------
@branch_app.command("create")
def branch_create(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The new branch.")],
                  source: Annotated[str | None, typer.Option(
                      "--from", metavar="REF", help="Where it starts (default: the default branch).")] = None) -> None:
    """Create a branch at a ref (O(1): no data is copied)."""
    with _data() as data:
        record = data.repo(repo).branch(branch).create(source)
    _line(f"created branch {record.name} at {_short(record.head)}")


@branch_app.command("list")
def branch_list(repo: RepoArg, as_json: JsonOption = False) -> None:
    """List a repository's branches and their heads."""
    with _data() as data:
        handle = data.repo(repo)
        records = handle.branches()
        info = handle.info()
    if as_json:
        _print_json(records)
        return
    table = _table("branch", "head", "")
    for r in records:
        marks = [m for m, on in (("default", r.name == info.default_branch),
                                 ("protected", r.name in info.protected_branches)) if on]
        table.add_row(Text(r.name), _short(r.head), ", ".join(marks))
    _print_table(table)


@branch_app.command("delete")
def branch_delete(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to delete.")]) -> None:
    """Delete a branch and its uncommitted changes (its commits stay reachable from others)."""
    with _data() as data:
        data.repo(repo).branch(branch).delete()
    _line(f"deleted branch {branch}")


@branch_app.command("reset")
def branch_reset(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to reset.")]) -> None:
    """Drop every uncommitted change on a branch."""
    with _data() as data:
        count = data.repo(repo).branch(branch).reset()
    _line(f"dropped {count} uncommitted change(s) on {branch}")


# --- data objects -------------------------------------------------------------
def _put_folder(branch: Any, folder: Path, prefix: str) -> int:
    files = [Path(root) / n for root, _, names in os.walk(folder) for n in names]
    total = 0
    for file in files:
        try:
            total += file.stat().st_size
        except OSError:
            pass
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=False) as progress:
        count_task = progress.add_task("files", total=len(files))
        bytes_task = progress.add_task("MiB", total=max(1, total >> 20))

        def advance(files_done: int, bytes_done: int) -> None:
            progress.update(count_task, completed=files_done)
            progress.update(bytes_task, completed=bytes_done >> 20)

        count = int(branch.import_directory(folder, prefix=prefix, workers=min(8, os.cpu_count() or 2),
                                            progress=advance))
        progress.update(count_task, completed=len(files))
        progress.update(bytes_task, completed=max(1, total >> 20))
    return count


def _put_file(branch: Any, source: Path, dest: str) -> Any:
    if source == Path("-"):
        return branch.upload(dest, cast(BinaryIO, sys.stdin.buffer))
    try:
        stream = open(source, "rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror}", field="path",
                           expected="a readable file or folder") from exc
    with stream:
        size = os.fstat(stream.fileno()).st_size
        if size <= PROGRESS_BYTES:
            return branch.upload(dest, cast(BinaryIO, stream))
        with _bytes_progress() as progress:
            task = progress.add_task(dest, total=size)
            return branch.upload(dest, cast(BinaryIO, _ProgressReader(stream, progress, task)))


@data_app.command("put")
def data_put(
        repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to stage on.")],
        local_path: Annotated[Path, typer.Argument(
            help="A file, a folder, or - for stdin.", show_default=False)],
        dest_path: Annotated[str | None, typer.Argument(
            help="Object path (a folder's prefix; ending in / puts a file under it). "
                                        "Default: the local name.", show_default=False)] = None,
        commit: Annotated[str | None, typer.Option("--commit", metavar="MESSAGE",
                                                   help="Commit right after staging.")] = None,
        meta: Annotated[list[str] | None, typer.Option("--meta", metavar="K=V",
                                                       help="Commit metadata (with --commit; repeat).")] = None) \
        -> None:
    """Stage a file (streamed) or a folder's files on a branch; --commit commits them."""
    metadata = _pairs(meta, "meta", "KEY=VALUE")
    stdin = local_path == Path("-")
    if stdin and not dest_path:
        raise InvalidInput("reading stdin needs a DEST_PATH", field="dest_path", expected="an object path")
    if not stdin and not local_path.exists():
        raise InvalidInput(f"no such file or folder: {local_path}", field="path", expected="an existing file or folder")
    name = "" if stdin else local_path.resolve().name
    with _data() as data:
        handle = data.repo(repo).branch(branch)
        if not stdin and local_path.is_dir():
            prefix = name if dest_path is None else dest_path
            count = _put_folder(handle, local_path, prefix)
            _line(f"staged {count} object(s) under {prefix.rstrip('/') + '/' if prefix else '/'} on {repo}/{branch}")
        else:
            dest = name if dest_path is None else dest_path + name if dest_path.endswith("/") else dest_path
            record = _put_file(handle, local_path, dest)
            _line(f"staged {record.path} ({record.size} bytes, sha256:{record.digest[:12]}) on {repo}/{branch}")
        if commit is not None:
            made = handle.commit(commit, metadata=metadata)
            _line(f"committed {_short(made.id)} on {repo}/{branch}: {made.message}")


def _parse_range(spec: str) -> tuple[int, int | None]:
    first, sep, last = spec.partition("-")
    try:
        if not sep or not first:
            raise ValueError(spec)
        return int(first), (int(last) if last else None)
    except ValueError:
        raise InvalidInput(f"bad --range {spec!r}", field="range",
                           expected="START-END or START- (bytes, END inclusive)") from None


@data_app.command("get")
def data_get(repo: RepoArg, ref: Annotated[str, typer.Argument(help="A branch, tag or commit.")],
             path: Annotated[str, typer.Argument(help="The object path.")],
             output: Annotated[Path | None, typer.Option("-o", "--output", metavar="FILE",
                                                         help="Write here (default: stdout).")] = None,
             byte_range: Annotated[str | None, typer.Option("--range", metavar="START-END",
                                                            help="Only these bytes (END inclusive).")] = None) -> None:
    """Read an object's bytes (to stdout by default, binary-safe)."""
    span = _parse_range(byte_range) if byte_range else None
    with _data() as data:
        reference = data.repo(repo).ref(ref)
        if span is not None:
            _write_out(output, [reference.read_bytes(path, start=span[0], end=span[1])], None)
            return
        with reference.open(path) as stream:
            size = os.fstat(stream.fileno()).st_size
            _write_out(output, iter(lambda: stream.read(_CHUNK), b""), size if size > PROGRESS_BYTES else None)


def _write_out(output: Path | None, chunks: Any, size: int | None) -> None:
    """Write chunks to ``output`` (whole or not at all: via a temporary file) or stdout."""
    target: Path | None = None
    try:
        if output is None:
            sink: IO[bytes] = sys.stdout.buffer
        else:
            target = output.with_name(f".{output.name}.part")
            sink = open(target, "wb")
        progress = _bytes_progress() if size is not None else None
        try:
            task = progress.add_task(output.name if output else "stdout", total=size) if progress else None
            if progress:
                progress.start()
            for chunk in chunks:
                sink.write(chunk)
                if progress and task is not None:
                    progress.advance(task, len(chunk))
            sink.flush()
        finally:
            if progress:
                progress.stop()
            if output is not None:
                sink.close()
        if target is not None and output is not None:
            os.replace(target, output)
            target = None
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    except OSError as exc:
        raise InvalidInput(f"cannot write {output or 'stdout'}: {exc.strerror}", field="output",
                           expected="a writable file") from exc
    finally:
        if target is not None:
            target.unlink(missing_ok=True)


@data_app.command("ls")
def data_ls(repo: RepoArg, ref: Annotated[str, typer.Argument(help="A branch, tag or commit.")],
            prefix: Annotated[str, typer.Argument(help="Only paths starting with this.")] = "",
            recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Every object, not folder by folder.")]
            = False,
            as_json: JsonOption = False) -> None:
    """List objects (and folders, unless --recursive); * marks uncommitted ones."""
    objects: list[Any] = []
    prefixes: list[str] = []
    with _data() as data:
        reference = data.repo(repo).ref(ref)
        after = ""
        while True:
            page = reference.ls(prefix, delimiter="" if recursive else "/", after=after, amount=1000)
            objects += page.objects
            prefixes += page.prefixes
            if page.has_more:
                after = page.next_after
                continue
            if not recursive and prefix and not prefix.endswith("/") and not objects and prefixes == [prefix + "/"]:
                # `ls REPO REF folder` lists the folder, as ls does, rather than the folder itself.
                prefix, prefixes, after = prefix + "/", [], ""
                continue
            break
    if as_json:
        _print_json({"prefixes": prefixes, "objects": objects})
        return
    rows = sorted([(p, None) for p in prefixes] + [(o.path, o) for o in objects], key=lambda row: row[0])
    for path, record in rows:
        if record is None:
            _line(f"{'DIR':>12}  {'':12}    {path}")
        else:
            _line(f"{record.size:>12}  {record.digest[:12]}  {'*' if record.staged else ' '} {path}")


# --- data history -----------------------------------------------------------
@data_app.command("commit")
def data_commit(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to commit on.")],
                message: Annotated[str, typer.Option("-m", "--message", help="The commit message.")],
                meta: Annotated[list[str] | None, typer.Option("--meta", metavar="K=V",
                                                               help="Commit metadata (repeat).")] = None) -> None:
    """Commit a branch's staged changes (after the repository's checks pass)."""
    metadata = _pairs(meta, "meta", "KEY=VALUE")
    with _data() as data:
        record = data.repo(repo).branch(branch).commit(message, metadata=metadata)
    _line(f"committed {_short(record.id)} on {repo}/{branch}: {record.message}")


@data_app.command("log")
def data_log(repo: RepoArg,
             ref: Annotated[str | None, typer.Argument(help="Where to start (default: the default branch).")] = None,
             amount: Annotated[int, typer.Option(help="How many commits, newest first.")] = 50,
             as_json: JsonOption = False) -> None:
    """Commits from a ref back along first parents, newest first."""
    with _data() as data:
        records = data.repo(repo).log(ref, amount=amount)
    if as_json:
        _print_json(records)
        return
    if not records:
        _line("no commits")
        return
    table = _table("commit", "when", "author", "message")
    for r in records:
        merge = " (merge)" if len(r.parents) > 1 else ""
        table.add_row(_short(r.id), r.created_at.strftime("%Y-%m-%d %H:%M:%S"), Text(r.author),
                      Text(r.message + merge))
    _print_table(table)


@data_app.command("diff")
def data_diff(repo: RepoArg, left: Annotated[str, typer.Argument(help="A ref (a branch when RIGHT is omitted).")],
              right: Annotated[str | None, typer.Argument(
                  help="A ref; omitted: LEFT's uncommitted changes.")] = None,
              prefix: Annotated[str, typer.Option(help="Only paths starting with this.")] = "",
              as_json: JsonOption = False) -> None:
    """What changes from LEFT to RIGHT, or a branch's uncommitted changes."""
    with _data() as data:
        handle = data.repo(repo)
        if right is None:
            branch = handle.branch(left)
            branch.head()  # NotFound unless LEFT is a branch
            entries = [e for e in branch.uncommitted() if e.path.startswith(prefix)]
        else:
            entries = handle.diff(left, right, prefix=prefix)
    if as_json:
        _print_json(entries)
        return
    if not entries:
        _line("no changes")
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for e in entries:
        _line(f"{marks.get(e.type, '?')} {e.type:<8} {e.path}  ({e.size} bytes)")


@data_app.command("merge")
def data_merge(repo: RepoArg, source: Annotated[str, typer.Argument(help="The branch to merge.")],
               dest: Annotated[str, typer.Argument(help="The branch to merge into.")],
               strategy: Annotated[str, typer.Option(
                   help="On conflicts: fail | source-wins | dest-wins.")] = "fail",
               rule: Annotated[list[str] | None, typer.Option(
                   "--rule", metavar="GLOB=STRATEGY", help="A strategy for conflicting paths matching GLOB "
                                                         "(repeat; first match wins).")] = None,
               message: Annotated[str | None, typer.Option("-m", "--message", help="The merge commit's message.")]
               = None,
               meta: Annotated[list[str] | None, typer.Option("--meta", metavar="K=V",
                                                              help="Merge commit metadata (repeat).")] = None) -> None:
    """Three-way merge of SOURCE into DEST (through DEST's pre-merge checks)."""
    rules = _pairs(rule, "rule", "GLOB=STRATEGY")
    metadata = _pairs(meta, "meta", "KEY=VALUE")
    with _data() as data:
        record = data.repo(repo).branch(source).merge_into(dest, strategy=strategy, rules=rules,
                                                             message=message, metadata=metadata)
    _line(f"{dest} is at {_short(record.id)}: {record.message}")


@data_app.command("revert")
def data_revert(repo: RepoArg, branch: Annotated[str, typer.Argument(help="The branch to commit the revert on.")],
                commit: Annotated[str, typer.Argument(help="The commit to undo (id, prefix, tag).")],
                message: Annotated[str | None, typer.Option("-m", "--message", help="The revert's message.")]
                = None,
                parent: Annotated[int, typer.Option("--parent", min=0, help=(
                    "For a merge commit: the parent (1-based) to revert to, as lakeFS's parent_number."))]
                = 0) -> None:
    """A new commit on BRANCH undoing COMMIT's changes (allowed on a protected branch, as in lakeFS)."""
    with _data() as data:
        record = data.repo(repo).branch(branch).revert(commit, parent_number=parent, message=message)
    _line(f"committed {_short(record.id)} on {repo}/{branch}: {record.message}")


# --- data tag -----------------------------------------------------------------
@tag_app.command("create")
def tag_create(repo: RepoArg, tag: Annotated[str, typer.Argument(help="The tag.")],
               ref: Annotated[str, typer.Argument(help="The branch, tag or commit it names.")]) -> None:
    """Tag the commit a ref points at."""
    with _data() as data:
        record = data.repo(repo).create_tag(tag, ref)
    _line(f"tagged {_short(record.commit)} as {record.name}")


@tag_app.command("list")
def tag_list(repo: RepoArg, as_json: JsonOption = False) -> None:
    """List a repository's tags."""
    with _data() as data:
        records = data.repo(repo).tags()
    if as_json:
        _print_json(records)
        return
    if not records:
        _line("no tags")
    for r in records:
        _line(f"{r.name}  {_short(r.commit)}")


@tag_app.command("delete")
def tag_delete(repo: RepoArg, tag: Annotated[str, typer.Argument(help="The tag.")]) -> None:
    """Delete a tag (its commit stays)."""
    with _data() as data:
        data.repo(repo).delete_tag(tag)
    _line(f"deleted tag {tag}")


# --- data query and upkeep ----------------------------------------------------
def _table_spec(spec: str) -> tuple[str, tuple[str, str]]:
    name, sep, rest = spec.partition("=")
    ref, colon, path = rest.partition(":")
    if not sep or not name or not colon or not ref or not path:
        raise InvalidInput(f"bad --table {spec!r}", field="table", expected="NAME=REF:PATH_OR_GLOB")
    return name, (ref, path)


@data_app.command("query")
def data_query(repo: RepoArg, sql: Annotated[str, typer.Argument(help="DuckDB SQL over the named tables.")],
               table: Annotated[list[str], typer.Option(
                   "--table", metavar="NAME=REF:PATH_OR_GLOB",
                   help="A table: CSV/Parquet objects at a ref (repeat).")],
               limit: Annotated[int, typer.Option(min=1, help="Rows shown (the table, not --csv).")] = 50,
               as_csv: Annotated[bool, typer.Option("--csv", help="Print every row as CSV.")] = False) -> None:
    """SQL over tables at refs; prints the result and the commit each table was read at."""
    import pyarrow.csv as pacsv

    tables = dict(_table_spec(s) for s in table)
    with _data() as data:
        with err.status("querying", spinner="dots"):
            result = data.repo(repo).query(sql, **tables)
    read_at = [f"{name} read at {tables[name][0]}@{_short(commit)} ({tables[name][1]})"
               for name, commit in result.commits.items()]
    if as_csv:
        pacsv.write_csv(result.table, sys.stdout.buffer)
        sys.stdout.flush()
        for line in read_at:
            err.print(Text(line), highlight=False)
        return
    shown = result.table.slice(0, limit)
    out = _table(*shown.column_names)
    for row in shown.to_pylist():
        out.add_row(*(Text("null", style="dim") if v is None else Text(str(v)) for v in row.values()))
    _print_table(out)
    total = result.table.num_rows
    _line(f"{total} row(s)" + (f", showing {limit} (--limit, or --csv for all)" if total > limit else ""))
    for line in read_at:
        _line(line)


@data_app.command("gc")
def data_gc(apply: Annotated[bool, typer.Option("--apply", help="Remove (default: a dry run).")] = False,
            retention_days: Annotated[float, typer.Option(
                help="Objects of commits younger than this stay, reachable or not.")] = 7.0,
            grace_seconds: Annotated[float, typer.Option(
                help="Objects younger than this stay (uploads in flight).")] = 3600.0,
            as_json: JsonOption = False) -> None:
    """Remove data objects nothing reaches (a dry run unless --apply)."""
    with _data() as data:
        with err.status("collecting garbage" if apply else "looking for garbage", spinner="dots"):
            report = data.gc(retention_days=retention_days, dry_run=not apply, grace_seconds=grace_seconds)
    if as_json:
        _print_json(report)
        return
    _line(f"{'dry run: ' if report.dry_run else ''}{report.objects_total} objects, {report.unreachable} unreachable "
          f"({report.bytes_unreachable} bytes), {report.removed} removed, {report.kept_young} kept as young")
    if report.dry_run and report.unreachable:
        _line("run again with --apply to remove them")


@data_app.command("fsck")
def data_fsck(as_json: JsonOption = False) -> None:
    """Verify every data object's digest and that every commit's tree is whole; exit 1 when not clean."""
    with _data() as data:
        with err.status("checking objects and commits", spinner="dots"):
            report = data.fsck()
    if as_json:
        _print_json({**dataclasses.asdict(report), "clean": report.clean})
    else:
        _line(f"{report.objects_checked} objects and {report.commits_checked} commits checked: "
              f"{'clean' if report.clean else 'NOT clean'}")
        for digest in report.bad_objects:
            _line(f"bad object {digest} (its bytes do not match its digest)")
        for missing in report.missing:
            _line(f"missing {missing}")
    if not report.clean:
        raise typer.Exit(1)


def main() -> None:
    """Entry point: errors of the tree print as one line and exit 1, no traceback."""
    try:
        app()
    except MlopsLiteError as exc:
        # A Text, not a markup string: a message may hold '[' (paths, lists) or ':name:'.
        message = str(exc.message)
        if isinstance(exc, InvalidInput) and exc.expected and exc.expected not in message:
            message += f" (expected {exc.expected})"
        err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)
        sys.exit(1)
