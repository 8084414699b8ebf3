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
whole-array operations (numpy, Arrow compute), never a dict per row, so the writer
holds the interpreter briefly however many rows it writes. Each feature is stored
once, as its typed column ``f_<name>``.
``Feedback`` writes true labels beside it; ``Monitoring.query`` runs DuckDB
over both as the views ``predictions`` and ``feedback``.

With a log key (an encrypted home) every prediction, feedback and error file is
Parquet encrypted by DuckDB (AES-GCM modular encryption, footer included) under it,
written as a hidden temp file and renamed: no plaintext byte of a row reaches the
disk (``LogFiles``). Every reader opens its DuckDB connection with ``log_connection``
and names the files with ``log_scan``. ``Monitoring.encrypt_existing`` converts a
plaintext log in place; ``apply_retention`` drops old date partitions; ``erase_rows``
and ``rows_where`` serve erasure and access requests.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import chain, groupby
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_lite.crypto.keys import DataKey, fsync_path
from mlops_lite.errors import BackendUnavailable, IntegrityError, InvalidInput
from mlops_lite.monitoring.trace import trace_prediction
from mlops_lite.records import DeploymentLineage, Prediction, PredictionTrace, TrafficWindow

log = logging.getLogger("mlops_lite.monitoring")

PREDICTION_SCHEMA = pa.schema([
    ("request_id", pa.string()),
    ("deployment", pa.string()),
    ("model", pa.string()),
    ("version", pa.string()),
    ("digest", pa.string()),
    ("at", pa.timestamp("us", tz="UTC")),
    ("latency_ms", pa.float64()),
    ("prediction", pa.string()),    # the label, as text (labels may be ints or strings)
    ("probability", pa.float64()),  # of the positive (last) class; null without probabilities
    ("slot", pa.string()),          # primary | canary | shadow (a shadow row shares its request id)
])
# Besides these, each feature is a typed column of its own, ``f_<name>`` (DOUBLE for
# numbers, VARCHAR otherwise), so that monitoring scans columns, not JSON. Files of
# models with other features differ only in those columns; readers union by name.
# Files written before this release also hold ``features``, the JSON of the instance
# (every value twice); the ``predictions`` view of ``Monitoring.query`` still answers a
# ``features`` column, made from the typed columns where a file has no JSON.
FEATURE_PREFIX = "f_"
LEGACY_FEATURES = "features"

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

    def __init__(self, root: Path, *, flush_after_s: float = 5.0, files: LogFiles | None = None) -> None:
        self.root = Path(root)
        self.files = files or _PLAINTEXT
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
                _write(self.root, deployment, items[0][0][1], table, self.files)
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


def _write(root: Path, deployment: str, at: datetime, table: pa.Table, files: LogFiles | None = None) -> Path:
    folder = _partition(root, deployment, at)
    for level in (root, folder.parent, folder):  # each 0700 (mkdir's parents=True makes the missing ones 0755)
        level.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"part-{uuid.uuid4().hex}.parquet"
    (files or _PLAINTEXT).write(table, path)
    return path


ENCRYPTED_FOOTER = b"PARE"  # the last 4 bytes of a Parquet file with an encrypted footer (PAR1: plaintext)


