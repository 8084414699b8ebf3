"""The prediction log and feedback labels, as Parquet under the home.

``PredictionLog.record`` (rows as dicts) and ``PredictionLog.record_columns`` (a
columnar batch: one numpy array per feature, the labels and probabilities as the
model answered them) run on the request path: they append to a bounded in-memory
queue and return at once. When the queue is full the request is
dropped from the log and counted, never blocked or failed. A background thread
writes batches (every ``batch_rows`` rows or ``flush_interval_s`` seconds, and
on close) to

    <root>/deployment=<name>/date=YYYY-MM-DD/part-<uuid>.parquet

A write failure is counted and logged and never reaches the request. Both kinds
of entry land in the same layout; a columnar batch becomes its Arrow columns with
whole-array operations (numpy, Arrow compute, one JSON encode per dtype), never a
dict per row, so the writer holds the interpreter briefly however many rows it
writes.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import chain, groupby
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_lite.crypto.keys import DataKey
from mlops_lite.errors import BackendUnavailable, InvalidInput
from mlops_lite.monitoring.trace import trace_prediction
from mlops_lite.records import DeploymentLineage, Prediction, PredictionTrace

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


# Columns whose values repeat within a file. The others (features, probabilities, each
# f_ column) are mostly distinct: a dictionary for them is built, found too large and
# thrown away, which cost as much as writing them.
_DICTIONARY_COLUMNS = ("request_id", "deployment", "model", "version", "digest", "prediction", "slot", "label",
                       "status")


def _write(root: Path, deployment: str, at: datetime, table: pa.Table) -> Path:
    folder = _partition(root, deployment, at)
    for level in (root, folder.parent, folder):  # each 0700 (mkdir's parents=True makes the missing ones 0755)
        level.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"part-{uuid.uuid4().hex}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")  # readers glob *.parquet: never see a half file
    options: dict[str, Any] = {}
    if "features" in table.column_names:
        # The JSON text is most of a file's bytes; zstd at level 1 makes it 20-30% smaller
        # than snappy for the same or less time (snappy stays for the rest).
        options["compression"] = {name: "zstd" if name == "features" else "snappy" for name in table.column_names}
        options["compression_level"] = {"features": 1}
    pq.write_table(table, tmp, use_dictionary=[c for c in _DICTIONARY_COLUMNS if c in table.column_names], **options)
    tmp.chmod(0o600)  # pyarrow creates it with the process's umask
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
    instances: Sequence[dict[str, Any]]  # empty for a columnar entry
    latency_s: float
    at: datetime
    rows: int = 0
    columns: dict[str, np.ndarray] | None = None  # a columnar entry: one [n] or [n, 1] array per feature
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None


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
            return self._queue_entry(_Entry(prediction, instances, latency_s, datetime.now(UTC), rows))
        except Exception:  # pragma: no cover - the log must never fail a request
            log.exception("prediction log: could not queue a request")
            return False

    def record_columns(self, prediction: Prediction, columns: Mapping[str, np.ndarray], latency_s: float, *,
                       labels: np.ndarray | None = None, probabilities: np.ndarray | None = None) -> bool:
        """Queue one columnar request: ``columns`` holds one array of ``[n]`` or ``[n, 1]``
        values per feature, in the model's input order (they are kept, not copied: the
        caller must not write to them afterwards); ``labels`` ``[n]`` and ``probabilities``
        ``[n, classes]`` are the model's answer (from ``prediction`` when not given). Written
        as the same rows ``record`` would write for ``{feature: value}`` dicts of them.
        False (and counted as dropped) when the queue is full or the log is closed."""
        rows = 0
        try:
            # On the request path (one-row requests run on the event loop): a dict copy and
            # the lengths only; shapes and dtypes are the writer's business.
            kept = dict(columns)
            sizes = set(map(len, kept.values()))
            rows = sizes.pop() if len(sizes) == 1 else 0
            if sizes or not kept:  # columns of different lengths: no rows to make of them
                raise ValueError(f"columns of different lengths: {sorted(set(map(len, kept.values())))}")
            if rows == 0:
                return True  # nothing to log
            if labels is not None and probabilities is not None and (prediction.predictions or prediction.probabilities):
                # Queued, the answer's tuples would be thousands of objects per request for the
                # garbage collector to walk on every full collection; the arrays say the same.
                prediction = replace(prediction, predictions=(), probabilities=())
            entry = _Entry(prediction, (), latency_s, datetime.now(UTC), rows, kept, labels, probabilities)
            return self._queue_entry(entry)
        except Exception:  # the log must never fail a request; what it could not take is counted
            log.exception("prediction log: could not queue a columnar request")
            with self._cond:
                self._dropped += rows
            return False

    def _queue_entry(self, entry: _Entry) -> bool:
        with self._cond:
            if self._closed or self._queued_rows + entry.rows > self.max_rows:
                self._dropped += entry.rows
                return False
            self._queue.append(entry)
            self._queued_rows += entry.rows
            self._logged += entry.rows
            if self._queued_rows >= self.batch_rows:
                self._cond.notify()
        return True

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
            try:
                tables = _group_tables(group)
            except Exception:
                log.exception("prediction log: %d rows for deployment %r could not be made a table",
                              sum(e.rows for e in group), deployment)
                with self._cond:
                    self._errors += 1
                continue
            for table in tables:
                try:
                    _write(self.root, deployment, group[0].at, table)
                except Exception:
                    log.exception("prediction log: writing %d rows for deployment %r failed", table.num_rows,
                                  deployment)
                    with self._cond:
                        self._errors += 1
                    continue
                with self._cond:
                    self._written += table.num_rows
                    self._batches += 1


_SLICE_ROWS = 256  # rows turned into columns at a stretch: about a millisecond of the interpreter
_PAUSE_S = 0.0002  # then the writer sleeps, so that the request path (the event loop) runs


def _group_tables(entries: list[_Entry]) -> list[pa.Table]:
    """One group's rows as one table, dict rows and each columnar feature layout alike;
    as a table each when their feature columns' types clash (a canary whose inputs differ
    in type, say): more files rather than rows lost.

    Built a slice of ~256 rows at a time with a short sleep between: a flush of a thousand
    one-row requests is ~5 ms of Python, and held in one stretch it stalled the event loop
    (whose requests then waited for the interpreter) once per flush."""
    rows = [e for e in entries if e.columns is None]
    layouts: dict[tuple[Any, ...], list[_Entry]] = {}
    for entry in entries:
        if entry.columns is not None:  # the same features with the same dtypes share a table
            layouts.setdefault((*entry.columns, *map(_DTYPE, entry.columns.values())), []).append(entry)
    tables: list[pa.Table] = []
    for build, kind in ((_prediction_table, rows), *((_columnar_table, batch) for batch in layouts.values())):
        for piece in _slices(kind):
            tables.append(build(piece))
            time.sleep(_PAUSE_S)
    if len(tables) > 1:
        try:
            return [pa.concat_tables(tables, promote_options="default")]
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return tables
    return tables


def _slices(entries: list[_Entry]) -> list[list[_Entry]]:
    """``entries`` in consecutive runs of at least ``_SLICE_ROWS`` rows (a request is never split)."""
    out: list[list[_Entry]] = []
    current: list[_Entry] = []
    rows = 0
    for entry in entries:
        current.append(entry)
        rows += entry.rows
        if rows >= _SLICE_ROWS:
            out.append(current)
            current, rows = [], 0
    if current:
        out.append(current)
    return out


def _prediction_table(entries: list[_Entry]) -> pa.Table:
    """The rows of dict entries. The writer thread shares the interpreter with the request
    path, so rows are turned into columns by C-level maps over all of them (an
    ``itemgetter`` per run of requests with the same features, then a transpose), and
    the JSON encodes run in bounded chunks, never in a Python loop per row and feature."""
    counts = np.fromiter((e.rows for e in entries), dtype=np.int64, count=len(entries))
    columns = _metadata(entries, counts)
    instances = list(chain.from_iterable(e.instances for e in entries))
    encode = msgspec.json.Encoder(enc_hook=str).encode
    columns["features"] = _concat_text([pa.array(list(map(encode, instances[start:start + _ENCODE_ROWS])),
                                                 type=pa.binary()).cast(pa.string())
                                        for start in range(0, len(instances), _ENCODE_ROWS)])
    predictions: list[Any] = []
    probabilities: list[Any] = []
    for entry in entries:
        p, n = entry.prediction, entry.rows
        answered = list(map(str, p.predictions[:n]))
        predictions += answered + [None] * (n - len(answered))
        positive = [float(probs[-1]) if probs else None for probs in p.probabilities[:n]]
        probabilities += positive + [None] * (n - len(positive))
    columns["prediction"] = pa.array(predictions, type=pa.string())
    columns["probability"] = pa.array(probabilities, type=pa.float64())
    table = pa.table(columns, schema=PREDICTION_SCHEMA)
    for name, values in _feature_lists(entries).items():
        table = table.append_column(FEATURE_PREFIX + name, _feature_array(values))
    return table


_ENCODE_ROWS = 2_048  # rows per JSON encode call: about a millisecond


def _concat_text(arrays: list[pa.Array]) -> pa.Array:
    if not arrays:
        return pa.array([], type=pa.string())
    return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)


def _metadata(entries: list[_Entry], counts: np.ndarray) -> dict[str, pa.Array]:
    """Each request's own columns (id, model, time, latency, slot), repeated over its rows."""
    index = pa.array(np.repeat(np.arange(len(entries), dtype=np.int32), counts))

    def repeated(values: list[Any], kind: pa.DataType) -> pa.Array:
        return pa.array(values, type=kind).take(index)

    columns: dict[str, pa.Array] = {}
    for name in ("request_id", "deployment", "model", "version", "digest"):
        columns[name] = repeated([getattr(e.prediction, name) for e in entries], pa.string())
    columns["at"] = repeated([e.at for e in entries], PREDICTION_SCHEMA.field("at").type)
    columns["latency_ms"] = pa.array(np.repeat(np.array([e.latency_s * 1000.0 for e in entries]), counts),
                                     type=pa.float64())
    columns["slot"] = repeated([e.prediction.slot for e in entries], pa.string())
    return columns


