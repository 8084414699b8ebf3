"""What the gates measure a version on, and how: its ONNX file, run by the session class
that serves it, on rows the platform reads itself.

The rows are the policy's registered evaluation data (``[evaluation]``) when there is
one, else the slice of the version's recorded data commit that its training held out,
cut again from the run's recorded repository, path, target, ``test_size`` and ``seed``
by the split training makes (``training.classifier.split_rows``). A version trained
through a feature service (its run's tag ``training_set``) is cut from that stored
point-in-time training set instead, after the filter training applied (rows with a missing
or expired feature left out; the feature store's ``training_rows``, passed in as a
callable). A run's metrics are what its uploader claims; the gates only compare them with
what they measure.

The held-out slice trusts what the run recorded about itself (its path, target and
split): an uploader who trained on those rows anyway looks better on them than it is.
Registered evaluation data, with its own target, is the form that trusts nothing the
uploader sent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_lite.errors import InvalidInput, NotFound
from mlops_lite.policy.common import plain
from mlops_lite.policy.document import EVALUATED_METRICS, Evaluation
from mlops_lite.policy.fairness import figures, group_rates
from mlops_lite.records import ModelVersionRecord

FAIRNESS_METRICS = ("demographic_parity_difference", "equalized_odds_difference")
# Every metric a gate computes from a version's predictions (the fairness two need a
# sensitive column).
MEASURABLE = (*EVALUATED_METRICS, *FAIRNESS_METRICS)
_CACHE_SIZE = 16


@dataclass(frozen=True)
class EvaluationSource:
    """The rows a version is measured on: ``registered`` (the policy's evaluation data,
    every row) or ``held-out`` (the rows its training held out of the recorded commit)."""

    kind: str
    repository: str
    commit: str
    path: str
    target: str
    test_size: float | None = None
    seed: int | None = None
    training_set: str | None = None  # a feature service's stored training set, cut instead of ``path``

    @property
    def where(self) -> str:
        return f"{self.repository}@{self.commit}:{self.path}"

    def describe(self) -> str:
        if self.kind == "registered":
            return f"the registered evaluation data {self.where}"
        of = f"training set {self.training_set} (entity rows {self.where})" if self.training_set else self.where
        return (f"the held-out slice of {of} (test_size {self.test_size:g}, seed {self.seed}, "
                f"the split its training recorded)")


@dataclass(frozen=True)
class Scored:
    """A version's predictions on the rows of ``source``."""

    source: EvaluationSource
    y_true: np.ndarray  # bool: the target is the positive class
    y_pred: np.ndarray  # bool: the predicted label is the positive class
    proba: np.ndarray  # probability of the positive class
    groups: dict[str, list[str]] = field(default_factory=dict)  # sensitive column -> each row's group

    @property
    def where(self) -> str:
        return self.source.where

    @property
    def rows(self) -> int:
        return len(self.y_true)

    def evidence(self) -> dict[str, Any]:
        """The data, as a gate's evidence names it."""
        source = self.source
        return {"kind": source.kind, "repository": source.repository, "commit": source.commit,
                "path": source.path, "target": source.target, "rows": self.rows,
                **({"training_set": source.training_set} if source.training_set else {}),
                **({"test_size": source.test_size, "seed": source.seed} if source.kind == "held-out" else {})}


