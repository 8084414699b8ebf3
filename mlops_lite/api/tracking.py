"""``platform.tracking``: experiments, runs with their params, metrics and artifacts, and
reads over them (history, comparison, read-only SQL).

A run is recorded through the handle ``start_run`` returns (``ActiveRunAPI``). Params and
metrics are buffered and written in batches (``flush_every`` points, ``flush_interval``
seconds, ``flush()``, ``log_batch()``, ``end()`` and the end of a ``with`` block); an
exception inside the ``with`` ends the run ``failed``. Artifacts are written at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, BinaryIO, Protocol

from mlops_lite.records import RunRecord
from mlops_lite.tracking.records import ExperimentRecord, MetricPoint, RunComparison

# Seams off the Protocols, each for a reason:
# - ``Tracking.mark_crashed``: judges runs by the process ids and host of the process that
#   owns the store ("is the process that started it still alive?"); only that process (the
#   daemon, or a local platform) can answer it, so it is maintenance, not a user's verb.
# - ``Tracking.close``: writes the open runs' buffers before the stores close; the
#   platform's own ``close()`` calls it.
# - ``actor=`` on every write: over HTTP the actor is the caller's token; in-process it is
#   the platform's actor.


class ActiveRunAPI(Protocol):
    """A run being recorded. As a context manager it ends ``finished``, or ``failed`` when
    the block raises; either way its buffered points are written first."""

    id: str
    flush_every: int
    flush_interval: float
    flushes: int

    @property
    def pending(self) -> int:
        """Points and params buffered, not yet written."""

    def log_metric(self, key: str, value: float, step: int | None = None,
                   timestamp: datetime | float | None = None) -> None:
        """Buffer one point. ``step`` None: one more than the last step of ``key`` logged
        through this handle (0 first). ``timestamp``: a datetime (naive = UTC) or seconds
        since the epoch; default now. NaN or infinite values are refused."""

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None,
                    timestamp: datetime | float | None = None) -> None:
        """Buffer one point per key, all at ``step`` (None: each key's next step)."""

    def log_param(self, key: str, value: Any) -> None: ...

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Buffer params (kept as text); a key logged again takes the last value."""

    def log_batch(self, metrics: Iterable[tuple[Any, ...]] = (), params: Mapping[str, Any] | None = None) -> int:
        """Write metric points ``(key, value[, step[, timestamp]])`` and params now, with
        whatever is buffered, in one transaction; returns the rows written. Nothing is
        written when any item is invalid."""

    def flush(self) -> int:
        """Write the buffer now (one transaction); returns the rows written."""

    def log_artifact(self, name: str, data: bytes | BinaryIO) -> str:
        """Store bytes (or a binary stream, read to its end) content-addressed and attach them
        to the run; returns the digest."""

    def end(self, status: str = "finished") -> RunRecord:
        """Write what is buffered and end the run (``finished`` or ``failed``)."""

    def __enter__(self) -> ActiveRunAPI: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class TrackingAPI(Protocol):
    def create_experiment(self, name: str, *, description: str = "", tags: dict[str, Any] | None = None,
                          exist_ok: bool = True) -> ExperimentRecord:
        """Create an experiment; an existing one is returned as it is (``exist_ok``) or
        refused with Conflict."""

    def get_experiment(self, name: str) -> ExperimentRecord: ...

    def experiments(self) -> list[ExperimentRecord]:
        """Every experiment, by name, with its number of runs."""

    def start_run(self, name: str, *, experiment: str = "default", data_commits: tuple[str, ...] = (),
                  tags: dict[str, Any] | None = None, code_dir: str | os.PathLike[str] | None = None,
                  flush_every: int = 1000, flush_interval: float = 2.0) -> ActiveRunAPI:
        """Start a run in ``experiment`` (created when missing), recording the git commit of
        ``code_dir`` (default: the working directory) and the environment."""

    def get_run(self, run_id: str) -> RunRecord: ...

    def list_runs(self, *, limit: int = 50, experiment: str | None = None) -> list[RunRecord]:
        """The newest runs (of one experiment, if named) with their latest metrics, without params."""

    def count(self) -> int:
        """How many runs there are."""

    def read_artifact(self, run_id: str, name: str) -> bytes: ...

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every point of one metric of a run, by step."""

    def compare(self, run_ids: Iterable[str]) -> RunComparison:
        """Runs side by side: each param and each metric's latest value per run, and which differ."""

    def sql(self, query: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> Any:
        """One read-only SELECT/WITH over the metadata tables -> ``pyarrow.Table``."""