def _feature_lists(entries: list[_Entry]) -> dict[str, list[Any]]:
    """Each feature's values over all rows, in row order: a request's features are the keys
    of its first row (missing ones None), features it lacks are None for its rows."""
    features: dict[str, list[Any]] = {}
    filled = 0
    for names, run in groupby(entries, key=lambda e: tuple(e.instances[0]) if e.rows else ()):
        rows = list(chain.from_iterable(e.instances for e in run))
        if names:
            getter = itemgetter(*names)
            try:
                values = list(map(getter, rows)) if len(names) > 1 else [(getter(row),) for row in rows]
            except KeyError:  # a row without some of its request's features: None there
                values = [tuple(row.get(name) for name in names) for row in rows]
            for name, column in zip(names, zip(*values, strict=True), strict=True):
                features.setdefault(name, [None] * filled).extend(column)
        filled += len(rows)
        for feature_column in features.values():
            if len(feature_column) < filled:
                feature_column.extend([None] * (filled - len(feature_column)))
    return features


_DTYPE = attrgetter("dtype")
_NUMERIC_KINDS = {int, float, type(None)}
_NUMERIC_DTYPES = "iuf"  # numpy kinds that the row path would see as int or float


def _columnar_table(entries: list[_Entry]) -> pa.Table:
    """The rows of columnar entries of one feature layout, as ``_prediction_table`` would
    make them from ``{feature: value}`` dicts, without a Python step per row: the
    metadata of each request is repeated by ``take``; numbers are JSON-encoded a whole
    dtype at a time and cut and joined into each row's JSON by Arrow."""
    counts = np.fromiter((e.rows for e in entries), dtype=np.int64, count=len(entries))
    n = int(counts.sum())
    columns = _metadata(entries, counts)
    names = list(entries[0].columns or ())
    values = dict(zip(names, map(_flat, _by_feature(names, entries)), strict=True))
    columns["features"] = _json_objects(names, values, n)
    columns["prediction"] = _labels_text(entries)
    columns["probability"] = _positive_probability(entries)
    table = pa.table(columns, schema=PREDICTION_SCHEMA)
    for name in names:
        column = values[name]
        if column.dtype.kind in _NUMERIC_DTYPES:
            typed = pa.array(column.astype(np.float64, copy=False), type=pa.float64())
        else:
            typed = _feature_array(column.tolist())
        table = table.append_column(FEATURE_PREFIX + name, typed)
    return table