class Scorer:
    """Scores versions on evaluation rows; remembers the last few scorings by (model
    digest, data commit, path, target, slice), so a decision's gates, and the next
    decision on the same data, score each version once."""

    def __init__(self, data: Any, model_bytes: Callable[[str, str], bytes],
                 run_tags: Callable[[str], dict[str, str]] | None, *,
                 training_sets: Callable[[str, tuple[str, ...]], Any] | None = None) -> None:
        self._data = data
        self._model_bytes = model_bytes
        self._run_tags = run_tags
        self._training_sets = training_sets  # (id, inputs) -> the training set's rows trained from
        self._cache: OrderedDict[tuple[Any, ...], Scored] = OrderedDict()
        self._lock = threading.Lock()

    # ---- which rows ---------------------------------------------------------------

    def source(self, version: ModelVersionRecord, evaluation: Evaluation | None) -> EvaluationSource:
        """The registered evaluation data when the policy names one, else the held-out slice."""
        return self.registered(version, evaluation) if evaluation is not None else self.held_out(version)

    def registered(self, version: ModelVersionRecord, evaluation: Evaluation) -> EvaluationSource:
        commit = self._data.repo(evaluation.repository).ref(evaluation.ref).resolve()
        target = evaluation.target or version.signature.get("target")
        if not isinstance(target, str) or not target:
            raise InvalidInput("neither [evaluation] nor the model's signature names a target column",
                               field="evaluation.target", expected="the label column of the evaluation table")
        return EvaluationSource("registered", evaluation.repository, commit, evaluation.path, target)

    def held_out(self, version: ModelVersionRecord) -> EvaluationSource:
        """The held-out slice of the version's recorded data commit, from what its run
        recorded; NotFound naming what is missing when it cannot be cut again."""
        name = f"{version.model}@{version.version}"
        if not version.run_id or self._run_tags is None:
            raise NotFound(f"{name} names no training run: there is no recorded data to measure it on")
        tags = self._run_tags(version.run_id)
        # Trained through a feature service: the rows were its stored point-in-time training set,
        # pinned at every commit it read (the entity rows' first).
        training_set = tags.get("training_set") if self._training_sets is not None else None
        if len(version.data_commits) != 1 and not (training_set and version.data_commits):
            raise NotFound(f"{name} names {len(version.data_commits)} data commits; its held-out slice is cut "
                           "from exactly one")
        missing = [key for key in ("repository", "path") if not tags.get(key)]
        params = version.params
        missing += [key for key in ("test_size", "seed") if params.get(key) in (None, "")]
        target = version.signature.get("target")
        if not isinstance(target, str) or not target:
            missing.append("the signature's target")
        if missing:
            raise NotFound(f"{name}'s run records no {', '.join(missing)}: the slice its training held out "
                           "cannot be cut again (register evaluation data in the policy's [evaluation])")
        try:
            test_size, seed = float(params["test_size"]), int(str(params["seed"]))
        except ValueError as exc:
            raise InvalidInput(f"{name}'s run records test_size {params['test_size']!r} and seed "
                               f"{params['seed']!r}", field="params", expected="a number and a whole number") from exc
        return EvaluationSource("held-out", tags["repository"], version.data_commits[0], tags["path"], str(target),
                                test_size=test_size, seed=seed, training_set=training_set or None)

    # ---- scoring ------------------------------------------------------------------

    def score(self, version: ModelVersionRecord, source: EvaluationSource, *, sensitive: str | None = None) -> Scored:
        """``version`` scored on ``source`` (cached); with ``sensitive``, each row's group too.
        InvalidInput/NotFound when the data does not fit the model."""
        key = (version.digest, source)
        with self._lock:
            scored = self._cache.get(key)
            if scored is not None:
                self._cache.move_to_end(key)
        table = None
        if scored is None:
            table = self._rows(source, version)
            scored = self._score(version, table, source)
            with self._lock:
                self._cache[key] = scored
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        if sensitive is not None and sensitive not in scored.groups:
            table = table if table is not None else self._rows(source, version)
            if sensitive not in table.column_names:
                raise InvalidInput(f"the evaluation table {source.where} has no sensitive column {sensitive!r}",
                                   field="fairness.sensitive", expected="a column of the evaluation table")
            import pyarrow as pa

            scored.groups[sensitive] = [str(g) for g in table.column(sensitive).cast(pa.string()).to_pylist()]
        return scored

    def _rows(self, source: EvaluationSource, version: ModelVersionRecord) -> Any:
        if source.training_set is not None and self._training_sets is not None:
            # The rows training kept (the same filter, in the feature store), so the split cuts
            # the same held-out slice again.
            inputs = tuple(str(spec["name"]) for spec in version.signature.get("inputs", []))
            table = self._training_sets(source.training_set, inputs)
        else:
            table = self._data.repo(source.repository).ref(source.commit).read_table(source.path).table
        if source.target not in table.column_names:
            raise InvalidInput(f"the evaluation table {source.where} has no target column {source.target!r}",
                               field="evaluation.target", expected="the label column of the evaluation table")
        if source.kind != "held-out":
            return table
        from mlops_lite.training.classifier import split_rows

        assert source.test_size is not None and source.seed is not None
        target = np.asarray(table.column(source.target).to_pylist())
        try:
            _, held_out = split_rows(target, test_size=source.test_size, seed=source.seed)
        except ValueError as exc:
            raise InvalidInput(f"the held-out slice of {source.where} cannot be cut again: {exc}",
                               field="params", expected="the split the run was trained with") from exc
        return table.take(held_out)

    def _score(self, version: ModelVersionRecord, table: Any, source: EvaluationSource) -> Scored:
        from mlops_lite.inference.session import CPU, ModelSession

        where = source.where
        features = [spec["name"] for spec in version.signature.get("inputs", [])]
        missing = [name for name in features if name not in table.column_names]
        if missing:
            raise InvalidInput(f"the evaluation table {where} lacks the model's feature(s) {missing}",
                               field="evaluation.path", expected=f"a table with the columns {features}")
        truth = table.column(source.target).to_pylist()
        if any(value is None for value in truth):
            raise InvalidInput(f"the target {source.target!r} of {where} has missing values",
                               field="evaluation.target", expected="a label on every row")
        classes = list(version.signature.get("classes") or [])
        if len(classes) != 2:
            raise InvalidInput(f"{version.model}@{version.version} is not a binary classifier (classes {classes})",
                               field="version", expected="two classes")
        rows = table.select(features).to_pylist()
        session = ModelSession(self._model_bytes(version.model, version.version), version.signature,
                               providers=[CPU], max_batch_size=max(1, len(rows)))
        labels, probabilities = session.predict(session.build_feed(rows))
        positive = classes[1]
        labels = np.asarray(labels).reshape(-1)
        return Scored(source=source,
                      y_true=np.asarray([value == positive for value in truth], dtype=bool),
                      y_pred=np.asarray([plain(label) == positive for label in labels], dtype=bool),
                      proba=np.asarray(probabilities, dtype=np.float64)[:, 1])


