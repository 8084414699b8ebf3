"""``mlops-lite train``: train a classifier on a table at a data ref, record the run and,
with ``--register``, register it as the model's next version (a pipeline's "train the
candidate" step; docs/ci/README.md). The recipe is either given (``--target``,
``--exclude``, ``--algorithm``) or read from a registered version (``--like
loan-default@production``: its target, features, algorithm, split, seed and sensitive
attribute, as its run recorded them), so a pipeline retrains what production learned on
a branch's data.

``--feature-service SERVICE`` trains through a feature service: ``--path`` is then the
entity rows (join keys, ``--timestamp-field``, the target), the service's features are
joined point-in-time at the same commit into a stored training set, and the run and the
model name both. ``--like`` follows a version trained that way through its service.

Against a running ``up`` (or ``MLOPS_LITE_URL``) the model is trained here, in this
process, and recorded on the server as one finished run, as a worker does."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mlops_lite.cli.common import jsonable, line, model_ref, platform
from mlops_lite.errors import InvalidInput


def train(
        repo: Annotated[str, typer.Option("--repo", help="The data repository.")],
        path: Annotated[str, typer.Option("--path", help="The table (CSV or Parquet) in it, e.g. loans/train.csv.")],
        ref: Annotated[str, typer.Option("--ref", help="The branch, tag or commit to read it at.")] = "main",
        like: Annotated[str | None, typer.Option(
            "--like", help="Train as this version was trained (MODEL@VERSION or MODEL@ALIAS): its target, "
                           "features, algorithm, split, seed and sensitive attribute.")] = None,
        target: Annotated[str | None, typer.Option("--target", help="The label column (without --like).")] = None,
        exclude: Annotated[list[str] | None, typer.Option(
            "--exclude", help="A column to leave out of the features (PII, protected attributes); repeatable.")]
        = None,
        sensitive: Annotated[str | None, typer.Option(
            "--sensitive", help="The protected attribute fairness is measured over (left out of the features).")]
        = None,
        algorithm: Annotated[str | None, typer.Option(
            "--algorithm", help="logistic_regression | random_forest | hist_gradient_boosting.")] = None,
        register: Annotated[str | None, typer.Option(
            "--register", help="Register the trained model as the next version of this model.")] = None,
        alias: Annotated[str | None, typer.Option(
            "--alias", help="With --register: point this alias (e.g. candidate) at the new version.")] = None,
        run_name: Annotated[str | None, typer.Option("--run-name", help="The run's name.")] = None,
        feature_service: Annotated[str | None, typer.Option(
            "--feature-service", help="Train through this feature service: --path holds the entity rows, the "
                                      "features are joined point-in-time at the same commit.")] = None,
        timestamp_field: Annotated[str | None, typer.Option(
            "--timestamp-field", help="With a feature service: the entity rows' time column "
                                      "(default event_timestamp, or what --like recorded).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Train on a table at a data ref, record the run, and optionally register the model
    (and point an alias at it)."""
    from dataclasses import replace

    from mlops_lite.training.classifier import TrainingSpec

    if like is None and target is None:
        raise InvalidInput("say what to train: --like MODEL@REF, or --target COLUMN", field="target",
                           expected="--like loan-default@production or --target default")
    if like is not None and (target is not None or exclude):
        raise InvalidInput("--like reads the target and the features from the version; do not also pass "
                           "--target or --exclude", field="like")
    if alias is not None and register is None:
        raise InvalidInput("--alias needs --register (the alias points at the registered version)", field="alias")
    with platform() as p:
        if like is not None:
            model, version_ref = model_ref(like)
            aliases = p.registry.aliases(model)
            version = p.registry.get_version(model, aliases.get(version_ref, version_ref))
            if version.run_id is None:
                raise InvalidInput(f"--like: {model}@{version.version} has no training run to read its recipe "
                                   "from", field="like")
            run = p.tracking.get_run(version.run_id)
            spec = TrainingSpec.recorded(version.signature, run.params)
            if sensitive is not None:
                spec = replace(spec, sensitive=sensitive)
            # A version trained through a feature service is retrained through it (its recipe).
            feature_service = feature_service or run.tags.get("feature_service") or None
            timestamp_field = timestamp_field or run.tags.get("entity_timestamp") or None
        elif feature_service is not None:
            assert target is not None
            when = timestamp_field or "event_timestamp"
            built = p.features.training_set(feature_service, repository=repo, path=path, ref=ref,
                                            timestamp_field=when)
            keys = p.features.service(feature_service, built.service_version).join_keys
            spec = TrainingSpec.infer(p.features.training_set_table(built.id), target=target,
                                      exclude=tuple(sorted({*keys, when, *(exclude or ())})), sensitive=sensitive)
        else:
            assert target is not None
            table = p.data.repo(repo).ref(ref).read_table(path).table
            spec = TrainingSpec.infer(table, target=target, exclude=tuple(exclude or ()), sensitive=sensitive)
        if algorithm is not None and algorithm != spec.algorithm:
            spec = replace(spec, algorithm=algorithm, params={})
        if feature_service is not None:
            result = p.training.train_features(feature_service, repo, ref, path, spec,
                                               timestamp_field=timestamp_field or "event_timestamp",
                                               run_name=run_name)
        else:
            result = p.training.train(repo, ref, path, spec, run_name=run_name)
        registered = p.registry.register_from_run(register, result.run.id) if register is not None else None
        if registered is not None and alias is not None:
            p.registry.set_alias(registered.model, alias, registered.version,
                                 reason=f"trained by `mlops-lite train` on {repo}@{ref} ({result.data_commit[:12]})")
    if as_json:
        line(json.dumps(jsonable({"run_id": result.run.id, "data_commit": result.data_commit,
                                  "metrics": result.metrics, "model_digest": result.model_digest,
                                  "model": registered.model if registered else None,
                                  "feature_service": result.signature.get("feature_service"),
                                  "version": registered.version if registered else None,
                                  "alias": alias}), sort_keys=True))
        return
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items())
                      if isinstance(v, int | float) and k in ("roc_auc", "accuracy", "f1"))
    line(f"trained {spec.algorithm} on {repo}@{ref}:{path} (commit {result.data_commit[:12]}): run {result.run.id}"
         + (f"; {shown}" if shown else ""))
    if feature_service is not None:
        bound = result.signature["feature_service"]
        line(f"through feature service {bound['name']} version {bound['version']}, training set "
             f"{bound['training_set']} ({result.metrics.get('rows_without_features', 0):.0f} rows without features)")
    if registered is not None:
        line(f"registered {registered.model}@{registered.version}"
             + (f"; alias {alias} -> {registered.version}" if alias else ""))
