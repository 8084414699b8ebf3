"""The ``platform.training`` facet: read a data commit, train, record a run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlops_lite.data import DataStore
from mlops_lite.records import RunRecord
from mlops_lite.tracking import Tracking
from mlops_lite.training.classifier import TrainingSpec, train_classifier

MODEL_ARTIFACT = "model.onnx"
SIGNATURE_ARTIFACT = "signature.json"


@dataclass(frozen=True)
class TrainingResult:
    run: RunRecord
    data_commit: str
    model_digest: str
    signature: dict[str, Any]
    metrics: dict[str, float]


class Training:
    def __init__(self, data: DataStore, tracking: Tracking, parity_tolerance: float) -> None:
        self._data = data
        self._tracking = tracking
        self._parity_tolerance = parity_tolerance

    def train(self, repository: str, ref: str, path: str, spec: TrainingSpec, *,
              run_name: str | None = None, experiment: str = "default",
              actor: str | None = None) -> TrainingResult:
        """Train on ``path`` at ``ref``; the run cites the exact commit read. A run
        that fails is recorded as failed and the error propagates."""
        read = self._data.repo(repository).ref(ref).read_table(path)
        spec.validate(read.table)
        with self._tracking.start_run(run_name or f"train-{spec.algorithm}", experiment=experiment,
                                      data_commits=(read.commit,),
                                      tags={"repository": repository, "path": path, "ref": ref},
                                      actor=actor) as run:
            model = train_classifier(read.table, spec, parity_tolerance=self._parity_tolerance)
            run.log_params(model.params)
            run.log_metrics(model.metrics)
            digest = run.log_artifact(MODEL_ARTIFACT, model.onnx)
            run.log_artifact(SIGNATURE_ARTIFACT, json.dumps(model.signature, sort_keys=True).encode())
        record = self._tracking.get_run(run.id)
        return TrainingResult(run=record, data_commit=read.commit, model_digest=digest,
                              signature=model.signature, metrics=model.metrics)
