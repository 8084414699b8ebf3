"""The ``platform.training`` facet: read a data commit, train, record a run."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_lite.data import DataStore
from mlops_lite.errors import Conflict, InvalidInput
from mlops_lite.records import RunRecord
from mlops_lite.tracking import Tracking
from mlops_lite.training.classifier import TrainingSpec, train_classifier

if TYPE_CHECKING:
    from mlops_lite.data.lakefs_backend import LakeFSDataStore

MODEL_ARTIFACT = "model.onnx"
SIGNATURE_ARTIFACT = "signature.json"


@dataclass(frozen=True)
class TrainingResult:
    run: RunRecord
    data_commit: str
    model_digest: str
    signature: dict[str, Any]
    metrics: dict[str, float]


def refuse_uncommitted(repo: Any, repository: str, ref: str, path: str) -> None:
    """A run cites the commit it read, and a branch's staged changes are in no commit: a
    table read on a branch would mix them in under the head's id. Conflict, naming the
    paths, when ``path`` (a file or a glob) has uncommitted changes on branch ``ref``."""
    if ref not in {b.name for b in repo.branches()}:
        return  # a tag or a commit: nothing is staged there
    glob = bool(set("*?[") & set(path))
    staged = sorted(d.path for d in repo.branch(ref).uncommitted()
                    if (fnmatch.fnmatchcase(d.path, path) if glob else d.path == path))
    if staged:
        raise Conflict(f"{repository}/{ref} has uncommitted changes to "
                       f"{', '.join(staged[:5])}{' ...' if len(staged) > 5 else ''}: commit them (or reset them) "
                       "first; a run records the commit it trained on")


class Training:
    def __init__(self, data: DataStore | LakeFSDataStore, tracking: Tracking, parity_tolerance: float, *,
                 features: Callable[[], Any] | None = None) -> None:
        self._data = data
        self._tracking = tracking
        self._parity_tolerance = parity_tolerance
        self._features = features  # the feature store, for training through a feature service

    def train_features(self, service: str, repository: str, ref: str, path: str, spec: TrainingSpec | None = None, *,
                       target: str | None = None, timestamp_field: str = "event_timestamp",
                       exclude: tuple[str, ...] = (), run_name: str | None = None, experiment: str = "default",
                       actor: str | None = None) -> TrainingResult:
        """Train through a feature service: the entity rows (join keys, ``timestamp_field``, the
        target and any request fields) are the table ``path`` of ``repository`` at ``ref``;
        the service's features are joined point-in-time at the same commit into a stored
        training set, which the run records (tags ``feature_service``, ``feature_service_version``,
        ``training_set``) and the model's signature names (``feature_service``). Rows whose
        features are missing or expired are left out (metric ``rows_without_features``).
        ``spec``: what to learn; default inferred for ``target`` over the features and the
        request fields (the join keys and the timestamp are never inputs)."""
        if self._features is None:
            raise InvalidInput("this platform has no feature store", field="service", expected="a local platform")
        features = self._features()
        record = features.training_set(service, repository=repository, path=path, ref=ref,
                                       timestamp_field=timestamp_field, actor=actor)
        table = features.training_set_table(record.id)
        plan = features.plan(service, record.service_version)
        spec = feature_spec(table, spec, target=target, join_keys=dict(plan.join_keys),
                            timestamp_field=timestamp_field, exclude=exclude)
        # The one filter the gates cut their held-out slice after too (Features.training_rows).
        rows = features.training_rows(record.id, (*spec.numeric, *spec.categorical))
        spec.validate(rows)
        data_commit = record.commits.get(repository) or next(iter(record.commits.values()))
        with self._tracking.start_run(run_name or f"train-{spec.algorithm}", experiment=experiment,
                                      data_commits=_commits_of(record, data_commit),
                                      tags=feature_service_tags(record, repository=repository, path=path, ref=ref),
                                      actor=actor) as run:
            model = train_classifier(rows, spec, parity_tolerance=self._parity_tolerance)
            signature = feature_service_signature(model.signature, record, join_keys=dict(plan.join_keys))
            metrics = {**model.metrics, "rows_without_features": float(table.num_rows - rows.num_rows)}
            digest = _log_model(run, model.params, metrics, model.onnx, signature)
        return TrainingResult(run=self._tracking.get_run(run.id), data_commit=data_commit,
                              model_digest=digest, signature=signature, metrics=metrics)

    def train(self, repository: str, ref: str, path: str, spec: TrainingSpec, *,
              run_name: str | None = None, experiment: str = "default",
              actor: str | None = None) -> TrainingResult:
        """Train on ``path`` at ``ref``; the run cites the exact commit read. A run
        that fails is recorded as failed and the error propagates."""
        repo = self._data.repo(repository)
        refuse_uncommitted(repo, repository, ref, path)
        read = repo.ref(ref).read_table(path)
        spec.validate(read.table)
        with self._tracking.start_run(run_name or f"train-{spec.algorithm}", experiment=experiment,
                                      data_commits=(read.commit,),
                                      tags={"repository": repository, "path": path, "ref": ref},
                                      actor=actor) as run:
            model = train_classifier(read.table, spec, parity_tolerance=self._parity_tolerance)
            digest = _log_model(run, model.params, model.metrics, model.onnx, model.signature)
        record = self._tracking.get_run(run.id)
        return TrainingResult(run=record, data_commit=read.commit, model_digest=digest,
                              signature=model.signature, metrics=model.metrics)

    def record(self, name: str, *, data_commit: str, tags: dict[str, str], params: dict[str, Any],
               metrics: dict[str, float], onnx: bytes, signature: dict[str, Any], experiment: str = "default",
               actor: str | None = None) -> TrainingResult:
        """Record a model trained elsewhere (a Prefect worker, a GPU host) as one finished
        run: params, metrics, the ONNX model and its signature, all or nothing."""
        from mlops_lite.errors import InvalidInput

        if not onnx:
            raise InvalidInput("the run has no model", field="artifacts.model.onnx", expected="ONNX bytes")
        for key in ("inputs", "classes"):
            if key not in signature:
                raise InvalidInput(f"the signature has no {key!r}", field=f"signature.{key}",
                                   expected="the signature train_classifier writes")
        repository = tags.get("repository")
        if not repository:
            raise InvalidInput("the run names no data repository", field="tags.repository",
                               expected="the repository the data commit belongs to")
        # Lineage must hold: the run cites a commit id that exists (NotFound otherwise), not a moving ref.
        if self._data.repo(repository).commit(data_commit).id != data_commit:
            raise InvalidInput(f"{data_commit!r} is a ref, not a commit id", field="data_commit",
                               expected="the id of the commit the model was trained on")
        with self._tracking.start_run(name, experiment=experiment,
                                      data_commits=self._training_set_commits(tags, repository, data_commit),
                                      tags=tags, actor=actor) as run:
            digest = _log_model(run, params, metrics, onnx, signature)
        return TrainingResult(run=self._tracking.get_run(run.id), data_commit=data_commit, model_digest=digest,
                              signature=signature, metrics=dict(metrics))

    def _training_set_commits(self, tags: dict[str, str], repository: str, data_commit: str) -> tuple[str, ...]:
        """A recorded run's data commits: ``data_commit``, and when its tags name a training set
        of this platform's feature store, every commit that set was joined at (read from the
        stored set, not from the uploader), so a run trained elsewhere cites what one trained
        here cites."""
        training_set = tags.get("training_set")
        if not training_set or self._features is None:
            return (data_commit,)
        stored = self._features().get_training_set(training_set)
        if stored.commits.get(repository) != data_commit:
            raise InvalidInput(f"training set {training_set} was built at {repository}@"
                               f"{stored.commits.get(repository)}, not at {data_commit}", field="data_commit",
                               expected="the commit of the entity rows the training set was built from")
        return _commits_of(stored, data_commit)


def _commits_of(record: Any, data_commit: str) -> tuple[str, ...]:
    """A run's data commits when it trained from training set ``record``: the entity rows'
    first, then those of the views' other repositories."""
    return (data_commit, *(c for c in record.commits.values() if c != data_commit))


