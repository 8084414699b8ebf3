"""``mlops-lite demo``: the whole loop on the bundled data, in this process. Prefect flows
ingest, train, register and deploy over the platform's public verbs; a server on a free
loopback port answers held-out rows over its public HTTP API; the second act drives the
closed loop (drift, alert, retrain, gates, canary, promotion or rollback)."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlops_lite.cli.common import (
    apply_prefect_environment,
    console,
    init_home,
    load_settings,
    own_stores,
    read_admin_token,
    refuse_beside_daemon,
)
from mlops_lite.samples import LOAN_FEATURES, LOANS, path

if TYPE_CHECKING:
    from mlops_lite.config import Settings
    from mlops_lite.data import DataStore


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
    refuse_beside_daemon(settings, "`mlops-lite demo` runs its own flows and server over the stores")
    started = time.perf_counter()
    holdout = pacsv.read_csv(path(LOANS.holdout))
    apply_prefect_environment(settings)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress, ExitStack() as quiet:
        step = progress.add_task("Preparing the home", total=6)
        init_home(settings)
        token = read_admin_token(settings)
        # The ephemeral Prefect API the flows start here asks for the home's auth string
        # too, and they send it (set before Prefect is imported, which reads it once).
        from mlops_lite.config import prefect_auth

        auth = prefect_auth(settings)
        if auth is not None:
            os.environ.setdefault("PREFECT_SERVER_API_AUTH_STRING", auth)
            os.environ.setdefault("PREFECT_API_AUTH_STRING", auth)
        import flows
        from server import create_app
        from server.runner import serve_in_thread

        # after Prefect's logging setup (on import), which prints every warning to stderr
        logged = quiet.enter_context(records_to_home_log(settings.home))

        platform = own_stores(settings, actor="demo")
        flows.bind(platform)
        home = str(settings.home)
        try:
            progress.update(step, advance=1, description="Ingesting loans.csv (Prefect's API starts first, ~15 s)")
            # PII (name, email, phone) is anonymized before it is committed, and main refuses it in clear.
            repo = cast("DataStore", platform.data).repo("loans")  # a repository's rules: the embedded store's
            repo.create(classification="personal", exist_ok=True)
            pii = (f"^({'|'.join(LOANS.pii)})$",)
            if repo.config().pii_patterns != pii:
                repo.configure(pii_patterns=pii)
            commit = flows.ingest_flow(home, str(path(LOANS.train)), "loans", "loans/train.csv")
            progress.update(step, advance=1, description="Training, converting to ONNX, checking parity")
            trained = flows.train_flow(home, "loans", "loans/train.csv", LOANS.target, commit,
                                       exclude=list(LOANS.excluded), sensitive=LOANS.sensitive[0])
            progress.update(step, advance=1, description="Registering the model version")
            version = flows.register_flow(home, "loan-default", trained["run_id"])
            progress.update(step, advance=1, description="Deploying through the policy gates")
            revision = flows.deploy_flow(home, "loans", "loan-default", version)
            progress.update(step, advance=1, description="Starting the server on a free loopback port")
            # HTTPS with the home's certificate when tls is on; the clients below verify it.
            from mlops_lite.security.tls import client_tls, ensure_server_certificate, reloadable_server_context

            if settings.tls:
                ensure_server_certificate(settings)
            server = serve_in_thread(create_app(platform), settings.host, 0,
                                     tls=reloadable_server_context(settings) if settings.tls else None)
            verify = client_tls(settings).verify(server.url)

            def open_client(**options: Any) -> Any:
                return httpx.Client(verify=verify, **options)

            progress.update(step, advance=1, description="Loop done")
            act_two = None
            try:
                served = _send_holdout(progress, open_client, server.url, token, holdout, requests)
                if loop:
                    act_two = _act_two(progress, open_client, server.url, token, home)
                # Last, so its commits are the newest of loans: at rest, the by-customer model has no newer data.
                by_customer = _features_part(progress, open_client, server.url, token, home)
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
    _print_features(by_customer)
    if logged.summary():
        console.print(logged.summary(), highlight=False)


def _send_holdout(progress: Progress, open_client: Callable[..., Any], url: str, token: str | None, holdout: Any,
                  count: int) -> dict[str, Any]:
    rows = holdout.to_pylist()[:count]
    task = progress.add_task("Sending held-out rows over HTTP", total=len(rows))
    latencies: list[float] = []
    correct = 0
    headers = {"Authorization": f"Bearer {token}"}
    with open_client(base_url=url, headers=headers, timeout=30) as client:
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


BY_CUSTOMER = "loans-by-customer"  # the deployment of the model trained through the feature service


def _replay_history(folder: Path, days: int) -> tuple[Path, Path, dict[str, int]]:
    """The customer history and applications with every timestamp moved by ``days``, so the
    history ends today, written into ``folder``; and three customers the online store
    answers differently now: one with a fresh history, one whose history is older than
    the TTL, one it has never seen."""
    import csv
    from datetime import timedelta

    shift = timedelta(days=days)
    written = []
    last: dict[int, str] = {}
    for name in (LOAN_FEATURES.history, LOAN_FEATURES.applications):
        with path(name).open(encoding="utf-8", newline="") as stream:
            rows = list(csv.DictReader(stream))
        columns = list(rows[0]) if rows else []
        for row in rows:
            for column in LOAN_FEATURES.timestamps:
                if column in row:
                    row[column] = (datetime.fromisoformat(row[column]) + shift).strftime("%Y-%m-%d %H:%M:%S")
            if name == LOAN_FEATURES.history:
                last[int(row["customer_id"])] = max(last.get(int(row["customer_id"]), ""), row["event_timestamp"])
        target = folder / name
        with target.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        written.append(target)
    newest = max(last.values())
    fresh = 42 if last.get(42) == newest else min(c for c, t in last.items() if t == newest)
    stale = min(last, key=lambda c: (last[c], c))
    return written[0], written[1], {"present": fresh, "expired": stale, "missing": max(last) + 1}


def _features_part(progress: Progress, open_client: Callable[..., Any], url: str, token: str | None,
                   home: str) -> dict[str, Any]:
    """The customer history and applications committed to loans, the feature definitions
    applied, the online store materialized, a model trained through the feature service,
    registered and deployed, then answered over HTTP by entity key."""
    import tempfile

    import flows
    from mlops_lite.clock import utcnow

    step = progress.add_task("Features: committing the customer history", total=5)
    days = (utcnow().date() - LOAN_FEATURES.history_end.date()).days
    with tempfile.TemporaryDirectory(dir=Path(home) / "inbox") as folder:
        history, applications, customers = _replay_history(Path(folder), days)
        flows.ingest_flow(home, str(history), "loans", LOAN_FEATURES.history_path)
        commit = flows.ingest_flow(home, str(applications), "loans", LOAN_FEATURES.applications_path)
    progress.update(step, advance=1, description="Features: applying the definitions, materializing")
    applied = flows.features_apply_flow(home, str(path(LOAN_FEATURES.definitions)), commit)
    materialized = flows.materialize_flow(home, ref=commit)
    progress.update(step, advance=1, description="Features: training through the feature service")
    trained = flows.train_features_flow(home, LOAN_FEATURES.service, "loans",
                                        LOAN_FEATURES.applications_path, LOAN_FEATURES.target, commit)
    progress.update(step, advance=1, description="Features: registering and deploying by customer")
    version = flows.register_flow(home, LOAN_FEATURES.service, trained["run_id"])
    revision = flows.deploy_flow(home, BY_CUSTOMER, LOAN_FEATURES.service, version)
    progress.update(step, advance=1, description="Features: predicting by customer id")
    request = {"customer_id": customers["present"], "loan_amount": 15000.0, "term_months": 36}
    with open_client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        answer = client.post(f"/v1/deployments/{BY_CUSTOMER}/predict",
                             json={"entities": [request]}).raise_for_status().json()
        looked_up = client.post(f"/v1/features/{LOAN_FEATURES.service}", json={"entities": [
            {"customer_id": customers[state], "loan_amount": 15000.0, "term_months": 36}
            for state in ("present", "expired", "missing")]}).raise_for_status().json()
    progress.update(step, advance=1, description="Features done")
    return {"days": days, "commit": commit, "applied": applied, "materialized": materialized, "trained": trained,
            "version": version, "revision": revision, "request": request,
            "answer": {"model": answer["model"], "version": answer["version"], "prediction": answer["predictions"][0],
                       "probability": answer["probabilities"][0][-1]},
            "statuses": [(customers[state], row_states["n_loans"]) for state, row_states in
                         zip(("present", "expired", "missing"), looked_up["statuses"], strict=True)]}


def _print_features(part: dict[str, Any]) -> None:
    trained = part["trained"]
    metrics = trained["metrics"]
    table = Table(title="the feature store: a model served by customer id", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    changed = sum(1 for change in part["applied"]["changes"] if change[2] != "unchanged")
    table.add_row("customer data", f"loans@main {part['commit'][:12]} ({LOAN_FEATURES.history_path}, "
                  f"{LOAN_FEATURES.applications_path}; the history's dates moved {part['days']} days to end today)")
    table.add_row("feature service", f"{trained['service']} version {trained['service_version']} "
                  f"({changed} definition(s) changed by this apply)")
    table.add_row("materialized", ", ".join(f"{m['view']}: {m['keys']} keys ({m['mode']}, {m['written']} written) "
                                            f"at {m['repository']}@{m['data_commit'][:12]}"
                                            for m in part["materialized"]))
    table.add_row("training set", f"{trained['training_set']}: {trained['training_rows']} rows, point in time at "
                  f"loans@{trained['data_commit'][:12]} ({metrics.get('rows_without_features', 0):.0f} without "
                  "features, left out)")
    table.add_row("model version", f"{trained['service']} {part['version']}: ROC AUC {metrics['roc_auc']:.3f}  "
                  f"accuracy {metrics['accuracy']:.3f} (held out)")
    table.add_row("deployment", f"{BY_CUSTOMER} -> {trained['service']}@{part['version']} "
                  f"(revision {part['revision']})")
    answer, request = part["answer"], part["request"]
    table.add_row("by customer id", f"POST /v1/deployments/{BY_CUSTOMER}/predict {json.dumps({'entities': [request]})}"
                  f" -> default {answer['prediction']} "
                  f"(p = {answer['probability']:.3f}) from {answer['model']}@{answer['version']}")
    table.add_row("online statuses", f"POST /v1/features/{LOAN_FEATURES.service}: "
                  + ", ".join(f"customer {customer}: {state}" for customer, state in part["statuses"]))
    console.print(table)


def _serve_labelled(client: Any, rows: list[dict[str, Any]], features: list[str]) -> None:
    """Rows over HTTP one request each, then their true labels as feedback."""
    labels = []
    for row in rows:
        answer = client.post("/v1/deployments/loans/predict",
                             json={"instances": [{name: row[name] for name in features}]}).raise_for_status().json()
        labels.append({"request_id": answer["request_id"], "label": row[LOANS.target]})
    client.post("/v1/deployments/loans/feedback", json={"labels": labels}).raise_for_status()


def _act_two(progress: Progress, open_client: Callable[..., Any], url: str, token: str | None, home: str) -> dict[str, Any]:
    """Drifted traffic -> monitor -> alert -> retrain -> gates -> canary -> promote or roll back."""
    import tempfile
    import threading

    import pyarrow.csv as pacsv

    import flows

    began_at = time.time()
    timeline: list[tuple[float, str]] = []

    def mark(what: str) -> None:
        timeline.append((time.time() - began_at, what))

    drifted = pacsv.read_csv(path(LOANS.drifted))
    traffic, fresh = drifted.slice(0, 600).to_pylist(), drifted.slice(600)
    step = progress.add_task("Act two: sending 400 drifted rows with their labels", total=4)
    client = open_client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
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
        # The home's inbox: the one folder (with ingest_dirs) a flow run may read a source from.
        with tempfile.TemporaryDirectory(dir=Path(home) / "inbox") as folder:
            source = Path(folder) / "fresh.csv"
            pacsv.write_csv(fresh, source)
            stop = threading.Event()

            def live() -> None:
                i = 400
                with open_client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
                    while not stop.is_set():
                        _serve_labelled(c, traffic[i % 600: i % 600 + 10], features)
                        i += 10

            sender = threading.Thread(target=live, daemon=True)
            sender.start()
            try:
                result = flows.retrain_release_flow(home, "loans", str(source), since=since, observe_s=90,
                                                    min_requests=80,
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
    table.add_row("served over HTTPS" if str(served["url"]).startswith("https:") else "served over HTTP", f"{served['count']} held-out rows at {served['url']}: accuracy "
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