def _by_feature(names: list[str], entries: list[_Entry]) -> list[list[np.ndarray]]:
    """Each feature's arrays across ``entries``, by a C-level map and transpose rather than
    a loop over the entries per feature (a flush may hold thousands of one-row requests)."""
    dicts = [e.columns for e in entries if e.columns is not None]
    if len(names) == 1:
        return [[d[names[0]] for d in dicts]]
    return [list(arrays) for arrays in zip(*map(itemgetter(*names), dicts), strict=True)]


def _flat(arrays: list[np.ndarray]) -> np.ndarray:
    """One feature's values over entries as one 1-D array ([n] and [n, 1] alike)."""
    try:
        return _concat(arrays).reshape(-1)
    except ValueError:  # [n] arrays beside [n, 1] ones
        return np.concatenate([np.asarray(a).reshape(-1) for a in arrays])


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _labels_text(entries: list[_Entry]) -> pa.Array:
    """The labels as the row path writes them (``str`` of each; null past the answers)."""
    labels = [np.asarray(e.labels if e.labels is not None else e.prediction.predictions).reshape(-1) for e in entries]
    if not all(len(a) == e.rows for a, e in zip(labels, entries, strict=True)):
        return pa.concat_arrays([_padded(_text(a[:e.rows]), e.rows) for a, e in zip(labels, entries, strict=True)])
    return _text(_concat(labels))


