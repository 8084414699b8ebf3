"""The commands that make, run or look at the processes: ``init``, ``up``, ``worker``,
``serve``, ``tui`` and ``status``. ``init``, ``up`` and a single-process ``serve`` own the
stores while they run, so they refuse when the daemon already does."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_lite.cli.common import (
    JsonOption,
    connection,
    console,
    err,
    init_home,
    load_settings,
    own_stores,
    refuse_beside_daemon,
)
from mlops_lite.daemon import read_daemon
from mlops_lite.errors import InvalidInput, MlopsLiteError, NotFound

if TYPE_CHECKING:
    from mlops_lite.config import Settings

TlsOption = Annotated[bool | None, typer.Option(
    "--tls/--no-tls", help="Serve HTTPS (default: the `tls` setting; always off loopback).")]
InsecureHttpOption = Annotated[bool, typer.Option(
    "--insecure-http", help="Serve plain HTTP on a non-loopback address (tokens and data in clear).")]
AllowAdminTokenOption = Annotated[bool, typer.Option(
    "--allow-admin-token", help="Run with an admin token (refused otherwise: a service identity is enough).")]


def init(no_encryption: Annotated[bool, typer.Option(
        "--no-encryption", help="Make a plaintext home: nothing encrypted at rest (writes `encryption = false` "
                                "to mlops-lite.toml). Only for a new home.")] = False) -> None:
    """Create the home, its config file, the metadata database and an admin token. A new
    home is encrypted at rest (docs/encryption.md) unless --no-encryption.

    Running it again keeps everything that exists, the token included."""
    settings = load_settings()
    refuse_beside_daemon(settings, "`mlops-lite init` creates the stores in this process")
    result = init_home(settings, encryption=False if no_encryption else None)
    console.print(f"home      {result.home}")
    console.print(f"config    {result.config_file}")
    from mlops_lite.config import redacted_url

    console.print(f"database  {redacted_url(result.database)}")  # a terminal's output reaches CI logs
    if result.token:
        console.print(f"admin token (shown once; also in {result.token_file}, mode 0600):")
        console.print(f"  {result.token}", highlight=False)
    else:
        console.print(f"admin token kept: {result.token_file}")
    _print_audit_signing(settings)
    _print_tls_material(settings)
    _print_encryption(load_settings())


def _print_encryption(settings: Settings) -> None:
    if settings.keyring_file.exists():
        where = "MLOPS_LITE_MASTER_KEY" if os.environ.get("MLOPS_LITE_MASTER_KEY") else (
            settings.master_key_file if settings.kms == "keyfile" else f"kms {settings.kms}")
        console.print(f"encrypted at rest; key encryption key: {where} (back it up apart from the home: "
                      "without it the home cannot be read)", highlight=False)
    else:
        console.print("NOT encrypted at rest (`mlops-lite keys encrypt-home` encrypts it)", highlight=False)


def _print_audit_signing(settings: Settings) -> None:
    """The audit checkpoints' signing key, made by opening the home, and the checkpoint the
    Platform signed as init closed it."""
    from mlops_lite.security.checkpoints import CheckpointFile

    found = CheckpointFile(settings.audit_checkpoints_file).last()
    state = (f"checkpoint at seq {found.seq}" if found is not None
             else "NO checkpoint: run `mlops-lite audit verify`, then `mlops-lite audit checkpoint`")
    console.print(f"audit key {settings.audit_signing_key_file} (Ed25519, 0600); public key "
                  f"{settings.audit_public_key_file}; {state}", highlight=False)


def _print_tls_material(settings: Settings) -> None:
    from mlops_lite.security.tls import ensure_server_certificate

    material = ensure_server_certificate(settings)
    if material.ca is not None:
        console.print(f"TLS CA    {material.ca.path} ({'created' if material.created_ca else 'kept'}; "
                      f"clients trust it, key 0600 beside it)", highlight=False)
    server = material.server
    state = f"issued: {material.issued}" if material.issued else "kept"
    console.print(f"TLS cert  {server.path} ({state}; serial {server.serial:x}, valid until "
                  f"{server.not_after:%Y-%m-%d}; names {', '.join(server.names) or '-'})", highlight=False)


def _serving_settings(settings: Settings, tls: bool | None, insecure_http: bool, **overrides: Any) -> Settings:
    """The settings a server runs with: ``tls`` on when it serves HTTPS (chosen, or bound off
    loopback), its certificate made or renewed if it is the home's own; a loud warning when
    plain HTTP leaves the host."""
    from mlops_lite.security.tls import ensure_server_certificate, serve_https

    https = serve_https(settings.host, tls=tls if tls is not None else (True if settings.tls else None),
                        insecure_http=insecure_http)
    if not https:
        if not _loopback(settings.host):
            import logging

            message = (f"WARNING: serving plain HTTP on {settings.host}, which is not a loopback address "
                       "(--insecure-http): bearer tokens, access keys and data cross the network in clear")
            logging.getLogger("mlops_lite.tls").warning(message)
            err.print(f"[bold red]{message}[/]", highlight=False)
        return settings if not settings.tls else load_settings(**overrides, tls=False)
    settings = settings if settings.tls else load_settings(**overrides, tls=True)
    material = ensure_server_certificate(settings)
    if material.issued:
        console.print(f"TLS certificate {material.server.path} issued ({material.issued}), valid until "
                      f"{material.server.not_after:%Y-%m-%d}", highlight=False)
    return settings


def _loopback(host: str) -> bool:
    from mlops_lite.security.tls import is_loopback

    return is_loopback(host)


def up(host: Annotated[str | None, typer.Option(help="Interface for the API (default 127.0.0.1).")] = None,
       port: Annotated[int | None, typer.Option(help="API port (default 8000).")] = None,
       prefect_port: Annotated[int | None, typer.Option(help="Prefect server port (default 4200).")] = None,
       prefect: Annotated[bool, typer.Option(help="Also run a Prefect server for its UI.")] = True,
       tls: TlsOption = None, insecure_http: InsecureHttpOption = False) -> None:
    """Run the daemon: the API owning the stores, and a Prefect server. Ctrl-C stops both.

    HTTPS with the home's certificate when `tls` is on, and always on a non-loopback
    address (plain HTTP there only with --insecure-http); SIGHUP or a change of the
    certificate files serves the new certificate without a restart."""
    settings = load_settings(host=host, port=port, prefect_port=prefect_port)
    running = read_daemon(settings.daemon_file)
    if running is not None:
        raise MlopsLiteError(f"mlops-lite is already running (pid {running.pid}) at {running.url}")
    settings = _serving_settings(settings, tls, insecure_http, host=host, port=port, prefect_port=prefect_port)
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
           run_once: Annotated[bool, typer.Option(help="Take the runs queued now, then exit.")] = False,
           allow_admin_token: AllowAdminTokenOption = False) -> None:
    """Run a Prefect worker for the mlops-lite flows (scale-out).

    It takes flow runs from the work pool (`retrain-release/workers`, `monitor/workers`,
    `release-loop/workers`) and runs each in a process of its own. Their tasks reach the
    stores over the mlops-lite API with the worker's service identity (role operator):
    $MLOPS_LITE_TOKEN, else the token enrolled on this host, else (on the daemon's host)
    one enrolled now; never the admin token unless --allow-admin-token. Prefect's API is
    called with its auth string ($PREFECT_API_AUTH_STRING, else the home's prefect.auth).
    Training and tuning run here, on this host."""
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
    from mlops_lite.cli.service import prefect_client_environment, service_token

    token, _ = service_token(settings, "worker", url, explicit=settings.token, allow_admin_token=allow_admin_token)
    env = {**os.environ, "MLOPS_LITE_URL": url, "MLOPS_LITE_TOKEN": token, "PREFECT_API_URL": prefect_api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **_client_tls_environment(settings),
           **prefect_client_environment(settings, prefect_api)}
    if "MLOPS_LITE_ANONYMIZATION_KEY" not in env:
        # On the daemon's host: ingest tasks anonymize under the same root as the daemon.
        root = _anonymization_root(settings)
        if root is not None:
            env["MLOPS_LITE_ANONYMIZATION_KEY"] = root
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
               "--limit", str(limit)] + (["--run-once"] if run_once else [])
    console.print(f"worker on pool {pool!r}: flow runs from {prefect_api}, stores at {url}", highlight=False)
    from mlops_lite.privacy.home import private_umask

    private_umask()  # what Prefect writes under <home>/prefect on the daemon's host is the owner's alone
    os.execve(sys.executable, command, env)


def _client_tls_environment(settings: Settings) -> dict[str, str]:
    """What a flow run on a worker verifies the API against, and presents to it: this
    host's CA bundle and client certificate, named in the environment, since a flow run
    reads the settings of the daemon's home (which may not exist here)."""
    from mlops_lite.security.tls import client_tls

    found = client_tls(settings)
    env = {"MLOPS_LITE_CA_BUNDLE": str(found.ca_file)} if found.ca_file is not None else {}
    if found.cert_file is not None and found.key_file is not None:
        env.update({"MLOPS_LITE_TLS_CLIENT_CERT": str(found.cert_file), "MLOPS_LITE_TLS_CLIENT_KEY": str(found.key_file)})
    return env


def serve(workers: Annotated[int, typer.Option(help="Worker processes (more than 1 needs `mlops-lite up` running).")] = 1,
          host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
          port: Annotated[int, typer.Option(help="Port for the inference API.")] = 8080,
          control_plane: Annotated[str | None, typer.Option(
              help="The control plane's URL (default: the running `mlops-lite up`).")] = None,
          poll: Annotated[float, typer.Option(help="Seconds between routing polls.")] = 1.0,
          tls: TlsOption = None, insecure_http: InsecureHttpOption = False,
          allow_admin_token: AllowAdminTokenOption = False) -> None:
    """Serve inference only: native predict, the Open Inference Protocol (/v2) and /metrics.

    With `mlops-lite up` running (or --control-plane), N stateless workers poll it for
    routes and load models from the content-addressed store, so releases made on the
    control plane reach every worker within a poll. Without one, a single process serves
    over the local stores.

    Replicas poll with a service identity of role predictor ($MLOPS_LITE_SERVE_TOKEN or
    $MLOPS_LITE_TOKEN, else the replica token enrolled on this host, else one enrolled now on
    the daemon's host); an admin token is refused unless --allow-admin-token.

    HTTPS as `up` decides it (the `tls` setting, always off loopback unless
    --insecure-http); a new certificate is served without a restart (each worker watches
    the files; SIGHUP replaces the workers one at a time)."""
    settings = load_settings(host=host)
    if workers < 1:
        raise InvalidInput(f"--workers {workers} is not a count of workers", field="workers", expected="1 or more")
    settings = _serving_settings(settings, tls, insecure_http, host=host)
    scheme = "https" if settings.tls else "http"
    running = read_daemon(settings.daemon_file)
    url = control_plane or (running.url if running is not None else None)
    if url is None:
        if workers != 1:
            raise InvalidInput("more than one worker needs a control plane: start `mlops-lite up` first "
                               "(or pass --control-plane URL)", field="workers", expected="1 without a control plane")
        from mlops_lite.security.tls import reloadable_server_context
        from server.app import create_app
        from server.runner import serve_forever

        with own_stores(settings, actor="serve") as platform:
            loaded = platform.deployments.load_all()
            console.print(f"serving {len(loaded)} deployment(s) on {scheme}://{settings.host}:{port} "
                          f"({', '.join(platform.deployments.providers)})", highlight=False)
            serve_forever(create_app(platform), settings.host, port,
                          tls=reloadable_server_context(settings) if settings.tls else None)
        return
    import uvicorn

    from mlops_lite.cli.service import service_token

    token, _ = service_token(settings, "replica", url,
                             explicit=os.environ.get("MLOPS_LITE_SERVE_TOKEN") or settings.token,
                             allow_admin_token=allow_admin_token)
    # The workers' settings name the interface they serve on: /metrics is public on loopback only.
    os.environ.update({"MLOPS_LITE_SERVE_CONTROL_URL": url, "MLOPS_LITE_SERVE_POLL_S": str(poll),
                       "MLOPS_LITE_SERVE_TOKEN": token, "MLOPS_LITE_HOST": settings.host})
    console.print(f"serving with {workers} worker(s) on {scheme}://{settings.host}:{port}, routes from {url}",
                  highlight=False)
    from server.runner import settings_ssl_context

    uvicorn.run("server.serving:create_serving_app", factory=True, host=settings.host, port=port, workers=workers,
                log_level="warning", access_log=False,
                ssl_context_factory=settings_ssl_context if settings.tls else None)


def tui(refresh: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes.")] = 2.0,
        read_only: Annotated[bool, typer.Option(
            "--read-only", help="Show no write action, whatever the role (the server still enforces roles).")]
        = False,
        web: Annotated[bool, typer.Option(
            "--web", help="Serve the console to a browser on 127.0.0.1 (each tab runs its own console).")] = False,
        port: Annotated[int, typer.Option(min=1, max=65535, help="The port for --web (127.0.0.1 only).")]
        = 8566) -> None:
    """The operator console: deployments live, models and lineage, approvals, alerts, data,
    runs and flows, audit; act on them as your role allows (local or through `up`)."""
    if web:
        _serve_console(refresh, read_only, port)
        return
    from tui import run_console

    with connection(initialised=True) as found:
        run_console(found.platform, source=found.source, refresh_seconds=refresh, read_only=read_only)


def _serve_console(refresh: float, read_only: bool, port: int) -> None:
    """``tui --web``: each browser tab runs ``mlops-lite tui`` with this environment (the
    home, and any URL and token, travel in it: a token never goes on a command line)."""
    import shlex

    from tui.web import serve_console

    settings = load_settings()
    if not settings.url and read_daemon(settings.daemon_file) is None and not settings.initialised:
        raise NotFound(f"nothing at {settings.home} yet: run `mlops-lite init` (or `mlops-lite demo`)")
    os.environ["MLOPS_LITE_HOME"] = str(settings.home)
    command = [sys.executable, "-m", "mlops_lite", "tui", "--refresh", str(refresh)]
    serve_console(shlex.join([*command, "--read-only"] if read_only else command), port=port)


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


def _anonymization_root(settings: Settings) -> str | None:
    """The home's anonymization root (hex): the keyring's ``anonymize`` key in an encrypted
    home, else ``anonymization.key``; None when this host has neither."""
    from mlops_lite.privacy.protection import open_protection

    root = None
    if settings.keyring_file.exists():  # never make a keyring here (a worker's host may have no home)
        try:
            root = open_protection(settings).anonymize_root()
        except MlopsLiteError:
            root = None
    if root is not None:
        return root.key.hex()
    return settings.anonymization_key_file.read_text().strip() if settings.anonymization_key_file.exists() else None
