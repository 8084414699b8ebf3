"""The daemon's scheduled work.

Light periodic jobs run on APScheduler inside the daemon, over the stores it owns:

- ``monitor``: every ``monitor_interval_s``, one monitoring pass per deployment
  (drift, live quality, latency -> alert rules -> the retrain decision); when the
  decision says retrain and ``auto_retrain`` is on, the ``retrain-release`` flow runs on
  the newest commit of main;
- ``data-gc``: daily, objects unreachable from every ref and older than the
  retention are removed (an audit event ``data.gc`` says what went);
- ``privacy-retention``: daily, rows and objects past each repository's
  ``retention_days`` go (the erasure's rewrite), and the prediction log keeps
  ``prediction_log_retention_days`` (an audit event ``privacy.retention`` counts them);
- ``feature-skew``: every ``feature_skew_interval_s``, the skew check of each feature
  service that served vectors since the last pass (the ``feature-skew`` alert), and
  served vectors older than ``feature_served_retention_days`` go;
- ``feature-materialize``: every ``feature_materialize_interval_s`` (0 is off), an
  incremental materialization of every feature view; both do nothing on a home without
  feature definitions;
- ``audit-checkpoint``: every ``audit_checkpoint_interval_s``, failed logins counted
  so far are written and, when events came since the last checkpoint, the chain's head
  is signed (docs/audit.md); the Platform signs once more as the daemon stops.

Whether to retrain is decided in the core, by ``platform.loop.should_retrain``
(mlops_lite/monitoring/triggers.py), whichever scheduler asks: a firing drift or quality
alert, new data merged to main of the serving version's repository, or
``retrain_interval_s`` come round, with its guards (a release in progress, nothing new
since the last trigger, the debounce) kept in the store. One retrain runs at a time here;
a yes that finds one running is abandoned (recorded), and a later window tries again.

With a Prefect server (the default), the flows are also served as Prefect
deployments: ``monitor`` with its interval schedule, ``retrain-release`` and
``release-loop`` on demand. They show in the Prefect UI with their runs, and a run
started there (or scheduled) executes here, in the daemon, because only the daemon
may open the stores. Then the APScheduler monitor job stands aside for the
scheduled ``monitor`` deployment, so windows are not checked twice.

Scale-out: the same flows are also deployed as ``<flow>/workers`` on the ``mlops-lite``
process work pool. A Prefect worker (``mlops-lite worker``, on this host or another)
runs each of those flow runs in a process of its own, whose tasks reach the stores
through the daemon's HTTP API (a ``RemotePlatform``); training and tuning run on the
worker. With ``flow_runner = "workers"`` the daemon's retraining triggers create runs
there instead of running the flow in-process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from mlops_lite import Platform
from mlops_lite.config import Settings, prefect_auth
from server.audit import gc_summary

log = logging.getLogger("mlops_lite.daemon")

DEPLOYMENT = "mlops-lite"  # the Prefect deployment name of every flow the daemon runs itself
WORK_POOL = "mlops-lite"  # the process work pool for Prefect workers
WORKERS = "workers"  # the deployment name of every flow on that pool


class DaemonJobs:
    def __init__(self, platform: Platform, settings: Settings, *, prefect_url: str | None,
                 load_flows: Callable[[], Any], echo: Callable[[str], None] = print) -> None:
        """``load_flows`` imports the ``flows`` package: the daemon's composer (the CLI)
        passes it in, since the server and the flows are shells that never import each other."""
        self.platform = platform
        self._load_flows = load_flows
        self.settings = settings
        self.prefect_url = prefect_url
        self.echo = echo
        self.home = str(settings.home)
        self._scheduler: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._retraining = threading.Lock()
        self.deployment_ids: dict[str, str] = {}
        self.worker_deployment_ids: dict[str, str] = {}
        self.runs_executed = 0
        self._skew_since: datetime | None = None  # the last skew pass's start: vectors since then are checked

    # ---- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(self.gc, "interval", hours=24, id="data-gc", max_instances=1, coalesce=True)
        scheduler.add_job(self.retention, "interval", hours=24, id="privacy-retention", max_instances=1,
                          coalesce=True)
        scheduler.add_job(self.checkpoint_audit, "interval", seconds=self.settings.audit_checkpoint_interval_s,
                          id="audit-checkpoint", max_instances=1, coalesce=True)
        scheduler.add_job(self.feature_skew, "interval", seconds=self.settings.feature_skew_interval_s,
                          id="feature-skew", max_instances=1, coalesce=True)
        if self.settings.feature_materialize_interval_s > 0:
            scheduler.add_job(self.feature_materialize, "interval",
                              seconds=self.settings.feature_materialize_interval_s, id="feature-materialize",
                              max_instances=1, coalesce=True)
        if self.prefect_url is None:
            scheduler.add_job(self.monitor_all, "interval", seconds=self.settings.monitor_interval_s, id="monitor",
                              max_instances=1, coalesce=True)
        scheduler.start()
        self._scheduler = scheduler
        if self.prefect_url is not None:
            thread = threading.Thread(target=self._serve_flows, name="mlops-lite-flows", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
        for thread in self._threads:
            thread.join(30)

    # ---- APScheduler jobs ---------------------------------------------------------------
    def monitor_all(self) -> list[dict[str, Any]]:
        """One monitoring pass per deployment; retrain where the decision says so."""
        results = []
        for record in self.platform.deployments.list():
            try:
                check = self.platform.loop.check(record.name)
            except Exception:
                log.exception("monitoring %s failed", record.name)
                continue
            results.append({"deployment": record.name, "retrain": check["retrain"], "reason": check["reason"],
                            "held": check["held"]})
            if check["retrain"] and self.settings.auto_retrain:
                self.retrain(record.name, check["reason"])
        return results

    def retrain(self, deployment: str, reason: str) -> None:
        """Act on a yes of the retrain decision: ``retrain-release`` on the newest commit of
        main, one at a time, off this thread (or, with ``flow_runner = "workers"``, as a flow
        run on the work pool). A yes that cannot run is abandoned, so a later window may
        try again."""
        from mlops_lite.monitoring.triggers import abandon

        if self.settings.flow_runner == "workers":
            self._retrain_on_workers(deployment, reason)
            return
        if not self._retraining.acquire(blocking=False):
            abandon(self.platform, deployment, "another retrain was running")
            log.info("a retrain is already running; %s waits for a later window", deployment)
            return

        def run() -> None:
            try:
                flows = self._load_flows()
                flows.bind(self.platform)
                result = flows.retrain_release_flow(self.home, deployment, trigger=reason)
                self.echo(f"retrain for {deployment}: {result['decision']} ({result['version']})")
            except Exception as exc:
                abandon(self.platform, deployment, f"the retrain failed: {exc}")
                log.exception("retraining %s failed", deployment)
            finally:
                self._retraining.release()

        thread = threading.Thread(target=run, name="mlops-lite-retrain", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _retrain_on_workers(self, deployment: str, reason: str) -> None:
        """A ``retrain-release/workers`` flow run for a Prefect worker; the deployment's
        concurrency limit of one keeps retrains from overlapping."""
        from mlops_lite.monitoring.triggers import abandon

        deployment_id = self.worker_deployment_ids.get("retrain-release")
        if deployment_id is None or self.prefect_url is None:
            abandon(self.platform, deployment, "the work pool deployment was not registered yet")
            log.warning("flow_runner is 'workers' but the work pool deployment is not registered yet; "
                        "%s waits for a later window", deployment)
            return
        from prefect.client.orchestration import get_client
        from prefect.settings import temporary_settings

        with temporary_settings(self._prefect_client_settings()), get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(
                UUID(deployment_id), parameters={"home": self.home, "deployment": deployment, "trigger": reason},
                tags=["mlops-lite", "trigger", f"deployment:{deployment}"])
        self.echo(f"retrain for {deployment} queued on the {WORK_POOL} work pool: flow run {run.name} ({reason})")

    def gc(self) -> None:
        try:
            report = self.platform.data.gc(retention_days=self.settings.gc_retention_days, dry_run=False)
            log.info("data gc: %s", report)
            self.platform.audit.record(actor=self.platform.actor, action="data.gc", object="data",
                                       after=gc_summary(report, self.settings.gc_retention_days))
        except Exception:
            log.exception("data gc failed")

    def retention(self) -> None:
        """Each repository's retention_days and the prediction log's (audited ``privacy.retention``)."""
        try:
            report = self.platform.privacy.retention()
            log.info("privacy retention: %s", report)
        except Exception:
            log.exception("privacy retention failed")

    def feature_skew(self) -> dict[str, int]:
        """The skew check of each service that served vectors since the last pass (its
        ``feature-skew`` alert fires or resolves), then served vectors past
        ``feature_served_retention_days`` go. Mismatches per service checked."""
        features = self.platform.features
        started = datetime.now(UTC)
        results: dict[str, int] = {}
        try:
            if not features.services():
                return results
            for service in features.served_services(since=self._skew_since):
                try:
                    report = features.check_skew(service, since=self._skew_since)
                except Exception as exc:  # the message may carry entity keys or values: the type only
                    log.warning("the feature skew check of %s failed (%s)", service, type(exc).__name__)
                    continue
                results[service] = report.mismatched
                log.info("feature skew of %s: %d of %d rows differ", service, report.mismatched, report.checked)
            self._skew_since = started
            cutoff = started - timedelta(days=self.settings.feature_served_retention_days)
            pruned = features.prune_served(cutoff)
            if pruned:
                log.info("feature skew: %d served vectors older than %s removed", pruned, cutoff.isoformat())
        except Exception as exc:
            log.warning("the feature skew job failed (%s)", type(exc).__name__)
        return results

    def feature_materialize(self) -> int:
        """Incremental materialization of every feature view; the views written."""
        features = self.platform.features
        try:
            if not features.list("feature_view"):
                return 0
            done = features.materialize(mode="incremental")
        except Exception as exc:  # never the message: it may name rows
            log.warning("the scheduled feature materialization failed (%s)", type(exc).__name__)
            return 0
        log.info("feature materialization: %s", ", ".join(f"{m.view} {m.written} written" for m in done) or "nothing")
        return len(done)

    def checkpoint_audit(self) -> None:
        try:
            self.platform.audit.checkpoint_if_moved()
        except Exception:
            log.exception("the audit checkpoint failed")

    # ---- the flows as Prefect deployments --------------------------------------------------
    def _prefect_client_settings(self) -> dict[Any, Any]:
        """The daemon's Prefect server, and the home's auth string it asks every client for."""
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL

        updates: dict[Any, Any] = {PREFECT_API_URL: f"{self.prefect_url}/api"}
        auth = prefect_auth(self.settings)
        if auth is not None:
            updates[PREFECT_API_AUTH_STRING] = auth
        return updates

    def _serve_flows(self) -> None:
        assert self.prefect_url is not None
        deadline = time.monotonic() + 180
        while not self._stop.is_set():
            try:
                if httpx.get(f"{self.prefect_url}/api/health", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.echo("Prefect did not answer; flows are not served as deployments")
                return
            self._stop.wait(1)
        if self._stop.is_set():
            return
        os.environ["PREFECT_API_URL"] = f"{self.prefect_url}/api"
        try:
            asyncio.run(self._serve())
        except Exception:
            log.exception("serving the flows stopped")

    async def _serve(self) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.objects import StateType
        from prefect.settings import temporary_settings
        from prefect.states import Cancelled, Pending

        flows = self._load_flows()
        flows.bind(self.platform)
        served = {
            "monitor": (flows.monitor_flow, {"interval": self.settings.monitor_interval_s}),
            "retrain-release": (flows.retrain_release_flow, {}),
            "release-loop": (flows.release_loop, {}),
        }
        by_id: dict[str, Any] = {}
        with temporary_settings(self._prefect_client_settings()):
            for name, (flow, schedule) in served.items():
                deployment = await flow.to_deployment(
                    name=DEPLOYMENT, parameters={"home": self.home}, tags=["mlops-lite"],
                    description=flow.description, **schedule)
                deployment_id = str(await deployment.apply())
                self.deployment_ids[name] = deployment_id
                by_id[deployment_id] = flow
            self.echo(f"Prefect deployments: {', '.join(f'{n}/{DEPLOYMENT}' for n in served)} "
                      f"(monitor every {self.settings.monitor_interval_s:g} s)")
            async with get_client() as client:
                try:
                    await self._deploy_to_pool(client, {name: flow for name, (flow, _) in served.items()})
                except Exception:
                    log.exception("could not deploy the flows to the %s work pool", WORK_POOL)
                while not self._stop.is_set():
                    try:
                        # The runners' own poll: due runs, oldest first, and Prefect marks the
                        # polled deployments Ready (else the UI shows them "Not Ready").
                        runs = await client.get_scheduled_flow_runs_for_deployments(
                            deployment_ids=[UUID(i) for i in by_id], scheduled_before=datetime.now(UTC),
                            limit=20)
                    except Exception:
                        log.exception("polling Prefect for flow runs failed")
                        runs = []
                    for run, superseded in _coalesce(runs):
                        if superseded:
                            await client.set_flow_run_state(run.id, Cancelled(
                                message="skipped: a later run of the same schedule was due too"))
                            continue
                        accepted: Any = await client.set_flow_run_state(run.id, Pending())
                        if accepted.state is None or accepted.state.type != StateType.PENDING:
                            continue
                        flow = by_id[str(run.deployment_id)]
                        thread = threading.Thread(target=self._execute, args=(flow, run), daemon=True,
                                                  name=f"mlops-lite-run-{run.name}")
                        thread.start()
                        self._threads.append(thread)
                    await asyncio.sleep(1.0)

    async def _deploy_to_pool(self, client: Any, flows: dict[str, Any]) -> None:
        """The ``mlops-lite`` process work pool (created when missing) and every flow on it
        as ``<flow>/workers``, loaded by module path so any worker with mlops-lite
        installed can run it."""
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists
        from prefect.types.entrypoint import EntrypointType
        from prefect.workers.process import ProcessWorker

        try:
            await client.create_work_pool(WorkPoolCreate(
                name=WORK_POOL, type="process", description="mlops-lite flows for Prefect workers (mlops-lite worker)",
                base_job_template=ProcessWorker.get_default_base_job_template()))
        except ObjectAlreadyExists:
            pass
        for name, flow in flows.items():
            deployment = await flow.to_deployment(
                name=WORKERS, work_pool_name=WORK_POOL, entrypoint_type=EntrypointType.MODULE_PATH,
                parameters={"home": self.home}, tags=["mlops-lite", "workers"], description=flow.description,
                concurrency_limit=1 if name == "retrain-release" else None)
            self.worker_deployment_ids[name] = str(await deployment.apply())
        self.echo(f"work pool {WORK_POOL!r}: {', '.join(f'{n}/{WORKERS}' for n in flows)} "
                  f"(run them with `mlops-lite worker`)")

    def _execute(self, flow: Any, run: Any) -> None:
        """Run a scheduled flow run here, in the daemon that owns the stores."""
        from prefect.client.schemas.objects import State
        from prefect.flow_engine import run_flow
        from prefect.settings import temporary_settings

        with temporary_settings(self._prefect_client_settings()):
            try:
                state = run_flow(flow, flow_run=run, parameters=dict(run.parameters), return_type="state")
                self.runs_executed += 1
                if not isinstance(state, State):  # a synchronous flow's run answers its final state
                    return
                if flow.name == "monitor" and state.is_completed() and self.settings.auto_retrain:
                    result = state.result(raise_on_failure=False)
                    checks = result.get("checks", {}) if isinstance(result, dict) else {}
                    for name, check in checks.items():
                        if check.get("retrain"):
                            self.retrain(name, check.get("reason", ""))
            except Exception:
                log.exception("flow run %s failed", run.name)


def _coalesce(runs: list[Any]) -> list[tuple[Any, bool]]:
    """Due flow runs, oldest first, each with whether a later scheduled run of the same
    deployment supersedes it: after a pause (the daemon down, a long run) a schedule's
    backlog runs once, as APScheduler's ``coalesce`` does. Runs started by hand all run."""
    latest: dict[Any, Any] = {}
    for run in runs:
        if run.auto_scheduled:
            latest[run.deployment_id] = run.id
    return [(run, bool(run.auto_scheduled) and latest[run.deployment_id] != run.id) for run in runs]