def is_encrypted_file(path: Path) -> bool:
    """Whether the Parquet file at ``path`` has an encrypted footer (its last 4 bytes)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            return handle.read(4) == ENCRYPTED_FOOTER
    except OSError:  # shorter than 4 bytes: not Parquet at all, and the reader says so
        return False


def _key_name(key: DataKey) -> str:
    return "log_" + re.sub(r"[^A-Za-z0-9_]", "_", key.id)


def _add_key(con: Any, key: DataKey) -> None:
    """Give a DuckDB connection the log key (under a name made of its id). The statement
    holds the key: an error is re-raised without its text."""
    secret = base64.b64encode(key.key).decode()
    try:
        con.execute(f"PRAGMA add_parquet_key('{_key_name(key)}', '{secret}')")
    except Exception:
        raise IntegrityError(f"DuckDB refused the prediction log key {key.id}") from None


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


class LogFiles:
    """How the log's Parquet files are written: plaintext by pyarrow, or, with a log key,
    encrypted by DuckDB's Parquet modular encryption (AES-GCM, footer and columns) under
    it. Every file is written as a hidden temp file in its folder, made 0600 and renamed
    into place: a reader (globbing ``*.parquet``) never sees half a file, and with a key no
    byte of the plaintext reaches the disk."""

    def __init__(self, key: DataKey | None = None) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._con: Any = None
        self._con_key: DataKey | None = None

    def write(self, table: pa.Table, path: Path, *, sync: bool = False) -> None:
        """``table`` as the file ``path`` (replaced when there); ``sync``: fsync the file
        and its folder before answering (a migration's crash safety)."""
        tmp = path.with_name(f".{path.name}.tmp")  # readers glob *.parquet: never see a half file
        try:
            key = self.key
            if key is None:
                _write_plaintext(table, tmp)
            else:
                self._write_encrypted(table, tmp, key)
            os.chmod(tmp, 0o600)  # both writers create it with the process's umask
            if sync:
                fsync_path(tmp)
            os.replace(tmp, path)
            if sync:
                fsync_path(path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _write_encrypted(self, table: pa.Table, tmp: Path, key: DataKey) -> None:
        with self._lock:
            con = self._connection(key)
            # A stream of batches rather than the table: DuckDB then reads it without going
            # back to pyarrow's Python layer (measured: less time off the request path).
            con.register("log_batch", table.to_reader())
            try:
                con.execute(f"COPY (SELECT * FROM log_batch) TO '{_quoted(tmp)}' "
                            f"(FORMAT parquet, ENCRYPTION_CONFIG {{footer_key: '{_key_name(key)}'}})")
            finally:
                con.unregister("log_batch")

    def _connection(self, key: DataKey) -> Any:
        if self._con is None or self._con_key != key:
            import duckdb

            from mlops_lite.metadata.store import load_crypto

            if self._con is not None:
                self._con.close()
            self._con = None
            con = duckdb.connect(":memory:")
            try:
                load_crypto(con)  # DuckDB writes encrypted Parquet only with OpenSSL (httpfs) loaded
                # One thread: a file of a few thousand rows gains nothing from more, and they
                # would take cores from the request path (half the CPU time, measured).
                con.execute("SET threads = 1")
                _add_key(con, key)
            except BaseException:
                con.close()
                raise
            self._con, self._con_key = con, key
        return self._con

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


_PLAINTEXT = LogFiles()


def _write_plaintext(table: pa.Table, tmp: Path) -> None:
    options: dict[str, Any] = {}
    if LEGACY_FEATURES in table.column_names:  # an old file rewritten (erasure) keeps its JSON compact
        options["compression"] = {name: "zstd" if name == LEGACY_FEATURES else "snappy"
                                  for name in table.column_names}
        options["compression_level"] = {LEGACY_FEATURES: 1}
    pq.write_table(table, tmp, use_dictionary=[c for c in _DICTIONARY_COLUMNS if c in table.column_names], **options)


def log_connection(log_key: DataKey | None) -> Any:
    """A DuckDB connection able to read the log (the key added when there is one). Every
    reader of the log opens its connection here and names the files with ``log_scan``."""
    import duckdb

    con = duckdb.connect(":memory:")
    if log_key is not None:
        try:
            _add_key(con, log_key)
        except BaseException:
            con.close()
            raise
    return con


def log_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("**/*.parquet")) if folder.is_dir() else []


def log_scan(folder: Path | Sequence[Path], log_key: DataKey | None, *, hive: bool = True) -> str | None:
    """The FROM clause reading every Parquet file under ``folder`` (or the files given)
    by name-union, for a connection from ``log_connection``; None when there is none.

    Encrypted files are read with the key and plaintext ones without it (DuckDB refuses
    either kind read as the other), so a log part-way through ``encrypt_existing`` reads
    whole. An encrypted file without a key is an IntegrityError naming the folder."""
    paths = log_files(folder) if isinstance(folder, Path) else list(folder)
    if not paths:
        return None
    encrypted = [p for p in paths if is_encrypted_file(p)]
    plain = [p for p in paths if p not in set(encrypted)] if encrypted else paths
    if encrypted and log_key is None:
        raise IntegrityError(f"the prediction log under {encrypted[0].parent} is encrypted and this home "
                             f"has no log key to read it with")
    options = ("hive_partitioning=true, " if hive else "hive_partitioning=false, ") + "union_by_name=true"
    # All files of the kind this home writes: the glob rather than a long list (a file
    # written meanwhile is of that kind too).
    pattern = f"'{_quoted(folder / '**' / '*.parquet')}'" if isinstance(folder, Path) else None
    uniform = pattern is not None and (not plain if log_key is not None else not encrypted)
    scans = []
    if encrypted:
        assert log_key is not None
        files = pattern if uniform and pattern else _path_list(encrypted)
        scans.append(f"SELECT * FROM read_parquet({files}, {options}, "
                     f"encryption_config={{footer_key: '{_key_name(log_key)}'}})")
    if plain:
        files = pattern if uniform and pattern else _path_list(plain)
        scans.append(f"SELECT * FROM read_parquet({files}, {options})")
    return f"({' UNION ALL BY NAME '.join(scans)})"


def _path_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(f"'{_quoted(p)}'" for p in paths) + "]"


_TAMPERED = re.compile(r"AES tag|encrypt|not a parquet|magic|corrupt|Invalid Parquet|footer", re.IGNORECASE)


def unreadable(exc: Exception, what: str) -> IntegrityError | None:
    """An IntegrityError for a DuckDB error that says a log file does not verify or is no
    Parquet (changed on disk, the wrong key); None for any other error."""
    text = str(exc)
    if not _TAMPERED.search(text):
        return None
    return IntegrityError(f"{what}: a file of the prediction log does not verify (changed on disk, cut short "
                          f"or under another key): {text.splitlines()[0]}")


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
                 flush_interval_s: float = 1.0, files: LogFiles | None = None) -> None:
        if max_rows < 1 or batch_rows < 1 or flush_interval_s <= 0:
            raise InvalidInput("max_rows and batch_rows must be >= 1 and flush_interval_s > 0",
                               field="max_rows", expected="positive sizes")
        self.root = Path(root)
        self.files = files or _PLAINTEXT
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
                    _write(self.root, deployment, group[0].at, table, self.files)
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
    ``itemgetter`` per run of requests with the same features, then a transpose), never
    in a Python loop per row and feature."""
    counts = np.fromiter((e.rows for e in entries), dtype=np.int64, count=len(entries))
    columns = _metadata(entries, counts)
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
    metadata of each request is repeated by ``take``; each feature becomes its typed
    column whole."""
    counts = np.fromiter((e.rows for e in entries), dtype=np.int64, count=len(entries))
    columns = _metadata(entries, counts)
    names = list(entries[0].columns or ())
    values = dict(zip(names, map(_flat, _by_feature(names, entries)), strict=True))
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


