"""The prediction log and feedback labels, as Parquet under the home.

``PredictionLog.record`` runs on the request path: it appends to a bounded
in-memory queue and returns at once. When the queue is full the request is
dropped from the log and counted, never blocked or failed. A background thread
writes batches (every ``batch_rows`` rows or ``flush_interval_s`` seconds, and
on close) to

    <root>/deployment=<name>/date=YYYY-MM-DD/part-<uuid>.parquet

A write failure is counted and logged and never reaches the request.
``Feedback`` writes true labels beside it; ``Monitoring.query`` runs DuckDB
over both as the views ``predictions`` and ``feedback``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_lite.errors import BackendUnavailable, InvalidInput
from mlops_lite.monitoring.trace import trace_prediction
from mlops_lite.records import Prediction, PredictionTrace

log = logging.getLogger("mlops_lite.monitoring")

PREDICTION_SCHEMA = pa.schema([
    ("request_id", pa.string()),
    ("deployment", pa.string()),
    ("model", pa.string()),
    ("version", pa.string()),
    ("digest", pa.string()),
    ("at", pa.timestamp("us", tz="UTC")),
    ("latency_ms", pa.float64()),
    ("features", pa.string()),      # JSON of the instance
    ("prediction", pa.string()),    # the label, as text (labels may be ints or strings)
    ("probability", pa.float64()),  # of the positive (last) class; null without probabilities
    ("slot", pa.string()),          # primary | canary | shadow (a shadow row shares its request id)
])
# Besides these, each feature is a typed column of its own, ``f_<name>`` (DOUBLE for
# numbers, VARCHAR otherwise), so that monitoring scans columns, not JSON. Files of
# models with other features differ only in those columns; readers union by name.
FEATURE_PREFIX = "f_"

FEEDBACK_SCHEMA = pa.schema([
    ("request_id", pa.string()),
    ("deployment", pa.string()),
    ("label", pa.string()),         # the true label, as text, comparable with ``prediction``
    ("at", pa.timestamp("us", tz="UTC")),
])

ERROR_SCHEMA = pa.schema([
    ("deployment", pa.string()),
    ("at", pa.timestamp("us", tz="UTC")),   # the second the failures happened in
    ("slot", pa.string()),                  # primary | canary, when the route had picked one
    ("status", pa.int32()),                 # the HTTP status answered
    ("count", pa.int64()),
])

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ErrorLog:
    """Failed requests, counted per deployment, second, slot and status in memory and
    written as Parquet beside the prediction log on ``flush`` (and when the oldest count
    is ``flush_after_s`` old), so that monitoring windows have an error rate. An error
    storm costs a dictionary update per request, not a file."""

    def __init__(self, root: Path, *, flush_after_s: float = 5.0) -> None:
        self.root = Path(root)
        self.flush_after_s = flush_after_s
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, datetime, str, int], int] = {}
        self._oldest: float | None = None

    def record(self, deployment: str, status: int, slot: str | None = None) -> None:
        if not isinstance(deployment, str) or not _NAME.match(deployment):
            return  # not a name a partition may carry: nothing to attribute it to
        key = (deployment, datetime.now(UTC).replace(microsecond=0), slot or "", int(status))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            if self._oldest is None:
                self._oldest = time.monotonic()
            due = time.monotonic() - self._oldest >= self.flush_after_s
            if due:
                self._oldest = None  # one write per interval, however many requests fail meanwhile
        if due:  # the write happens off the request that noticed it was due
            threading.Thread(target=self.flush, name="mlops-lite-error-log", daemon=True).start()

    def flush(self) -> int:
        with self._lock:
            counts, self._counts, self._oldest = self._counts, {}, None
        by_deployment: dict[str, list[tuple[tuple[str, datetime, str, int], int]]] = {}
        for key, n in counts.items():
            by_deployment.setdefault(key[0], []).append((key, n))
        for deployment, items in by_deployment.items():
            table = pa.table({"deployment": [k[0] for k, _ in items], "at": [k[1] for k, _ in items],
                              "slot": [k[2] or None for k, _ in items], "status": [k[3] for k, _ in items],
                              "count": [n for _, n in items]}, schema=ERROR_SCHEMA)
            try:
                _write(self.root, deployment, items[0][0][1], table)
            except OSError:
                log.exception("could not write %d error counts of %s", len(items), deployment)
        return sum(counts.values())


def _partition(root: Path, deployment: str, at: datetime) -> Path:
    return root / f"deployment={deployment}" / f"date={at.strftime('%Y-%m-%d')}"


def _write(root: Path, deployment: str, at: datetime, table: pa.Table) -> Path:
    folder = _partition(root, deployment, at)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{uuid.uuid4().hex}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")  # readers glob *.parquet: never see a half file
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class LogStats:
    """Rows accepted, dropped (queue full), written; write errors and batches written."""

    logged: int
    dropped: int
    written: int
    write_errors: int
    batches: int
    queued: int


@dataclass
class _Entry:
    prediction: Prediction
    instances: list[dict[str, Any]]
    latency_s: float
    at: datetime


class PredictionLog:
    """Bounded, batched, off-the-request-path log of predictions (see the module doc)."""

    def __init__(self, root: Path, *, max_rows: int = 100_000, batch_rows: int = 1_000,
                 flush_interval_s: float = 1.0) -> None:
        if max_rows < 1 or batch_rows < 1 or flush_interval_s <= 0:
            raise InvalidInput("max_rows and batch_rows must be >= 1 and flush_interval_s > 0",
                               field="max_rows", expected="positive sizes")
        self.root = Path(root)
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self._queue: deque[_Entry] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._logged = self._dropped = self._written = self._errors = self._batches = 0
        self._flush_requested = 0  # generation counters: flush() waits until done >= requested
        self._flush_done = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mlops-lite-prediction-log", daemon=True)
        self._thread.start()

    # The request path ---------------------------------------------------------
    def record(self, prediction: Prediction, instances: list[dict[str, Any]], latency_s: float) -> bool:
        """Queue one request's rows; False (and counted as dropped) when the queue is full
        or the log is closed. Never raises, never blocks on I/O."""
        try:
            rows = len(instances)
            with self._cond:
                if self._closed or self._queued_rows + rows > self.max_rows:
                    self._dropped += rows
                    return False
                self._queue.append(_Entry(prediction, instances, latency_s, datetime.now(UTC)))
                self._queued_rows += rows
                self._logged += rows
                if self._queued_rows >= self.batch_rows:
                    self._cond.notify()
            return True
        except Exception:  # pragma: no cover - the log must never fail a request
            log.exception("prediction log: could not queue a request")
            return False

    # Control --------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued so far; True when it was written (or failed and counted)."""
        with self._cond:
            if not self._thread.is_alive():
                return not self._queue
            self._flush_requested += 1
            wanted = self._flush_requested
            self._cond.notify()
            return self._cond.wait_for(lambda: self._flush_done >= wanted, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking rows, write what is queued, stop the writer thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def stats(self) -> LogStats:
        with self._cond:
            return LogStats(logged=self._logged, dropped=self._dropped, written=self._written,
                            write_errors=self._errors, batches=self._batches, queued=self._queued_rows)

    # The writer thread ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.flush_interval_s
                while (not self._closed and self._flush_requested == self._flush_done
                       and self._queued_rows < self.batch_rows):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                entries = list(self._queue)
                self._queue.clear()
                self._queued_rows = 0
                closing = self._closed
                flush_gen = self._flush_requested
            if entries:
                self._write_entries(entries)
            with self._cond:
                self._flush_done = max(self._flush_done, flush_gen)
                self._cond.notify_all()
            if closing:
                return

    def _write_entries(self, entries: Sequence[_Entry]) -> None:
        groups: dict[tuple[str, str], list[_Entry]] = {}
        for entry in entries:
            groups.setdefault((entry.prediction.deployment, entry.at.strftime("%Y-%m-%d")), []).append(entry)
        for (deployment, _day), group in groups.items():
            rows = sum(len(e.instances) for e in group)
            try:
                table = _prediction_table(group)
                _write(self.root, deployment, group[0].at, table)
            except Exception:
                log.exception("prediction log: writing %d rows for deployment %r failed", rows, deployment)
                with self._cond:
                    self._errors += 1
                continue
            with self._cond:
                self._written += rows
                self._batches += 1


def _prediction_table(entries: Iterable[_Entry]) -> pa.Table:
    """Column by column per request (list repetition and C-level maps, not a Python
    loop per row): the writer thread shares the interpreter with the request path."""
    columns: dict[str, list[Any]] = {name: [] for name in PREDICTION_SCHEMA.names}
    features: dict[str, list[Any]] = {}
    encode = msgspec.json.Encoder(enc_hook=str).encode
    row = 0
    for entry in entries:
        p, instances = entry.prediction, entry.instances
        n = len(instances)
        for name, value in (("request_id", p.request_id), ("deployment", p.deployment), ("model", p.model),
                            ("version", p.version), ("digest", p.digest), ("at", entry.at),
                            ("latency_ms", entry.latency_s * 1000.0), ("slot", p.slot)):
            columns[name].extend([value] * n)
        columns["features"].extend(b.decode() for b in map(encode, instances))
        predictions = list(map(str, p.predictions[:n]))
        columns["prediction"].extend(predictions + [None] * (n - len(predictions)))
        probabilities = [float(probs[-1]) if probs else None for probs in p.probabilities[:n]]
        columns["probability"].extend(probabilities + [None] * (n - len(probabilities)))
        names = instances[0].keys() if n else ()
        for name in names:
            column = features.get(name)
            if column is None:
                column = features[name] = [None] * row
            column.extend([instance.get(name) for instance in instances])
        row += n
        for column in features.values():
            if len(column) < row:
                column.extend([None] * (row - len(column)))
    table = pa.table(columns, schema=PREDICTION_SCHEMA)
    for name, values in features.items():
        table = table.append_column(FEATURE_PREFIX + name, _feature_array(values))
    return table


_NUMERIC_KINDS = {int, float, type(None)}


def _feature_array(values: list[Any]) -> pa.Array:
    if set(map(type, values)) <= _NUMERIC_KINDS:
        return pa.array(values, type=pa.float64())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


class Feedback:
    """True labels for logged request ids, written as Parquet at once (no queue)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def record_feedback(self, deployment: str, labels: Sequence[tuple[str, int | str]]) -> int:
        """Write ``(request_id, label)`` pairs for ``deployment``; answers how many."""
        if not isinstance(deployment, str) or not _NAME.match(deployment):
            raise InvalidInput(f"bad deployment name {deployment!r}", field="deployment",
                               expected="letters, digits, '.', '_' or '-'")
        if not isinstance(labels, (list, tuple)) or not labels:
            raise InvalidInput("feedback needs at least one (request_id, label)", field="labels",
                               expected="a non-empty list of (request_id, label)")
        request_ids: list[str] = []
        values: list[str] = []
        for i, item in enumerate(labels):
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise InvalidInput(f"feedback item {i} is not a (request_id, label) pair",
                                   field=f"labels[{i}]", expected="a (request_id, label) pair")
            request_id, label = item
            if not isinstance(request_id, str) or not request_id.strip():
                raise InvalidInput(f"feedback item {i}: request_id must be a non-empty string",
                                   field=f"labels[{i}].request_id", expected="a request id string")
            if isinstance(label, bool) or not isinstance(label, (int, str)):
                raise InvalidInput(f"feedback item {i}: label must be an integer or a string",
                                   field=f"labels[{i}].label", expected="an integer or a string")
            request_ids.append(request_id)
            values.append(str(label))
        at = datetime.now(UTC)
        table = pa.table({"request_id": request_ids, "deployment": [deployment] * len(values),
                          "label": values, "at": [at] * len(values)}, schema=FEEDBACK_SCHEMA)
        _write(self.root, deployment, at, table)
        return len(values)


class Monitoring:
    """The monitoring facet: ``log`` (predictions), ``feedback``, ``query`` and ``stats``."""

    def __init__(self, home: Path, **log_options: Any) -> None:
        self.predictions_dir = Path(home) / "predictions"
        self.feedback_dir = Path(home) / "feedback"
        self.errors_dir = Path(home) / "errors"
        self.log = PredictionLog(self.predictions_dir, **log_options)
        self.errors = ErrorLog(self.errors_dir)
        self.feedback = Feedback(self.feedback_dir)
        self.alerts: Any = None  # set by the Platform (alerts live in the metadata store)
        self.facets: Any = None  # the Platform, set by it: a trace reads the deployment's lineage through it
        self.last_trigger: dict[str, float] = {}  # retrain debounce, per deployment

    def record(self, prediction: Prediction, instances: list[dict[str, Any]], latency_s: float) -> bool:
        return self.log.record(prediction, instances, latency_s)

    def record_feedback(self, deployment: str, labels: Sequence[tuple[str, int | str]]) -> int:
        return self.feedback.record_feedback(deployment, labels)

    def record_error(self, deployment: str, status: int, slot: str | None = None) -> None:
        """Count a failed request (never fails itself); windows turn counts into ``errors.rate``."""
        self.errors.record(deployment, status, slot)

    def trace(self, request_id: str) -> PredictionTrace:
        """One logged request: its deployment, slot, version, time, input rows, answers,
        feedback label, and the deployment's lineage then (see trace.py)."""
        if self.facets is None:
            raise BackendUnavailable("a trace needs the Platform's facets (set by the Platform)")
        return trace_prediction(self.facets, request_id)

    def flush(self, timeout: float = 30.0) -> bool:
        self.errors.flush()
        return self.log.flush(timeout)

    def stats(self) -> dict[str, int]:
        s = self.log.stats()
        return {"rows_logged": s.logged, "rows_dropped": s.dropped, "rows_written": s.written,
                "write_errors": s.write_errors, "batches": s.batches, "rows_queued": s.queued}

    def query(self, sql: str) -> pa.Table:
        """Run ``sql`` in DuckDB over the views ``predictions`` and ``feedback`` (Parquet,
        hive-partitioned by deployment and date; empty views when nothing is written yet)."""
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            for view, folder, schema in (("predictions", self.predictions_dir, PREDICTION_SCHEMA),
                                         ("feedback", self.feedback_dir, FEEDBACK_SCHEMA)):
                if folder.is_dir() and next(folder.glob("**/*.parquet"), None) is not None:
                    pattern = str(folder / "**" / "*.parquet").replace("'", "''")
                    con.execute(f"CREATE VIEW {view} AS SELECT * FROM "
                                f"read_parquet('{pattern}', hive_partitioning=true, union_by_name=true)")
                else:
                    con.register(f"{view}_empty", schema.empty_table())
                    con.execute(f"CREATE VIEW {view} AS SELECT *, NULL::DATE AS date FROM {view}_empty")
            try:
                return con.execute(sql).fetch_arrow_table()
            except duckdb.Error as exc:
                raise InvalidInput(f"monitoring query failed: {exc}", field="sql",
                                   expected="SQL over the views predictions and feedback") from exc
        finally:
            con.close()

    def close(self) -> None:
        self.errors.flush()
        self.log.close()
