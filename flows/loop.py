"""The loop as Prefect flows. Each task calls one core function; each flow is
usable alone (from the Prefect UI or a deployment) or chained by ``release_loop``.

These flows bring a dataset to its first model, so they take it by name: the data
repository, the path, the target and the columns to leave out. The closed loop's flows
(closed_loop.py) take a deployment instead and read all of that from its lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.context import check_params, platform_for
from mlops_lite.errors import BackendUnavailable, MlopsLiteError
from mlops_lite.training import TrainingSpec


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O trouble, not refusals: bad input or a conflict fails at once."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, MlopsLiteError) or isinstance(error, BackendUnavailable)


@task(name="commit-dataset", task_run_name="commit {path} to {repository}@{branch}", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient,
      cache_policy=NO_CACHE)
def commit_dataset(home: str, source: str, repository: str, path: str, branch: str) -> str:
    return platform_for(home).data.ingest(repository, Path(source), path, branch=branch).id


@task(name="materialize-features", task_run_name="materialize the feature views over {repository}",
      retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient, cache_policy=NO_CACHE)
def materialize_features(home: str, repository: str) -> list[str]:
    """After a merge to main: the online store takes the changed keys (incremental) of every
    feature view whose source is ``repository``; nothing when no view reads it (or no
    feature definitions exist). Answers the views materialized."""
    features = platform_for(home).features
    views = [r.name for r in features.list("feature_view")
             if (r.spec.get("source") or {}).get("repository") == repository]
    if not views:
        return []
    for done in features.materialize(views, ref="main", mode="incremental"):
        print(f"materialized {done.view} ({done.mode}) at {repository}@{done.data_commit[:12]}: "
              f"{done.written} keys written, {done.deleted} removed of {done.keys}")
    return views


QUALITY = ("roc_auc", "accuracy", "precision", "recall", "f1")
FAIRNESS = ("demographic_parity_difference",)


def evaluation_report(run_id: str, title: str, metrics: dict[str, float]) -> str:
    """A run's evaluation as a Prefect artifact (markdown in the UI): held-out quality,
    fairness across the sensitive attribute, and ONNX parity with scikit-learn."""
    from prefect.artifacts import create_markdown_artifact

    def rows(keys: tuple[str, ...]) -> list[str]:
        return [f"| {k} | {metrics[k]:.4f} |" for k in keys if k in metrics]

    lines = [f"# {title}", "", f"run `{run_id}`, {metrics.get('train_rows', 0):.0f} training rows, "
             f"{metrics.get('test_rows', 0):.0f} held out", "", "## Quality (held out)", "", "| metric | value |",
             "|---|---|", *rows(QUALITY), "", "## Fairness", "", "| metric | value |", "|---|---|", *rows(FAIRNESS),
             "", "## ONNX parity", "", f"max |p_onnx - p_sklearn| = {metrics.get('parity_max_abs_diff', float('nan')):.2e}"]
    return str(create_markdown_artifact(key=f"evaluation-{run_id[:12]}", markdown="\n".join(lines),
                                        description=title))


@task(name="anonymize-source", cache_policy=NO_CACHE)
def anonymize_source(home: str, source: str, repository: str, pii: list[str] | None) -> str:
    """Replace PII values with keyed tokens before anything is committed: the columns in
    ``pii``, or those matching the repository's PII patterns. Answers the file to commit."""
    result = platform_for(home).privacy.anonymize_file(Path(source), repository=repository, columns=pii)
    if result.values:
        print(f"anonymized {result.values} values in {', '.join(result.columns)} of {Path(source).name}")
    return str(result.path)