def _feature_array(values: list[Any]) -> pa.Array:
    if set(map(type, values)) <= _NUMERIC_KINDS:
        return pa.array(values, type=pa.float64())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


class Feedback:
    """True labels for logged request ids, written as Parquet at once (no queue)."""

    def __init__(self, root: Path, files: LogFiles | None = None) -> None:
        self.root = Path(root)
        self.files = files or _PLAINTEXT

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
        _write(self.root, deployment, at, table, self.files)
        return len(values)


ENCRYPTED_BATCH_ROWS = 10_000  # rows per write of an encrypted log (plaintext: PredictionLog's batch_rows)


class Monitoring:
    """The monitoring facet: ``log`` (predictions), ``feedback``, ``query`` and ``stats``."""

    def __init__(self, home: Path, *, lineage: Callable[[str, datetime], DeploymentLineage] | None = None,
                 log_key: DataKey | None = None, **log_options: Any) -> None:
        """``lineage(deployment, moment)`` is what a trace cites as having served then (the
        Platform passes its deployments' lineage); without it ``trace`` is unavailable.
        ``log_key``: the data key the prediction log, feedback and error files are
        encrypted under (None: plaintext, a home without encryption)."""
        self.log_key = log_key
        self.files = LogFiles(log_key)
        if log_key is not None:
            # DuckDB's writer costs about a millisecond a file beside ~0.4 us a row (pyarrow's:
            # a tenth of that a file): bigger files keep the encrypted log's writer as cheap
            # as the plaintext one. flush_interval_s still bounds how long a row waits.
            log_options.setdefault("batch_rows", ENCRYPTED_BATCH_ROWS)
        self.predictions_dir = Path(home) / "predictions"
        self.feedback_dir = Path(home) / "feedback"
        self.errors_dir = Path(home) / "errors"
        self.log = PredictionLog(self.predictions_dir, files=self.files, **log_options)
        self.errors = ErrorLog(self.errors_dir, files=self.files)
        self.feedback = Feedback(self.feedback_dir, files=self.files)
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
        hive-partitioned by deployment and date; empty views when nothing is written yet)
        and ``errors`` (failed requests counted per deployment, second, slot and HTTP
        status: ``ERROR_SCHEMA``; the counts so far are written first).
        At most ``max_rows`` rows are read (batch by batch); a query running past
        ``timeout_s`` is interrupted (InvalidInput, ``details["rule"]`` ``time_limit``).
        A log file that does not verify (changed on disk, the wrong key) is an
        IntegrityError.

        ``predictions.features`` is the JSON of each row's features: as stored in files
        written before the typed columns became the only copy, otherwise made from the
        row's non-null ``f_`` columns (numbers as the DOUBLE they are stored as)."""
        self.errors.flush()  # failed requests counted so far reach the ``errors`` view
        return self._select(sql, [], max_rows=max_rows, timeout_s=timeout_s)

    def windows(self, *, count: int = 12, width_s: int = 300, until: datetime | str | None = None,
                deployment: str | None = None) -> list[TrafficWindow]:
        """Requests, failures and p50/p99 latency per window, per deployment and slot (see
        ``mlops_lite.monitoring.windows``): figures only, no row's content."""
        from mlops_lite.monitoring.windows import traffic_windows

        self.errors.flush()
        return traffic_windows(lambda sql: self._select(sql, []), count=count, width_s=width_s, until=until,
                               deployment=deployment)

    def rows_where(self, where_sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Every logged prediction row matching the SQL predicate ``where_sql`` over the
        ``predictions`` view's columns (``?`` bound to ``params``), with the latest feedback
        label of its request as ``feedback_label``: what the log holds of a data subject,
        for an access request."""
        with log_connection(None) as con:
            columns = _referenced_columns(con, where_sql, field="sql")
        return self._select(
            f"SELECT p.*, f.label AS feedback_label FROM (SELECT * FROM predictions WHERE coalesce(({where_sql}), "
            "false)) p LEFT JOIN (SELECT request_id, deployment, last(label ORDER BY \"at\") AS label FROM feedback "
            "GROUP BY ALL) f ON p.request_id = f.request_id AND p.deployment = f.deployment "
            "ORDER BY p.\"at\", p.request_id", list(params), columns=columns)

    def _select(self, sql: str, params: list[Any], *, max_rows: int | None = None,
                timeout_s: float | None = None, columns: Sequence[str] = ()) -> pa.Table:
        """``sql`` over the views; ``columns``: ones ``predictions`` answers as NULL where no
        file has them (a predicate naming a feature no model was served)."""
        import duckdb

        con = log_connection(self.log_key)
        timer = threading.Timer(timeout_s, con.interrupt) if timeout_s is not None else None
        try:
            try:
                for view, folder, schema in (("predictions", self.predictions_dir, PREDICTION_SCHEMA),
                                             ("feedback", self.feedback_dir, FEEDBACK_SCHEMA),
                                             ("errors", self.errors_dir, ERROR_SCHEMA)):
                    # The error files carry their deployment as a column (no hive partitions).
                    source = log_scan(folder, self.log_key, hive=view != "errors")
                    if source is None:
                        con.register(f"{view}_empty", schema.empty_table())
                        source = f"(SELECT *, NULL::DATE AS date FROM {view}_empty)"
                    if view == "predictions":
                        source = _with_features(con, source, columns)
                    con.execute(f"CREATE VIEW {view} AS SELECT * FROM {source}")
            except duckdb.Error as exc:
                damaged = unreadable(exc, "monitoring query")
                if damaged is not None:
                    raise damaged from exc
                raise
            try:
                if timer is not None:
                    timer.daemon = True
                    timer.start()
                cursor = con.execute(sql, params)
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
                damaged = unreadable(exc, "monitoring query")
                if damaged is not None:
                    raise damaged from exc
                raise InvalidInput(f"monitoring query failed: {exc}", field="sql",
                                   expected="SQL over the views predictions and feedback") from exc
        finally:
            if timer is not None:
                timer.cancel()
            con.close()

    # Retention, erasure and encryption of what is stored --------------------------
    def _roots(self) -> tuple[Path, Path, Path]:
        return self.predictions_dir, self.feedback_dir, self.errors_dir

    def apply_retention(self, days: int, *, now: datetime | None = None) -> int:
        """Remove the prediction, feedback and error files of every date partition older
        than ``days`` days (a partition dated before ``now``'s date minus ``days``), whole
        folders at a time; answers how many files were removed."""
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise InvalidInput(f"retention days must be a whole number >= 0, not {days!r}", field="days",
                               expected="an integer >= 0")
        cutoff = (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=days)
        removed = 0
        for root in self._roots():
            if not root.is_dir():
                continue
            for folder in sorted(root.glob("deployment=*/date=*")):
                try:
                    day = date.fromisoformat(folder.name.removeprefix("date="))
                except ValueError:
                    continue  # not a partition this log wrote
                if day < cutoff and folder.is_dir():
                    removed += sum(1 for _ in folder.glob("*.parquet"))
                    shutil.rmtree(folder)
        return removed

    def erase_rows(self, where_sql: str, params: Sequence[Any] = ()) -> int:
        """Remove every prediction row matching the SQL predicate ``where_sql`` over a log
        file's own columns (``?`` bound to ``params``; e.g. ``"f_customer_id" = ?``; a column
        a file lacks is NULL there), and every feedback row of those rows' requests (or
        matching the predicate itself). Each file holding such rows is rewritten without
        them (encrypted as the log is, atomically: temp file, fsync, rename) or removed
        when nothing is left. Answers the rows removed, predictions and feedback together.
        InvalidInput (field ``where_sql``) when the predicate does not parse or names only
        columns no prediction or feedback file has."""
        self.flush()
        con = log_connection(self.log_key)
        try:
            columns = _referenced_columns(con, where_sql)
            removed, request_ids, seen = self._erase_in(con, self.predictions_dir, where_sql, list(params),
                                                        columns, None)
            extra, _, seen_feedback = self._erase_in(con, self.feedback_dir, where_sql, list(params), columns,
                                                     request_ids)
        finally:
            con.close()
        if columns and not (seen | seen_feedback) & set(columns):
            raise InvalidInput(f"the predicate {where_sql!r} names columns no prediction or feedback file has",
                               field="where_sql", expected="a SQL predicate over the log's columns, e.g. "
                               "\"f_customer_id\" = ?")
        return removed + extra

    def _erase_in(self, con: Any, root: Path, where_sql: str, params: list[Any], columns: list[str],
                  request_ids: list[str] | None) -> tuple[int, list[str], set[str]]:
        import duckdb

        removed, erased_ids, seen = 0, [], set()
        for path in log_files(root):
            scan = log_scan([path], self.log_key, hive=False)
            try:
                own = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]
                seen.update(own)
                missing = [c for c in columns if c not in own]
                source = scan if not missing else "(SELECT *, " + ", ".join(
                    f"{_from_json(c, own)} AS {_quoted_ident(c)}" for c in missing) + f" FROM {scan})"
                condition, args = f"coalesce(({where_sql}), false)", list(params)
                if request_ids:
                    condition = f"({condition} OR list_contains(?, request_id))"
                    args = [*args, request_ids]
                hit = con.execute(f"SELECT count(*) FROM {source} WHERE {condition}", args).fetchone()
                if not hit or not hit[0]:
                    continue
                if request_ids is None:
                    erased_ids += [r[0] for r in con.execute(
                        f"SELECT DISTINCT request_id FROM {source} WHERE {condition} AND request_id IS NOT NULL",
                        args).fetchall()]
                kept = con.execute(f"SELECT {', '.join(map(_quoted_ident, own))} FROM {source} "
                                   f"WHERE NOT {condition}", args).fetch_arrow_table()
            except duckdb.Error as exc:
                damaged = unreadable(exc, f"erasure in {path.parent}")
                if damaged is not None:
                    raise damaged from exc
                raise InvalidInput(f"the predicate {where_sql!r} failed on {path.name}: {exc}", field="where_sql",
                                   expected="a SQL predicate over the log's columns") from exc
            if kept.num_rows:
                self.files.write(kept, path, sync=True)
            else:
                path.unlink()
                fsync_path(path.parent)
            removed += int(hit[0])
        return removed, erased_ids, seen

    def encrypt_existing(self, log_key: DataKey) -> int:
        """Encrypt a plaintext log in place under ``log_key`` (a home made before the log
        was encrypted): each plaintext prediction, feedback and error file is rewritten as
        an encrypted temp file, fsynced and renamed over it; a file already encrypted (its
        footer magic) is left as it is, so a run cut short is finished by the next one.
        Leftover temp files of interrupted writes are removed (they may be plaintext).
        The JSON ``features`` copy of old files goes where typed columns hold the values.
        Answers how many files were converted; later writes here are encrypted."""
        self.flush()
        self.log_key = log_key
        self.files.key = log_key
        converted = 0
        for root in self._roots():
            if not root.is_dir():
                continue
            for leftover in root.glob("**/.*.tmp"):
                leftover.unlink(missing_ok=True)
            for path in log_files(root):
                if is_encrypted_file(path):
                    continue
                table = pq.ParquetFile(path).read()
                if LEGACY_FEATURES in table.column_names and any(
                        name.startswith(FEATURE_PREFIX) for name in table.column_names):
                    table = table.drop_columns([LEGACY_FEATURES])
                self.files.write(table, path, sync=True)
                converted += 1
        return converted

    def close(self) -> None:
        self.errors.flush()
        self.log.close()
        self.files.close()


def _ident(name: str) -> str:
    return name.replace('"', '""')


def _quoted_ident(name: str) -> str:
    return '"' + _ident(name) + '"'


def _referenced_columns(con: Any, where_sql: str, *, field: str = "where_sql") -> list[str]:
    """The column names a SQL predicate refers to (from DuckDB's parse tree)."""
    if not isinstance(where_sql, str) or not where_sql.strip():
        raise InvalidInput("the predicate is empty", field=field, expected="a SQL predicate over the log's columns")
    serialized = con.execute("SELECT json_serialize_sql(?)", [f"SELECT 1 WHERE {where_sql}"]).fetchone()
    tree = json.loads(serialized[0]) if serialized else {}
    if tree.get("error"):
        raise InvalidInput(f"the predicate {where_sql!r} does not parse: {tree.get('error_message', '')}",
                           field=field, expected="a SQL predicate over the log's columns")
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class") == "COLUMN_REF" and node.get("column_names"):
                name = str(node["column_names"][-1])
                if name not in found:
                    found.append(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree.get("statements", []))
    return found


def _from_json(column: str, present: Sequence[str]) -> str:
    """A feature column a file lacks: from its JSON ``features`` when the file has them (a
    file older than the typed columns), else NULL."""
    if column.startswith(FEATURE_PREFIX) and LEGACY_FEATURES in present:
        name = column.removeprefix(FEATURE_PREFIX).replace("\\", "\\\\").replace('"', '\\"').replace("'", "''")
        return f"json_extract_string({LEGACY_FEATURES}, '$.\"{name}\"')"
    return "NULL::VARCHAR"


def _with_features(con: Any, source: str, wanted: Sequence[str] = ()) -> str:
    """``source`` with a ``features`` column: the stored JSON where a file has it, else the
    JSON object of the row's non-null typed feature columns; and each of ``wanted`` that
    no file has, as NULL (or, text features, from the JSON of rows that have only that)."""
    described = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    columns = list(described)
    absent = [c for c in wanted if c not in columns and c != LEGACY_FEATURES]
    legacy = LEGACY_FEATURES in columns
    texts = [c for c in wanted if legacy and c.startswith(FEATURE_PREFIX) and described.get(c) == "VARCHAR"]
    if texts:
        source = "(SELECT * REPLACE (" + ", ".join(
            f"coalesce({_quoted_ident(c)}, {_from_json(c, columns)}) AS {_quoted_ident(c)}" for c in texts) + \
            f") FROM {source})"
    if absent:
        source = "(SELECT *, " + ", ".join(f"{_from_json(c, columns)} AS {_quoted_ident(c)}" for c in absent) + \
            f" FROM {source})"
    typed = [c for c in columns if c.startswith(FEATURE_PREFIX)]
    if typed:
        entries = ", ".join("struct_pack(k := '{}', v := to_json(\"{}\"))".format(
            c.removeprefix(FEATURE_PREFIX).replace("'", "''"), c.replace('"', '""')) for c in typed)
        made = f"to_json(map_from_entries(list_filter([{entries}], e -> e.v IS NOT NULL)))::VARCHAR"
    else:
        made = "'{}'"
    if LEGACY_FEATURES in columns:
        return f"(SELECT * REPLACE (coalesce({LEGACY_FEATURES}, {made}) AS {LEGACY_FEATURES}) FROM {source})"
    return f"(SELECT *, {made} AS {LEGACY_FEATURES} FROM {source})"
