"""``platform.training``: train a scikit-learn pipeline on a data commit, convert it to
ONNX with a parity check, and record the run (in-process, or on a worker that records
the finished run on the server in one request)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlops_lite.training.classifier import TrainingSpec
    from mlops_lite.training.service import TrainingResult


class TrainingAPI(Protocol):
    def train(self, repository: str, ref: str, path: str, spec: TrainingSpec, *, run_name: str | None = None,
              experiment: str = "default") -> TrainingResult: ...

    def train_features(self, service: str, repository: str, ref: str, path: str, spec: TrainingSpec | None = None, *,
                       target: str | None = None, timestamp_field: str = "event_timestamp",
                       exclude: tuple[str, ...] = (), run_name: str | None = None,
                       experiment: str = "default") -> TrainingResult:
        """Train through feature service ``service``: the entity rows are ``path`` of
        ``repository`` at ``ref``, the features joined point-in-time at the same commit into a
        stored training set (the server builds it); rows with a missing or expired feature are
        left out; the run's tags and the model's signature name the service version and the
        training set."""

    def record(self, name: str, *, data_commit: str, tags: dict[str, str], params: dict[str, Any],
               metrics: dict[str, float], onnx: bytes, signature: dict[str, Any],
               experiment: str = "default") -> TrainingResult:
        """Record a run trained elsewhere (its ONNX bytes, params, metrics) at a data commit."""