def feature_spec(table: Any, spec: TrainingSpec | None, *, target: str | None, join_keys: dict[str, str],
                 timestamp_field: str, exclude: tuple[str, ...] = ()) -> TrainingSpec:
    """What a model trained through a feature service learns: ``spec``, else one inferred for
    ``target`` over the training set's features and request fields (the join keys and the
    entity timestamp are never inputs)."""
    if spec is not None:
        return spec
    if not target:
        raise InvalidInput("name the target column", field="target", expected="a column of the entity rows")
    never = {*join_keys, timestamp_field, *exclude}
    return TrainingSpec.infer(table, target=target, exclude=tuple(sorted(never)))


def feature_service_tags(record: Any, *, repository: str, path: str, ref: str) -> dict[str, str]:
    """The tags of a run trained through a feature service from training set ``record``: what
    its recipe (``TrainingRecipe.of``) and the gates read back."""
    return {"repository": repository, "path": path, "ref": ref, "feature_service": record.service,
            "feature_service_version": record.service_version, "training_set": record.id,
            "entity_timestamp": str(record.entities.get("timestamp_field", "event_timestamp"))}


def feature_service_signature(signature: dict[str, Any], record: Any, *, join_keys: dict[str, str]) -> dict[str, Any]:
    """A model's signature naming the feature service version and training set it trained
    from (what entity-keyed serving and the deployment check read)."""
    return {**signature, "feature_service": {
        "name": record.service, "version": record.service_version, "training_set": record.id,
        "join_keys": dict(join_keys),
        "timestamp_field": str(record.entities.get("timestamp_field", "event_timestamp"))}}


def _log_model(run: Any, params: dict[str, Any], metrics: dict[str, float], onnx: bytes,
               signature: dict[str, Any]) -> str:
    """What every training run records; answers the ONNX model's digest."""
    run.log_params(params)
    run.log_metrics(metrics)
    digest: str = run.log_artifact(MODEL_ARTIFACT, onnx)
    run.log_artifact(SIGNATURE_ARTIFACT, json.dumps(signature, sort_keys=True).encode())
    return digest
