"""The feature store's steps as Prefect flows: apply definitions, materialize the online
store, train through a feature service. Each task calls one facet verb; the flows take
plain values (a definitions file, view and service names), so they run from the UI or
a worker alike. The demo chains them after committing the customer data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.context import check_params, platform_for
from flows.loop import evaluation_report, transient
from mlops_lite.errors import InvalidInput
from mlops_lite.features.definitions import from_toml


@task(name="apply-definitions", task_run_name="apply {source} at {ref}", cache_policy=NO_CACHE)
def apply_definitions(home: str, source: str, ref: str) -> dict[str, Any]:
    # TOML only: a Python definitions file runs code, which a flow run's parameters never may.
    if Path(source).suffix != ".toml":
        raise InvalidInput(f"{source!r} is not a TOML definitions file", field="source",
                           expected="a .toml file (Python definitions are applied with `mlops-lite features apply`)")
    result = platform_for(home).features.apply(from_toml(Path(source).read_text(encoding="utf-8")), ref=ref)
    return {"ref": result.ref, "commits": dict(result.commits), "services": dict(result.services),
            "changes": [[c.kind, c.name, c.action] for c in result.changes]}


@task(name="materialize-views", task_run_name="materialize ({mode}) at {ref}", retries=2, retry_delay_seconds=1,
      retry_condition_fn=transient, cache_policy=NO_CACHE)
def materialize_views(home: str, views: list[str] | None, ref: str, mode: str, as_of: str | None) -> list[dict[str, Any]]:
    records = platform_for(home).features.materialize(views, ref=ref, mode=mode, as_of=as_of)
    return [{"view": r.view, "mode": r.mode, "repository": r.repository, "data_commit": r.data_commit,
             "as_of": r.as_of.isoformat(), "keys": r.keys, "written": r.written, "deleted": r.deleted,
             "seconds": r.seconds} for r in records]


@task(name="train-from-features", task_run_name="train through {service} on {repository}@{ref:.12}",
      cache_policy=NO_CACHE)
def train_from_features(home: str, service: str, repository: str, ref: str, path: str, target: str,
                        exclude: list[str], timestamp_field: str) -> dict[str, Any]:
    platform = platform_for(home)
    result = platform.training.train_features(service, repository, ref, path, target=target,
                                              timestamp_field=timestamp_field, exclude=tuple(exclude),
                                              run_name=f"train-{service}")
    bound = result.signature["feature_service"]
    training_set = platform.features.get_training_set(bound["training_set"])
    evaluation_report(result.run.id, f"{service} {bound['version']} (training set {training_set.id[:12]}, "
                                     f"{repository}@{result.data_commit[:12]})", result.metrics)
    return {"run_id": result.run.id, "data_commit": result.data_commit, "model_digest": result.model_digest,
            "metrics": result.metrics, "service": service, "service_version": bound["version"],
            "training_set": training_set.id, "training_rows": training_set.rows,
            "commits": dict(training_set.commits)}


@flow(name="features-apply", flow_run_name="apply feature definitions {source}", log_prints=True)
def features_apply_flow(home: str, source: str, ref: str = "main") -> dict[str, Any]:
    """Validate a TOML definitions file against its sources at ``ref`` and make it the
    current set (a changed definition is a new version); returns the changes and each
    feature service's version."""
    check_params("features-apply", locals())
    return apply_definitions(home, source, ref)


@flow(name="materialize", flow_run_name="materialize {mode} at {ref}", log_prints=True)
def materialize_flow(home: str, views: list[str] | None = None, ref: str = "main", mode: str = "incremental",
                     as_of: str | None = None) -> list[dict[str, Any]]:
    """Write the latest row per key of each view (default: every current view) at ``ref``
    to the online store; ``incremental`` writes only the keys that changed."""
    check_params("materialize", locals())
    return materialize_views(home, views, ref, mode, as_of)


@flow(name="train-features", flow_run_name="train through {service} on {repository}@{ref}", log_prints=True)
def train_features_flow(home: str, service: str, repository: str, path: str, target: str, ref: str = "main",
                        exclude: list[str] | None = None, timestamp_field: str = "event_timestamp") -> dict[str, Any]:
    """Train through a feature service: the entity rows (join keys, ``timestamp_field``, the
    target, request fields) are ``path`` of ``repository`` at ``ref``; the service's features
    are joined point-in-time at the same commit into a stored training set, which the run
    and the model's signature name. Returns the run's summary with the training set."""
    check_params("train-features", locals())
    return train_from_features(home, service, repository, ref, path, target, list(exclude or ()), timestamp_field)