def _text(labels: np.ndarray) -> pa.Array:
    if labels.dtype.kind in "iu":  # Arrow's integer text is str()'s
        return pa.array(labels).cast(pa.string())
    return pa.array(list(map(str, labels.tolist())), type=pa.string())


def _padded(array: pa.Array, rows: int) -> pa.Array:
    if len(array) >= rows:
        return array
    return pa.concat_arrays([array, pa.nulls(rows - len(array), array.type)])


def _positive_probability(entries: list[_Entry]) -> pa.Array:
    """The last class's probability per row (null without probabilities), as the row path."""
    lasts: list[np.ndarray | None] = []
    for entry in entries:
        probabilities = None if entry.probabilities is None else np.asarray(entry.probabilities)
        if probabilities is None:
            given = entry.prediction.probabilities
            probabilities = np.asarray(given, dtype=np.float64) if given and all(given) else None
        if probabilities is None or probabilities.ndim != 2 or probabilities.shape[1] == 0:
            lasts.append(None)
        else:
            lasts.append(probabilities[:entry.rows, -1])
    if all(last is not None and len(last) == e.rows for last, e in zip(lasts, entries, strict=True)):
        return pa.array(_concat([last for last in lasts if last is not None]).astype(np.float64))
    return pa.concat_arrays([pa.nulls(e.rows, pa.float64()) if last is None
                             else _padded(pa.array(last.astype(np.float64)), e.rows)
                             for last, e in zip(lasts, entries, strict=True)])


_ENCODE_VALUES = 32_768  # numbers per JSON encode call: about a millisecond


