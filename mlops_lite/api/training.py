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

    def record(self, name: str, *, data_commit: str, tags: dict[str, str], params: dict[str, Any],
               metrics: dict[str, float], onnx: bytes, signature: dict[str, Any],
               experiment: str = "default") -> TrainingResult:
        """Record a run trained elsewhere (its ONNX bytes, params, metrics) at a data commit."""
