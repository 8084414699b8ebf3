"""The closed loop as Prefect flows: monitor -> (alert, trigger) -> retrain -> gates
-> canary -> observe -> promote or roll back.

Each task calls one facet of the Platform (``platform.loop`` for the loop's steps), so
the same flows run in the daemon over the embedded stores or on a Prefect worker over
HTTP (a ``RemotePlatform``), where training itself runs on the worker.
The flows take a deployment and read how to retrain it (data repository, files,
target, features, sensitive attribute, algorithm, params) from the lineage of the
version it serves (``TrainingRecipe``); whether to retrain is the core's decision
(``platform.loop.should_retrain``), which the ``monitor`` flow asks.
Reports go to the Prefect UI as artifacts; I/O tasks retry with backoff; training is
cached by its inputs (the same data commit and parameters do not retrain).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from pathlib import Path
from typing import Any, cast

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import INPUTS, NO_CACHE

from flows.context import check_params, platform_for
from flows.loop import anonymize_source, evaluation_report, materialize_features, transient
from mlops_lite.clock import utcnow
from mlops_lite.errors import InvalidInput, MissingDependency
from mlops_lite.training import TrainingRecipe, TrainingSpec


def alert_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Failure hook: a failed flow run is an alert (rule ``flow-failed``) with its message."""
    home = (flow_run.parameters or {}).get("home")
    if not home:
        return
    try:
        platform_for(home).loop.flow_finished(flow.name, failed=True, details={
            "flow_run": flow_run.name, "flow_run_id": str(flow_run.id), "message": state.message or ""})
    except Exception:  # a hook must not hide the flow's own failure
        logging.getLogger("mlops_lite.flows").exception("could not raise the flow-failed alert")


def resolve_on_success(flow: Any, flow_run: Any, state: Any) -> None:
    """Completion hook: a flow that runs cleanly again resolves its ``flow-failed`` alert."""
    home = (flow_run.parameters or {}).get("home")
    if not home:
        return
    try:
        platform_for(home).loop.flow_finished(flow.name, failed=False)
    except Exception:
        logging.getLogger("mlops_lite.flows").exception("could not resolve the flow-failed alert")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())[:60]


@task(name="check-deployment", task_run_name="check {deployment}", cache_policy=NO_CACHE)
def check_task(home: str, deployment: str, debounce_s: float, since: str | None) -> dict[str, Any]:
    result = platform_for(home).loop.check(deployment, since=since, debounce_s=debounce_s)
    drift = result["report"].get("drift")
    if drift is not None:
        create_table_artifact(
            key=f"drift-{_slug(deployment)}",
            table=[{"feature": f["feature"], "kind": f["kind"], "psi": round(f["psi"], 4), "drifted": f["drifted"],
                    "ks": None if f.get("ks_statistic") is None else round(f["ks_statistic"], 4)}
                   for f in drift["features"]],
            description=f"Drift of {deployment} over {result['report']['rows']} rows: "
                        f"share {drift['drifted_share']:.2f}")
    return result


def _monitor_run_name() -> str:
    from prefect.runtime import flow_run

    return f"monitor {flow_run.parameters.get('deployment') or 'every deployment'}"


@flow(name="monitor", flow_run_name=_monitor_run_name, log_prints=True, on_failure=[alert_on_failure],
      on_completion=[resolve_on_success])
def monitor_flow(home: str, deployment: str | None = None, debounce_s: float = 600.0,
                 since: str | None = None) -> dict[str, Any]:
    """One monitoring window (from ``since``, default: when the serving revision went
    live): drift, quality, latency -> alert rules -> the retrain decision (every trigger,
    with its guards). Without a ``deployment``, every deployment, answered as
    ``{"checks": {name: result}}``."""
    check_params("monitor", locals())
    if deployment is None:
        names = [record.name for record in platform_for(home).deployments.list()]
        return {"checks": {name: monitor_flow.fn(home, name, debounce_s, since) for name in names}}
    result = check_task(home, deployment, debounce_s, since)
    for t in result["transitions"]:
        print(f"{deployment}: alert {t['rule']} is now {t['state']} (value {t['value']:.3g})")
    if result["retrain"]:
        print(f"{deployment}: retraining triggered: {result['reason']}")
    elif result["held"]:
        print(f"{deployment}: no retrain now ({result['reason']}): {result['held']}")
    return result


@task(name="commit-fresh-data", task_run_name="commit {path} to {repository}", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient,
      cache_policy=NO_CACHE)
