"""The ``mlops-lite`` command. The one core module that may import the shells
(server, flows, tui), and only lazily, inside the commands that need them."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlops_lite.client import RemotePlatform
from mlops_lite.config import Settings, apply_prefect_environment, load_settings
from mlops_lite.daemon import read_daemon
from mlops_lite.errors import MlopsLiteError, NotFound
from mlops_lite.home import init_home, read_admin_token
from mlops_lite.platform import open_local
from mlops_lite.samples import LOANS, sample_data_dir

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
def demo(requests: Annotated[int, typer.Option(min=1, max=5000, help="Held-out rows to send over HTTP.")] = 300) -> None:
    """Run the whole loop on the bundled data: Prefect flows ingest, train, register
    and deploy; a server on a free loopback port answers held-out rows over HTTP."""
    import httpx
    import pyarrow.csv as pacsv

    settings = load_settings()
    started = time.perf_counter()
    data_dir = sample_data_dir()
    holdout = pacsv.read_csv(data_dir / LOANS.holdout)
    apply_prefect_environment(settings)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        step = progress.add_task("Preparing the home", total=6)
        init_home(settings)
        token = read_admin_token(settings)
        import flows
        from server import create_app
        from server.runner import serve_in_thread

        platform = open_local(settings, actor="demo")
        flows.bind(platform)
        home = str(settings.home)
        try:
            progress.update(step, advance=1, description="Ingesting loans.csv (Prefect's API starts first, ~15 s)")
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
            try:
                served = _send_holdout(progress, httpx, server.url, token, holdout, requests)
            finally:
                server.stop()
            summary = platform.summary()
            record = platform.registry.get_version("loan-default", version)
        finally:
            flows.unbind(platform)
            platform.close()
    _print_report(settings, commit, record, revision, trained, served, summary, time.perf_counter() - started)


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
    console.print("Look further:  mlops-lite tui  (dashboard)   mlops-lite up  (API on "
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

    run_daemon(open_local(settings, actor="daemon"), settings, with_prefect=prefect, echo=console.print)


def _open_for_reading(settings: Settings) -> tuple[Any, str]:
    running = read_daemon(settings.daemon_file)
    if running is not None:
        return RemotePlatform(running.url, settings.token or read_admin_token(settings)), f"remote: {running.url}"
    if not settings.database_path.exists():
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
    report: dict[str, Any] = {"home": str(settings.home), "initialised": settings.database_path.exists(),
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


def main() -> None:
    """Entry point: errors of the tree print as one line and exit 1, no traceback."""
    try:
        app()
    except MlopsLiteError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(1)