def metric_value(scored: Scored, metric: str, *, sensitive: str | None = None) -> float:
    """One of MEASURABLE on scored predictions (the fairness two by ``sensitive``'s groups,
    which ``Scorer.score`` must have filled)."""
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    if metric not in MEASURABLE:
        raise InvalidInput(f"{metric!r} cannot be computed on evaluation data", field="metric",
                           expected=" | ".join(MEASURABLE))
    if metric in FAIRNESS_METRICS:
        if sensitive is None or sensitive not in scored.groups:
            raise InvalidInput(f"{metric} needs a sensitive column: neither [fairness] nor the training run "
                               "names one", field="fairness.sensitive", expected="a column of the evaluation table")
        return figures(group_rates(scored.y_true, scored.y_pred, scored.groups[sensitive]))[metric]
    if metric == "accuracy":
        return float(np.mean(scored.y_true == scored.y_pred))
    if metric == "roc_auc":
        if scored.y_true.all() or not scored.y_true.any():
            raise InvalidInput(f"ROC AUC needs both classes in the evaluation target ({scored.where})",
                               field="evaluation.target", expected="both classes present")
        return float(roc_auc_score(scored.y_true, scored.proba))
    scorer = {"f1": f1_score, "precision": precision_score, "recall": recall_score}[metric]
    return float(scorer(scored.y_true, scored.y_pred, zero_division=0))