@task(name="train-model", task_run_name="train {algorithm} on {repository}@{ref:.12}", cache_policy=NO_CACHE)
def train_model(home: str, repository: str, ref: str, path: str, algorithm: str,
                target: str, exclude: list[str], sensitive: str | None) -> dict[str, Any]:
    platform = platform_for(home)
    table = platform.data.repo(repository).ref(ref).read_table(path).table
    spec = TrainingSpec.infer(table, target=target, exclude=tuple(exclude), sensitive=sensitive,
                              algorithm=algorithm)
    result = platform.training.train(repository, ref, path, spec, run_name=f"train-{algorithm}")
    evaluation_report(result.run.id, f"{algorithm} on {repository}@{result.data_commit[:12]}", result.metrics)
    return {"run_id": result.run.id, "data_commit": result.data_commit,
            "model_digest": result.model_digest, "metrics": result.metrics}


@task(name="register-version", task_run_name="register {model} from run {run_id:.12}", retries=2, retry_delay_seconds=1, retry_condition_fn=transient,
      cache_policy=NO_CACHE)
def register_version(home: str, model: str, run_id: str) -> str:
    return platform_for(home).registry.register_from_run(model, run_id).version


@task(name="point-deployment", task_run_name="deploy {model}@{version} as {deployment}", cache_policy=NO_CACHE)
def point_deployment(home: str, deployment: str, model: str, version: str) -> int:
    return platform_for(home).deployments.deploy(deployment, model, version).revision


@flow(name="ingest", flow_run_name="ingest {repository}/{path}@{branch}", log_prints=True)
def ingest_flow(home: str, source: str, repository: str, path: str, branch: str = "main",
                pii: list[str] | None = None) -> str:
    """Anonymize PII, then commit a CSV/Parquet file on a data branch (a protected branch
    takes it by merge, through the data checks); returns the commit id."""
    check_params("ingest", locals())
    commit = commit_dataset(home, anonymize_source(home, source, repository, pii), repository, path, branch)
    if branch == "main":
        materialize_features(home, repository)
    return commit


@flow(name="train", flow_run_name="train {algorithm} on {repository}@{ref}", log_prints=True)
def train_flow(home: str, repository: str, path: str, target: str, ref: str = "main",
               algorithm: str = "logistic_regression", exclude: list[str] | None = None,
               sensitive: str | None = None) -> dict[str, Any]:
    """Train on a data commit, convert to ONNX, check parity; returns the run's summary.
    Every column but the target and ``exclude`` (PII, protected attributes) is a feature;
    ``sensitive`` is the attribute the fairness metrics group by."""
    check_params("train", locals())
    return train_model(home, repository, ref, path, algorithm, target, list(exclude or ()), sensitive)


@flow(name="register", flow_run_name="register {model} from run {run_id}", log_prints=True)
def register_flow(home: str, model: str, run_id: str) -> str:
    """Register a run's ONNX model; returns the semantic version."""
    check_params("register", locals())
    return register_version(home, model, run_id)


@flow(name="deploy", flow_run_name="deploy {model}@{version} as {deployment}", log_prints=True)
def deploy_flow(home: str, deployment: str, model: str, version: str) -> int:
    """Point a deployment at a version through the policy gates; returns the revision."""
    check_params("deploy", locals())
    return point_deployment(home, deployment, model, version)


@flow(name="release-loop", flow_run_name="loop {model} -> {deployment}", log_prints=True)
def release_loop(home: str, source: str, deployment: str, model: str, repository: str, path: str, target: str,
                 algorithm: str = "logistic_regression", exclude: list[str] | None = None,
                 sensitive: str | None = None) -> dict[str, Any]:
    """ingest -> train -> register -> deploy, as subflows: ``source`` committed at ``path``
    of ``repository``, a model of ``target`` trained on it (see ``train_flow``), registered
    as ``model`` and served as ``deployment``."""
    check_params("release-loop", locals())
    commit = ingest_flow(home, source, repository, path)
    trained = train_flow(home, repository, path, target, commit, algorithm, exclude, sensitive)
    version = register_flow(home, model, trained["run_id"])
    revision = deploy_flow(home, deployment, model, version)
    return {"commit": commit, **trained, "model": model, "version": version,
            "deployment": deployment, "revision": revision}
