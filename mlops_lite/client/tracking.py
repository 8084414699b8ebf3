"""``platform.tracking`` over HTTP (server/tracking.py): the same verbs, records and errors
as mlops_lite/tracking, and a run handle that buffers like the local one.

``RemoteRun`` keeps params and metric points here and sends them in one request per batch
(``flush_every`` points, ``flush_interval`` seconds since the last write, ``flush()``,
``log_batch()``, ``end()``, the end of a ``with`` block, ``RemotePlatform.close()`` and
interpreter exit), which the server writes in one transaction. Steps and timestamps are
chosen here, when a point is logged, as the local handle chooses them; a failed request
puts the batch back, unless the run has ended elsewhere (then it is dropped, as locally).

Input is checked here before anything is buffered, by the local handle's own checks
(mlops_lite/tracking/checks.py, which loads no store), so both refuse the same input with
the same words (tests/contract/test_tracking_contract.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import quote

import msgspec

from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.records import RunRecord
from mlops_lite.tracking.checks import check_key as _check_key
from mlops_lite.tracking.checks import check_step as _check_step
from mlops_lite.tracking.checks import finite as _finite
from mlops_lite.tracking.checks import micros as _micros
from mlops_lite.tracking.live import LIVE
from mlops_lite.tracking.provenance import collect
from mlops_lite.tracking.records import ExperimentRecord, MetricPoint, RunComparison

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform

T = TypeVar("T")

FLUSH_EVERY = 1000
FLUSH_INTERVAL_S = 2.0
RUN_END_STATUSES = ("finished", "failed")
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _as(data: Any, type_: type[T]) -> T:
    return msgspec.convert(data, type=type_, strict=False)


def _run_path(run_id: str) -> str:
    return f"/v1/runs/{quote(str(run_id), safe='')}"


class RemoteTracking:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote
        self._open: dict[str, RemoteRun] = {}  # runs started through this client and not ended, by id
        self._open_lock = threading.Lock()

    # --- experiments ----------------------------------------------------------------------
    def create_experiment(self, name: str, *, description: str = "", tags: dict[str, Any] | None = None,
                          exist_ok: bool = True) -> ExperimentRecord:
        body = self._remote.request("POST", "/v1/experiments", json={
            "name": name, "description": description, "tags": dict(tags or {}), "exist_ok": exist_ok})
        return _as(body, ExperimentRecord)

    def get_experiment(self, name: str) -> ExperimentRecord:
        return _as(self._remote.request("GET", "/v1/experiment", params={"name": name}), ExperimentRecord)

    def experiments(self) -> list[ExperimentRecord]:
        return _as(self._remote.request("GET", "/v1/experiments"), list[ExperimentRecord])

    # --- runs -----------------------------------------------------------------------------
    def start_run(self, name: str, *, experiment: str = "default", data_commits: tuple[str, ...] = (),
                  tags: dict[str, Any] | None = None, code_dir: str | os.PathLike[str] | None = None,
                  flush_every: int = FLUSH_EVERY, flush_interval: float = FLUSH_INTERVAL_S) -> RemoteRun:
        """Start a run on the server. The run records this process's provenance, as a local
        run does: the code version of ``code_dir`` (default: the working directory), read
        here, the environment, the pid and the host (``provenance.collect``, sent along)."""
        # The buffer's settings stay here (the server never sees the buffer); checked first,
        # so that a bad one is refused before the run exists, as locally.
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise InvalidInput(f"bad flush_every {flush_every!r}", field="flush_every", expected="an integer >= 1")
        if not isinstance(flush_interval, int | float) or not flush_interval >= 0:
            raise InvalidInput(f"bad flush_interval {flush_interval!r}", field="flush_interval",
                               expected="seconds >= 0")
        body = self._remote.request("POST", "/v1/runs/start", json={
            "name": name, "experiment": experiment, "data_commits": list(data_commits), "tags": dict(tags or {}),
            "provenance": collect(code_dir).to_json()})
        run = RemoteRun(self, str(body["id"]), flush_every=flush_every, flush_interval=float(flush_interval))
        with self._open_lock:
            self._open[run.id] = run
        LIVE.add(run)
        return run

    def get_run(self, run_id: str) -> RunRecord:
        self._flush_open((run_id,))
        return _as(self._remote.request("GET", _run_path(run_id)), RunRecord)

    def list_runs(self, *, limit: int = 50, experiment: str | None = None) -> list[RunRecord]:
        params: dict[str, Any] = {"limit": limit}
        if experiment is not None:
            params["experiment"] = experiment
        return _as(self._remote.request("GET", "/v1/runs", params=params), list[RunRecord])

    def count(self) -> int:
        return int(self._remote.request("GET", "/v1/runs/count")["count"])

    def read_artifact(self, run_id: str, name: str) -> bytes:
        self._flush_open((run_id,))
        return self._remote.request_bytes("GET", f"{_run_path(run_id)}/artifacts", params={"name": name})

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        self._flush_open((run_id,))
        return _as(self._remote.request("GET", f"{_run_path(run_id)}/metrics", params={"key": key}),
                   list[MetricPoint])

    def compare(self, run_ids: Iterable[str]) -> RunComparison:
        ids = list(dict.fromkeys(run_ids))
        if not ids:  # the route needs at least one ?runs=; the local facet's words
            raise InvalidInput("compare needs at least one run id", field="run_ids", expected="run ids")
        self._flush_open(ids)
        return _as(self._remote.request("GET", "/v1/compare", params={"runs": ids}), RunComparison)

    def sql(self, query: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> Any:
        """The same read-only SQL, answered as a pyarrow Table with the server's column types."""
        import pyarrow as pa

        self._flush_open(None)
        raw = self._remote.request_bytes("POST", "/v1/sql", json={"query": query, "max_rows": max_rows,
                                                                  "timeout_s": timeout_s},
                                         headers={"Accept": ARROW_STREAM})
        return pa.ipc.open_stream(raw).read_all()

    def close(self) -> None:
        """Send every open run's buffered points (``RemotePlatform.close()`` calls this)."""
        self._flush_open(None)

    def _flush_open(self, run_ids: Iterable[str] | None) -> None:
        """Reads through this client see what its own open runs have logged."""
        with self._open_lock:
            runs = list(self._open.values()) if run_ids is None else [
                self._open[r] for r in run_ids if r in self._open]
        for run in runs:
            if run.pending:
                run.flush()

    def _forget(self, run_id: str) -> None:
        with self._open_lock:
            run = self._open.pop(run_id, None)
        if run is not None:
            LIVE.discard(run)