def commit_fresh(home: str, source_file: str, repository: str, path: str) -> str:
    """Commit the fresh file on a branch of its own and merge it to main through the checks."""
    platform = platform_for(home)
    branch = f"fresh-{utcnow():%Y%m%d-%H%M%S-%f}"
    platform.data.repo(repository).branch(branch).create("main")
    platform.data.ingest(repository, Path(source_file), path, branch=branch)
    return platform.data.repo(repository).branch(branch).merge_into("main").id


@task(name="newest-commit", cache_policy=NO_CACHE)
def newest_commit(home: str, repository: str, ref: str = "main") -> str:
    return platform_for(home).data.repo(repository).ref(ref).resolve()


@task(name="read-recipe", task_run_name="read the training recipe of {deployment}", retries=2, retry_delay_seconds=1,
      retry_condition_fn=transient, cache_policy=NO_CACHE)
def read_recipe(home: str, deployment: str, algorithm: str | None, params: dict[str, Any] | None) -> dict[str, Any]:
    """How the version ``deployment`` serves was trained (from its lineage), with another
    ``algorithm`` and/or ``params`` over its own when given."""
    platform = platform_for(home)
    recipe = TrainingRecipe.of(platform.deployments.lineage(deployment))
    out = recipe.but(algorithm=algorithm, params=params).as_dict()
    if recipe.feature_service is not None:
        # The service's version now: training is cached by its inputs, and new definitions
        # at the same commit make a new training set.
        out["service_version"] = platform.features.service(recipe.feature_service).version
    return out


def _through(recipe: dict[str, Any]) -> dict[str, Any]:
    """``train_candidate``'s feature service arguments of a recipe ({} for a table's)."""
    if not recipe.get("feature_service"):
        return {}
    return {"feature_service": recipe["feature_service"], "entity_timestamp": recipe.get("entity_timestamp"),
            "service_version": recipe.get("service_version")}


@task(name="train-candidate", task_run_name="train {spec[algorithm]} on {repository}@{commit:.12}",
      cache_policy=INPUTS, persist_result=True)
def train_candidate(home: str, repository: str, commit: str, pattern: str, spec: dict[str, Any],
                    feature_service: str | None = None, entity_timestamp: str | None = None,
                    service_version: str | None = None) -> dict[str, Any]:
    """Train ``spec`` on the files ``pattern`` matches at ``commit`` (through ``feature_service``,
    version ``service_version``, when its recipe names one: a new point-in-time training set
    at ``commit``, entity rows ``pattern``); cached by its inputs, so the same commit and spec
    do not train twice."""
    trained = TrainingSpec.from_dict(spec)
    training = platform_for(home).training
    if feature_service:
        result = training.train_features(feature_service, repository, commit, pattern, trained,
                                         timestamp_field=entity_timestamp or "event_timestamp",
                                         run_name=f"retrain-{trained.algorithm}")
        print(f"trained through feature service {feature_service} ({service_version}), training set "
              f"{result.run.tags.get('training_set')}")
    else:
        result = training.train(repository, commit, pattern, trained, run_name=f"retrain-{trained.algorithm}")
    evaluation_report(result.run.id, f"{trained.algorithm} {trained.params or ''} on {repository}@{commit[:12]}",
                      result.metrics)
    return {"run_id": result.run.id, "metrics": result.metrics, "commit": commit}