def _json_objects(names: list[str], values: dict[str, np.ndarray], n: int) -> pa.Array:
    """Each row's ``{"feature": value, ...}`` exactly as msgspec encodes the row's dict.

    Numbers of one dtype are encoded in one call (a JSON array of every value of those
    features), cut at the commas by Arrow and joined per row with the keys between:
    numbers hold no commas. Other values (text) are encoded one by one, still in C."""
    if not names:
        return pa.array(["{}"] * n, type=pa.string())
    encode = msgspec.json.Encoder(enc_hook=str).encode
    pieces: dict[str, pa.Array] = {}
    by_dtype: dict[str, list[str]] = {}
    for name in names:
        column = values[name]
        if column.dtype.kind in _NUMERIC_DTYPES:
            by_dtype.setdefault(column.dtype.str, []).append(name)
        else:
            pieces[name] = pa.array(list(map(encode, column.tolist())), type=pa.binary()).cast(pa.string())
    for group in by_dtype.values():
        block = values[group[0]] if len(group) == 1 else np.concatenate([values[name] for name in group])
        cuts = []
        for start in range(0, len(block), _ENCODE_VALUES):  # one C call holds the interpreter: keep each short
            text = encode(block[start:start + _ENCODE_VALUES].tolist())[1:-1]
            cuts.append(pc.split_pattern(pa.array([text], type=pa.binary()).cast(pa.string()), ",").flatten())
        cut = cuts[0] if len(cuts) == 1 else pa.concat_arrays(cuts)
        if len(cut) != n * len(group):
            raise ValueError(f"{len(cut)} encoded numbers for {n} rows of {len(group)} features")
        for offset, name in enumerate(group):
            pieces[name] = cut.slice(offset * n, n)
    parts: list[Any] = []
    for position, name in enumerate(names):
        parts.append(("{" if position == 0 else ",") + encode(name).decode() + ":")
        parts.append(pieces[name])
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


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

    def __init__(self, home: Path, *, lineage: Callable[[str, datetime], DeploymentLineage] | None = None,
                 log_key: DataKey | None = None, **log_options: Any) -> None:
        """``lineage(deployment, moment)`` is what a trace cites as having served then (the
        Platform passes its deployments' lineage); without it ``trace`` is unavailable.
        ``log_key``: the data key the prediction log, feedback and error files are
        encrypted under (None: plaintext, a home without encryption)."""
        self.log_key = log_key
        self.predictions_dir = Path(home) / "predictions"
        self.feedback_dir = Path(home) / "feedback"
        self.errors_dir = Path(home) / "errors"
        self.log = PredictionLog(self.predictions_dir, **log_options)
        self.errors = ErrorLog(self.errors_dir)
        self.feedback = Feedback(self.feedback_dir)
        self._lineage = lineage

    def record(self, prediction: Prediction, instances: list[dict[str, Any]], latency_s: float) -> bool:
        return self.log.record(prediction, instances, latency_s)

    def record_columns(self, prediction: Prediction, columns: Mapping[str, np.ndarray], latency_s: float, *,
                       labels: np.ndarray | None = None, probabilities: np.ndarray | None = None) -> bool:
        """A columnar request's rows (see ``PredictionLog.record_columns``)."""
        return self.log.record_columns(prediction, columns, latency_s, labels=labels, probabilities=probabilities)

    def record_feedback(self, deployment: str, labels: Sequence[tuple[str, int | str]]) -> int:
        return self.feedback.record_feedback(deployment, labels)

    def record_error(self, deployment: str, status: int, slot: str | None = None) -> None:
        """Count a failed request (never fails itself); windows turn counts into ``errors.rate``."""
        self.errors.record(deployment, status, slot)

    def trace(self, request_id: str) -> PredictionTrace:
        """One logged request: its deployment, slot, version, time, input rows, answers,
        feedback label, and the deployment's lineage then (see trace.py)."""
        if self._lineage is None:
            raise BackendUnavailable("a trace needs the deployments' lineage, which this monitoring facet was "
                                     "built without")
        return trace_prediction(self, self._lineage, request_id)

    def flush(self, timeout: float = 30.0) -> bool:
        self.errors.flush()
        return self.log.flush(timeout)

    def stats(self) -> dict[str, int]:
        s = self.log.stats()
        return {"rows_logged": s.logged, "rows_dropped": s.dropped, "rows_written": s.written,
                "write_errors": s.write_errors, "batches": s.batches, "rows_queued": s.queued}

    def query(self, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> pa.Table:
        """Run ``sql`` in DuckDB over the views ``predictions`` and ``feedback`` (Parquet,
        hive-partitioned by deployment and date; empty views when nothing is written yet).
        At most ``max_rows`` rows are read (batch by batch); a query running past
        ``timeout_s`` is interrupted (InvalidInput, ``details["rule"]`` ``time_limit``)."""
        import duckdb

        con = duckdb.connect(":memory:")
        timer = threading.Timer(timeout_s, con.interrupt) if timeout_s is not None else None
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
                if timer is not None:
                    timer.daemon = True
                    timer.start()
                cursor = con.execute(sql)
                if max_rows is None:
                    return cursor.fetch_arrow_table()
                reader = cursor.fetch_record_batch(max(1, min(max_rows, 65_536)))
                batches, got = [], 0
                for batch in reader:
                    if got >= max_rows:
                        break
                    batches.append(batch.slice(0, max_rows - got))
                    got += batches[-1].num_rows
                return pa.Table.from_batches(batches, schema=reader.schema)
            except duckdb.InterruptException as exc:
                raise InvalidInput(f"the monitoring query ran past its time limit of {timeout_s} s and was stopped",
                                   field="sql", expected="a faster query", details={"rule": "time_limit"}) from exc
            except duckdb.Error as exc:
                raise InvalidInput(f"monitoring query failed: {exc}", field="sql",
                                   expected="SQL over the views predictions and feedback") from exc
        finally:
            if timer is not None:
                timer.cancel()
            con.close()

    def close(self) -> None:
        self.errors.flush()
        self.log.close()