class RemoteRun:
    """A run being recorded on the server. As a context manager it ends ``finished``, or
    ``failed`` when the block raises; either way its buffered points are sent first."""

    def __init__(self, tracking: RemoteTracking, run_id: str, *, flush_every: int = FLUSH_EVERY,
                 flush_interval: float = FLUSH_INTERVAL_S) -> None:
        self._tracking = tracking
        self._remote = tracking._remote
        self.id = run_id
        self.flush_every = flush_every
        self.flush_interval = flush_interval
        self._metrics: dict[tuple[str, int], tuple[float, int]] = {}
        self._params: dict[str, str] = {}
        self._next_step: dict[str, int] = {}
        self._buffer_lock = threading.Lock()  # guards the buffers (held for microseconds)
        self._write_lock = threading.RLock()  # one request writing this run at a time
        self._last_write = time.monotonic()
        self._ended: str | None = None
        self.flushes = 0  # batches written

    # --- logging (buffered) ------------------------------------------------------------------
    def log_metric(self, key: str, value: float, step: int | None = None,
                   timestamp: datetime | float | None = None) -> None:
        if self._ended is not None:
            self._refuse_ended()
        number = _finite(key, value)
        micros = time.time_ns() // 1000 if timestamp is None else _micros(timestamp, key)
        with self._buffer_lock:
            chosen = self._step(key, step)
            self._metrics[(key, chosen)] = (number, micros)
            pending = len(self._metrics) + len(self._params)
        self._maybe_flush(pending)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None,
                    timestamp: datetime | float | None = None) -> None:
        if self._ended is not None:
            self._refuse_ended()
        micros = time.time_ns() // 1000 if timestamp is None else _micros(timestamp, "timestamp")
        points = [(_check_key(key), _finite(key, value)) for key, value in metrics.items()]
        if step is not None:
            step = _check_step(step, ", ".join(key for key, _ in points))  # before anything is buffered
        with self._buffer_lock:
            for key, number in points:
                self._metrics[(key, self._step(key, step))] = (number, micros)
            pending = len(self._metrics) + len(self._params)
        self._maybe_flush(pending)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self._ended is not None:
            self._refuse_ended()
        rows = {_check_key(key, "param"): str(value) for key, value in params.items()}
        with self._buffer_lock:
            self._params.update(rows)
            pending = len(self._metrics) + len(self._params)
        self._maybe_flush(pending)

    def log_batch(self, metrics: Iterable[tuple[Any, ...]] = (), params: Mapping[str, Any] | None = None) -> int:
        """Send metric points ``(key, value[, step[, timestamp]])`` and params now, with
        whatever is buffered, in one request; returns the rows written. Nothing is sent
        when any item is invalid."""
        if self._ended is not None:
            self._refuse_ended()
        checked_params = {_check_key(key, "param"): str(value) for key, value in (params or {}).items()}
        now = time.time_ns() // 1000
        points: dict[tuple[str, int], tuple[float, int]] = {}
        with self._buffer_lock:  # held throughout: steps left out are numbered in order
            next_step = dict(self._next_step)  # kept only when the whole batch is valid
            for index, item in enumerate(metrics):
                size = len(item) if isinstance(item, tuple | list) else 0
                if not 2 <= size <= 4:
                    raise InvalidInput(f"metric #{index} is {item!r}", field=f"metrics[{index}]",
                                       expected="(key, value), (key, value, step) or (key, value, step, timestamp)")
                key = _check_key(item[0])
                number = _finite(key, item[1])
                micros = _micros(item[3], key) if size > 3 and item[3] is not None else now
                step = item[2] if size > 2 else None
                step = next_step.get(key, 0) if step is None else _check_step(step, key)
                if step >= next_step.get(key, 0):
                    next_step[key] = step + 1
                points[(key, step)] = (number, micros)
            self._next_step = next_step
            self._metrics.update(points)
            self._params.update(checked_params)
        return self.flush()

    @property
    def pending(self) -> int:
        """Points and params buffered, not yet sent."""
        return len(self._metrics) + len(self._params)

    def flush(self) -> int:
        """Send the buffer now (one request, one transaction there); returns the rows written."""
        with self._write_lock:
            answer = self._write(None)
        return 0 if answer is None else int(answer["written"])

    # --- immediate writes --------------------------------------------------------------------
    def log_artifact(self, name: str, data: bytes | BinaryIO) -> str:
        """Store bytes (or a binary stream, read to its end) content-addressed on the server and
        attach them to the run; returns the digest."""
        if self._ended is not None:
            self._refuse_ended()
        content = bytes(data) if isinstance(data, bytes | bytearray | memoryview) else data.read()
        with self._write_lock:
            body = self._remote.request("PUT", f"{_run_path(self.id)}/artifacts", params={"name": name},
                                        content=content, headers={"Content-Type": "application/octet-stream"})
        return str(body["digest"])

    def end(self, status: str = "finished") -> RunRecord:
        """Send what is buffered and end the run (one request, one transaction there)."""
        if status not in RUN_END_STATUSES:
            raise InvalidInput(f"bad run status {status!r}", field="status", expected="finished | failed")
        if self._ended is not None:
            self._refuse_ended()
        with self._write_lock:
            answer = self._write(status)
            self._ended = status
        self._tracking._forget(self.id)
        return _as(answer, RunRecord)

    # --- internals ------------------------------------------------------------------------------
    def _maybe_flush(self, pending: int) -> None:
        if pending >= self.flush_every or time.monotonic() - self._last_write >= self.flush_interval:
            self.flush()

    def _write(self, end_status: str | None) -> Any:
        """Send the buffers in one request (ending the run with ``end_status``, if given);
        returns the server's answer (None when there was nothing to send). Called with the
        write lock held. A failed
        request puts the buffers back (points logged meanwhile win over them), unless the
        run has ended elsewhere (404 or 409): then they are dropped."""
        with self._buffer_lock:
            metrics, self._metrics = self._metrics, {}
            params, self._params = self._params, {}
        if end_status is None and not metrics and not params:
            self._last_write = time.monotonic()
            return None
        body: dict[str, Any] = {
            "metrics": [[key, value, step, micros] for (key, step), (value, micros) in metrics.items()],
            "params": params}
        try:
            if end_status is None:
                answer = self._remote.request("POST", f"{_run_path(self.id)}/batch", json=body)
            else:
                answer = self._remote.request("POST", f"{_run_path(self.id)}/end",
                                              json={"status": end_status, **body})
        except (NotFound, Conflict):
            self._ended = self._ended or "ended elsewhere"
            self._tracking._forget(self.id)
            raise
        except BaseException:
            with self._buffer_lock:
                metrics.update(self._metrics)
                params.update(self._params)
                self._metrics, self._params = metrics, params
            raise
        self._last_write = time.monotonic()
        self.flushes += 1
        return answer

    def _step(self, key: str, step: Any) -> int:
        """The step a point goes to (call with the buffer lock held)."""
        chosen = self._next_step.get(key, 0) if step is None else _check_step(step, key)
        if chosen >= self._next_step.get(key, 0):
            self._next_step[key] = chosen + 1
        return chosen

    def _refuse_ended(self) -> None:
        raise Conflict(f"run {self.id} has ended ({self._ended}); it takes no more records")

    def __enter__(self) -> RemoteRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._ended is None:
            self.end("failed" if exc_type else "finished")