def _with_params(recipe: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    return {**recipe["spec"], "params": {**recipe["spec"]["params"], **point}}


@flow(name="tune", flow_run_name="tune a candidate for {deployment} on {commit:.12}", log_prints=True)
def tune_flow(home: str, deployment: str, commit: str, grid: list[dict[str, Any]], algorithm: str | None = None,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
    """One training task per parameter set of ``grid`` (over the deployment's recipe, with
    ``algorithm`` and ``params`` when given), in parallel on this flow's task runner
    (threads, or a Dask cluster); the best held-out ROC AUC wins."""
    check_params("tune", locals())
    recipe = read_recipe(home, deployment, algorithm, params)
    pattern = TrainingRecipe.from_dict(recipe).pattern
    futures = [train_candidate.submit(home, recipe["repository"], commit, pattern, _with_params(recipe, point),
                                      **_through(recipe))
               for point in grid]
    tried = [f.result() for f in futures]
    best = max(tried, key=lambda t: t["metrics"]["roc_auc"])
    create_table_artifact(key=f"tuning-{_slug(deployment)}", table=[
        {**point, "roc_auc": round(t["metrics"]["roc_auc"], 4), "run_id": t["run_id"]}
        for point, t in zip(grid, tried, strict=True)],
        description=f"tuning {recipe['spec']['algorithm']} on {commit[:12]}")
    print(f"tuned {len(grid)} parameter sets; best ROC AUC {best['metrics']['roc_auc']:.3f}")
    return {**best, "tuned": [{"params": point, "run_id": t["run_id"], "roc_auc": t["metrics"]["roc_auc"]}
                              for point, t in zip(grid, tried, strict=True)]}


def tune_flow_with(task_runner: str) -> Any:
    """``tune_flow`` on threads (the default) or on a local Dask cluster (the ``dask``
    extra). The cluster's workers are threads of this process: training writes runs and
    artifacts to the stores this process owns."""
    if task_runner == "threads":
        return tune_flow
    if task_runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise MissingDependency("task_runner 'dask' needs the dask extra: pip install 'mlops-lite[dask]'") from exc
        logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines drown the flow's own
        # prefect_dask's runner is generic over its own future type, which Prefect's hint does not admit
        return tune_flow.with_options(task_runner=cast(Any, DaskTaskRunner(
            cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False, "dashboard_address": None})))
    raise InvalidInput(f"unknown task runner {task_runner!r}", field="task_runner", expected="'threads' or 'dask'")


@task(name="register-candidate", task_run_name="register {model} from run {run_id:.12}", retries=2, retry_delay_seconds=1, retry_condition_fn=transient,
      cache_policy=NO_CACHE)
def register_candidate(home: str, model: str, run_id: str) -> str:
    return platform_for(home).registry.register_from_run(model, run_id).version


@task(name="gate-candidate", task_run_name="gate {model}@{version} for {deployment}", cache_policy=NO_CACHE)
def gate_candidate(home: str, deployment: str, model: str, version: str, since: str | None,
                   target: str) -> dict[str, Any]:
    """The policy gates, and no regression against the serving version on fresh labels."""
    gates = platform_for(home).loop.gate(deployment, model, version, since=since, target=target)
    scores = gates["scores"]
    create_markdown_artifact(
        key=f"gates-{_slug(deployment)}",
        markdown="\n".join([f"# {model}@{version} against {gates['serving_model']}@{gates['serving']}", "",
                            "| version | rows | accuracy | ROC AUC | F1 |", "|---|---|---|---|---|"]
                           + [f"| {v} | {s['rows']:.0f} | {s['accuracy']:.3f} | {s['roc_auc']:.3f} | {s['f1']:.3f} |"
                              for v, s in scores.items()]
                           + ["", _verdict(gates)]),
        description=f"gates for {model}@{version}")
    return gates


def _verdict(gates: dict[str, Any]) -> str:
    if gates.get("nothing_to_release"):
        return "**nothing to release**: " + "; ".join(gates["reasons"])
    if gates["reasons"]:
        return "**blocked**: " + "; ".join(gates["reasons"])
    return "**awaiting approval**" if gates["awaiting_approval"] else "**passed**"


@task(name="request-approval", task_run_name="ask approval of {model}@{version}", cache_policy=NO_CACHE)
def request_approval(home: str, deployment: str, model: str, version: str) -> str:
    request = platform_for(home).policy.request_promotion(
        model, version, requested_by="flow:retrain-release", comment=f"retrained candidate for deployment {deployment}")
    print(f"waiting for approval of {model}@{version}: request {request.id} "
          f"(approve with POST /v1/approvals/{request.id}/approve, role approver)")
    return request.id


@task(name="approval-status", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1, retry_condition_fn=transient)
def approval_status(home: str, request_id: str) -> str:
    return platform_for(home).policy.get_request(request_id).status


@task(name="block-candidate", cache_policy=NO_CACHE)
def block_candidate(home: str, deployment: str, model: str, version: str, reasons: list[str]) -> None:
    platform_for(home).loop.block(deployment, model, version, reasons)


DECIDED = ("approved", "completed", "rejected")


def _resume_when_decided(home: str, request_id: str, flow_run_id: Any, deadline: float,
                         stop: threading.Event) -> None:
    """Resume the paused flow run once the request is decided or the wait is over."""
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    platform = platform_for(home)
    while not stop.wait(1.0):
        try:
            if platform.policy.get_request(request_id).status not in DECIDED and time.monotonic() < deadline:
                continue
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
            if state is not None and state.is_paused():
                resume_flow_run(flow_run_id)
                return
        except Exception:  # the flow's own timeout still ends the wait
            logging.getLogger("mlops_lite.flows").exception("could not resume flow run %s", flow_run_id)


def wait_for_approval(home: str, deployment: str, model: str, version: str, timeout_s: float) -> dict[str, Any]:
    """The policy asks for a human: open an approval request and pause the flow run (it
    shows as Paused in the Prefect UI, keyed by the request) until an approver decides
    through mlops-lite (role approver) or ``timeout_s`` passes; then it resumes by itself.
    A Resume pressed in the UI with the request still pending pauses it again: only an
    approver's decision moves the candidate on."""
    from prefect.context import FlowRunContext
    from prefect.flow_runs import pause_flow_run

    request_id = request_approval(home, deployment, model, version)
    deadline = time.monotonic() + timeout_s
    context = FlowRunContext.get()
    pauses = 0
    while True:
        status = approval_status(home, request_id)
        if status in DECIDED or time.monotonic() >= deadline:
            break
        if context is None or context.flow_run is None:  # called outside a flow run: poll
            time.sleep(1.0)
            continue
        pauses += 1
        stop = threading.Event()
        watcher = threading.Thread(target=contextvars.copy_context().run, daemon=True, name="mlops-lite-approval",
                                   args=(_resume_when_decided, home, request_id, context.flow_run.id, deadline, stop))
        watcher.start()
        try:
            pause_flow_run(timeout=int(max(deadline - time.monotonic(), 1)) + 60, poll_interval=1,
                           key=f"approval-{request_id}-{pauses}")
        finally:
            stop.set()
            watcher.join(10)
    if status in ("approved", "completed"):
        return {"approved": True, "request_id": request_id, "reasons": [], "pauses": pauses}
    why = "rejected by an approver" if status == "rejected" else f"no approval within {timeout_s:g} s"
    reasons = [f"approval request {request_id}: {why}"]
    block_candidate(home, deployment, model, version, reasons)
    return {"approved": False, "request_id": request_id, "reasons": reasons, "pauses": pauses}


@task(name="start-canary", task_run_name="canary {model}@{version} on {deployment}", cache_policy=NO_CACHE)
def start_canary(home: str, deployment: str, model: str, version: str, weight: float, reason: str) -> dict[str, Any]:
    record = platform_for(home).deployments.canary(deployment, model, version, weight=weight, reason=reason)
    return {"revision": record.revision, "since": record.updated_at.isoformat()}


@task(name="observe-canary", task_run_name="observe the canary of {deployment}", cache_policy=NO_CACHE)
def observe_canary(home: str, deployment: str, since: str, window_s: float, min_requests: int) -> dict[str, Any]:
    """Watch the canary against the primary until the verdict is in or the window ends."""
    platform = platform_for(home)
    deadline = time.monotonic() + window_s
    while True:
        verdict = platform.loop.judge_canary(deployment, since=since, min_requests=min_requests)
        if verdict["decision"] != "wait" or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if verdict["decision"] == "wait":
        return {**verdict, "decision": "rollback",
                "reasons": [*verdict["reasons"], "the window ended without enough traffic"]}
    return verdict


@task(name="finish-release", task_run_name="{decision} {deployment}", cache_policy=NO_CACHE)
def finish_release(home: str, deployment: str, decision: str, reasons: list[str]) -> dict[str, Any]:
    return platform_for(home).loop.finish(deployment, decision, reasons)


def _retrain_run_name() -> str:
    """``retrain <model> for <deployment>``, the model being the one the deployment serves."""
    from prefect.runtime import flow_run

    deployment = flow_run.parameters.get("deployment")
    try:
        model = platform_for(flow_run.parameters["home"]).deployments.get(deployment).model
    except Exception:  # a name must not fail the run: its first task reports a missing deployment
        return f"retrain for {deployment}"
    return f"retrain {model} for {deployment}"


@flow(name="retrain-release", flow_run_name=_retrain_run_name, log_prints=True,
      on_failure=[alert_on_failure],
      on_completion=[resolve_on_success])
def retrain_release_flow(home: str, deployment: str, source: str | None = None, path: str | None = None,
                         algorithm: str | None = None, params: dict[str, Any] | None = None,
                         since: str | None = None, canary_weight: float = 0.3, observe_s: float = 60.0,
                         min_requests: int = 20, trigger: str = "", tune: list[dict[str, Any]] | None = None,
                         task_runner: str = "threads", approval_timeout_s: float = 3600.0) -> dict[str, Any]:
    """fresh data -> merge to main -> train on the newest commit -> register -> gates (policy and
    no regression on fresh labels) -> canary -> observe -> promote or roll back.

    How to train is the recipe of the version ``deployment`` serves (its data repository,
    files, target, features, sensitive attribute, algorithm and params, from its lineage),
    with ``algorithm`` and ``params`` over it when given. A ``source`` file is committed
    beside the files it trained on (at ``path`` when given); without one, it trains on the
    newest commit of main as it is (data merged there by others)."""
    check_params("retrain-release", locals())
    timeline: list[tuple[str, str]] = []

    def mark(what: str) -> None:
        timeline.append((utcnow().isoformat(), what))

    recipe = read_recipe(home, deployment, algorithm, params)
    known = TrainingRecipe.from_dict(recipe)
    repository, model = known.repository, known.model
    if source is not None:
        path = path or known.fresh_path(utcnow())
        commit = commit_fresh(home, anonymize_source(home, source, repository, None), repository, path)
        mark(f"fresh data committed on a branch and merged to main at {commit[:12]}")
        materialized = materialize_features(home, repository)
        if materialized:
            mark(f"online features materialized: {', '.join(materialized)}")
    else:
        commit = newest_commit(home, repository)
        mark(f"training on the newest commit of main, {commit[:12]}")
    if tune:
        trained = tune_flow_with(task_runner)(home, deployment, commit, tune, algorithm, params)
    else:
        trained = train_candidate(home, repository, commit, known.pattern, recipe["spec"], **_through(recipe))
    version = register_candidate(home, model, trained["run_id"])
    mark(f"run {trained['run_id'][:12]} trained and registered {model}@{version} "
         f"(held-out ROC AUC {trained['metrics']['roc_auc']:.3f})")
    print(f"candidate {model}@{version} from run {trained['run_id']} on {repository}@{commit[:12]}")
    gates = gate_candidate(home, deployment, model, version, since, known.spec.target)
    for v, score in gates["scores"].items():
        mark(f"on {score['rows']:.0f} fresh labelled rows: {v} ROC AUC {score['roc_auc']:.3f}, "
             f"accuracy {score['accuracy']:.3f}")
    out: dict[str, Any] = {"trigger": trigger, "commit": commit, "run_id": trained["run_id"], "version": version,
                           "gates": gates, "tuned": trained.get("tuned", []), "timeline": timeline}
    if gates.get("nothing_to_release"):
        mark(f"nothing to release: {'; '.join(gates['reasons'])}")
        print(f"nothing to release: {'; '.join(gates['reasons'])}")
        return {**out, "decision": "nothing-to-release"}
    if gates["awaiting_approval"]:
        mark("the policy asks for approval: waiting for a human")
        approval = wait_for_approval(home, deployment, model, version, approval_timeout_s)
        out["approval"] = approval
        if not approval["approved"]:
            gates = {**gates, "reasons": approval["reasons"]}
            out["gates"] = gates
            mark(f"blocked: {'; '.join(gates['reasons'])}")
            print(f"blocked: {'; '.join(gates['reasons'])}; {gates['serving']} keeps serving")
            return {**out, "decision": "blocked"}
        mark(f"approved (request {approval['request_id'][:8]})")
    elif not gates["passed"]:
        mark(f"blocked: {'; '.join(gates['reasons'])}; {gates['serving']} keeps serving")
        print(f"blocked: {'; '.join(gates['reasons'])}; {gates['serving']} keeps serving")
        return {**out, "decision": "blocked"}
    canary = start_canary(home, deployment, model, version, canary_weight,
                          f"retrained ({trigger or 'manual'}); run {trained['run_id']}")
    mark(f"gates passed; canary at {canary_weight:.0%} (revision {canary['revision']})")
    observed = observe_canary(home, deployment, canary["since"], observe_s, min_requests)
    mark(f"{observed['decision']}: {'; '.join(observed['reasons'])}")
    finished = finish_release(home, deployment, observed["decision"], observed["reasons"])
    mark(f"{deployment} now serves {model}@{finished['version']} (revision {finished['revision']})")
    print(f"{observed['decision']}: {'; '.join(observed['reasons'])}")
    return {**out, "decision": observed["decision"], "reasons": observed["reasons"], "canary": canary,
            "by_slot": observed["by_slot"], "final": finished}
