"""Tracking: experiments; runs with params, metrics, the data commits they read, the
code version and environment they ran in, and artifacts.

Logging is buffered. ``ActiveRun.log_metric``/``log_param`` (and ``log_metrics``/
``log_params``) put points in memory; a batch is written with one set-based insert when
the buffer holds ``flush_every`` points (default 1,000), when ``flush_interval`` seconds
(default 2) have passed since the last write (checked on each call: no thread), and on
``flush()``, ``log_batch()``, ``end()``, the end of a ``with`` block and, for runs left
open, at interpreter exit (``atexit``). Per run, a (key, step) metric or a param key is
written once per batch and the last write wins, within a batch and across batches.

What a crash keeps: everything written by a flush (each flush is one committed
transaction); points still in the buffer are lost. A run whose process died stays
visibly ``running`` (its ``heartbeat_at`` is the time of its last write), until
``Tracking.mark_crashed()`` marks it ``failed``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, BinaryIO

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, col

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import Experiment, Metric, Run, core_table
from mlops_lite.objects import ObjectStore
from mlops_lite.records import RunRecord
from mlops_lite.tracking import sql, writes
from mlops_lite.tracking.checks import STEPS as _STEPS
from mlops_lite.tracking.checks import check_key as _check_key
from mlops_lite.tracking.checks import check_step as _check_step
from mlops_lite.tracking.checks import finite as _finite
from mlops_lite.tracking.checks import micros as _micros
from mlops_lite.tracking.live import LIVE
from mlops_lite.tracking.provenance import HOST, Provenance, collect
from mlops_lite.tracking.records import ExperimentRecord, MetricPoint, RunComparison

RUN_STATUSES = ("running", "finished", "failed")
FLUSH_EVERY = 1000
FLUSH_INTERVAL_S = 2.0
_MAX_NAME = 250
_HOST = HOST


class Tracking:
    """The ``platform.tracking`` facet."""

    def __init__(self, store: MetadataStore, objects: ObjectStore, audit: AuditTrail, actor: str) -> None:
        self._store = store
        self._objects = objects
        self._audit = audit
        self._actor = actor
        self._open: dict[str, ActiveRun] = {}  # runs started here and not ended, by id
        self._open_lock = threading.Lock()

    # --- experiments --------------------------------------------------------
    def create_experiment(self, name: str, *, description: str = "", tags: dict[str, Any] | None = None,
                          exist_ok: bool = True, actor: str | None = None) -> ExperimentRecord:
        """Create an experiment; an existing one is returned as it is (``exist_ok``) or refused
        with Conflict."""
        _check_name(name, "experiment")
        with self._store.session() as session:
            created = self._ensure_experiment(session, name, description=description, tags=tags or {},
                                              actor=actor or self._actor)
            if not created and not exist_ok:
                raise Conflict(f"experiment {name!r} already exists")
        return self.get_experiment(name)

    def get_experiment(self, name: str) -> ExperimentRecord:
        for record in self.experiments():
            if record.name == name:
                return record
        raise NotFound(f"experiment {name!r} does not exist")

    def experiments(self) -> list[ExperimentRecord]:
        """Every experiment, by name, with its number of runs (runs recorded before the
        experiments table existed make their experiment appear too)."""
        with self._store.session() as session:
            rows = session.execute(select(Experiment)).scalars().all()
            counts = dict(session.execute(select(col(Run.experiment), func.count())
                                          .group_by(Run.experiment)).tuples().all())
            legacy = dict(session.execute(select(col(Run.experiment), func.min(Run.started_at))
                                          .group_by(Run.experiment)).tuples().all())
        records = {row.name: ExperimentRecord(name=row.name, created_at=as_utc(row.created_at),
                                              description=row.description, tags=dict(row.tags or {}),
                                              created_by=row.created_by, runs=int(counts.get(row.name, 0)))
                   for row in rows}
        for name, first in legacy.items():
            if name not in records:
                records[name] = ExperimentRecord(name=name, created_at=as_utc(first), runs=int(counts[name]))
        return [records[name] for name in sorted(records)]

    def _ensure_experiment(self, session: Any, name: str, *, description: str, tags: dict[str, Any],
                           actor: str) -> bool:
        """Insert the experiment unless it exists (race-free upsert); True when this call made it."""
        row = {"name": name, "created_at": utcnow(), "created_by": actor, "description": description,
               "tags": dict(tags)}
        table = core_table(Experiment)
        made = session.execute(pg_insert(table).values(**row).on_conflict_do_nothing(index_elements=["name"])
                               .returning(table.c.name)).all()
        if made:
            self._audit.append(session, actor=actor, action="experiment.create", object=f"experiment:{name}",
                               after={"description": description, "tags": tags})
        return bool(made)

    # --- runs -----------------------------------------------------------------
    def start_run(self, name: str, *, experiment: str = "default", data_commits: tuple[str, ...] = (),
                  tags: dict[str, Any] | None = None, actor: str | None = None,
                  code_dir: str | os.PathLike[str] | None = None, flush_every: int = FLUSH_EVERY,
                  flush_interval: float = FLUSH_INTERVAL_S, provenance: Provenance | None = None) -> ActiveRun:
        """Start a run in ``experiment`` (created when missing). The run records the git
        commit and dirty flag of ``code_dir`` (default: the working directory) when it is a
        git checkout, the environment (Python, platform, key package versions), and this
        process's pid and host. ``provenance`` gives those of another process instead (the
        caller's, computed by ``provenance.collect`` where its code runs: a server records
        its client's); it is checked (InvalidInput naming the field) and excludes ``code_dir``."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("a run needs a name", field="name", expected="a non-empty string")
        _check_name(experiment, "experiment")
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise InvalidInput(f"bad flush_every {flush_every!r}", field="flush_every", expected="an integer >= 1")
        if not isinstance(flush_interval, int | float) or not flush_interval >= 0:
            raise InvalidInput(f"bad flush_interval {flush_interval!r}", field="flush_interval",
                               expected="seconds >= 0")
        if provenance is None:
            provenance = collect(code_dir)
        elif code_dir is not None:
            raise InvalidInput("give code_dir or a provenance, not both", field="code_dir",
                               expected="None when a provenance is given (it names the code version)")
        elif not isinstance(provenance, Provenance):
            raise InvalidInput(f"bad provenance {type(provenance).__name__}", field="provenance",
                               expected="a Provenance record")
        else:
            provenance.validate()
        who = actor or self._actor
        now = utcnow()
        run = Run(id=uuid.uuid4().hex, name=name, experiment=experiment, status="running", started_at=now,
                  data_commits=list(data_commits), tags=dict(tags or {}), artifacts={},
                  git_commit=provenance.git_commit, git_dirty=provenance.git_dirty,
                  environment=dict(provenance.environment), pid=provenance.pid, host=provenance.host,
                  heartbeat_at=now)
        with self._store.session() as session:
            self._ensure_experiment(session, experiment, description="", tags={}, actor=who)
            session.add(run)
            self._audit.append(session, actor=who, action="run.start", object=f"run:{run.id}",
                               after={"name": name, "experiment": experiment, "data_commits": list(data_commits),
                                      "git_commit": provenance.git_commit, "git_dirty": provenance.git_dirty})
        active = ActiveRun(self, run.id, who, flush_every=flush_every, flush_interval=float(flush_interval))
        with self._open_lock:
            self._open[run.id] = active
        LIVE.add(active)
        return active

    def get_run(self, run_id: str) -> RunRecord:
        # Plain-text statements: duckdb_engine turns SQLAlchemy's statement cache off, so each
        # ORM or Core statement is compiled anew (~1 ms each), and end() returns this record.
        self._flush_open((run_id,))
        with self._store.session() as session:
            row = session.execute(_SELECT_RUN, {"id": run_id}).first()
            if row is None:
                raise NotFound(f"run {run_id!r} does not exist")
            params: dict[str, str] = dict(session.execute(_SELECT_PARAMS, {"id": run_id}).tuples().all())
            latest: dict[str, Any] = dict(session.execute(
                _SELECT_LATEST_DUCKDB if self._store.is_duckdb else _SELECT_LATEST, {"id": run_id}).tuples().all())
        return _row_record(row, params, {key: float(value) for key, value in latest.items()})

    def list_runs(self, *, limit: int = 50, experiment: str | None = None) -> list[RunRecord]:
        """The newest runs (of one experiment, if named) with their latest metrics; params
        are left out (``get_run`` has them)."""
        with self._store.session() as session:
            query = select(Run).order_by(col(Run.started_at).desc()).limit(limit)
            if experiment is not None:
                query = query.where(col(Run.experiment) == experiment)
            runs = session.execute(query).scalars().all()
            latest = _latest_metrics(session, [run.id for run in runs])
        return [_run_record(run, {}, latest.get(run.id, {})) for run in runs]

    def count(self) -> int:
        with self._store.session() as session:
            return int(session.execute(select(func.count()).select_from(Run)).scalar_one())

    def read_artifact(self, run_id: str, name: str) -> bytes:
        run = self.get_run(run_id)
        if name not in run.artifacts:
            raise NotFound(f"run {run_id} has no artifact {name!r}; it has {sorted(run.artifacts)}")
        return self._objects.get_bytes(run.artifacts[name])

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every point of one metric of a run, by step."""
        self._flush_open((run_id,))
        with self._store.session() as session:
            if session.get(Run, run_id) is None:
                raise NotFound(f"run {run_id!r} does not exist")
            rows = session.execute(select(col(Metric.step), col(Metric.value), col(Metric.timestamp))
                                   .where(col(Metric.run_id) == run_id, col(Metric.key) == key)
                                   .order_by(col(Metric.step))).all()
            if not rows:
                keys = session.execute(select(col(Metric.key)).where(col(Metric.run_id) == run_id)
                                       .distinct()).scalars().all()
                raise NotFound(f"run {run_id} has no metric {key!r}; it has {sorted(keys)}")
        return [MetricPoint(step=int(step), value=float(value), timestamp=as_utc(ts)) for step, value, ts in rows]

    def compare(self, run_ids: Iterable[str]) -> RunComparison:
        """Runs side by side: each param and each metric's latest value per run, and which differ."""
        ids = tuple(dict.fromkeys(run_ids))
        if not ids:
            raise InvalidInput("compare needs at least one run id", field="run_ids", expected="run ids")
        runs = tuple(self.get_run(run_id) for run_id in ids)
        params: dict[str, dict[str, str | None]] = {}
        metrics: dict[str, dict[str, float | None]] = {}
        for key in sorted({k for run in runs for k in run.params}):
            params[key] = {run.id: run.params.get(key) for run in runs}
        for key in sorted({k for run in runs for k in run.metrics}):
            metrics[key] = {run.id: run.metrics.get(key) for run in runs}
        return RunComparison(
            run_ids=ids, runs=runs, params=params, metrics=metrics,
            differing_params=tuple(k for k, v in params.items() if len(set(v.values())) > 1),
            differing_metrics=tuple(k for k, v in metrics.items() if len(set(v.values())) > 1))

    def sql(self, query: str, *, max_rows: int | None = None, timeout_s: float | None = None) -> Any:
        """One read-only SELECT/WITH over the metadata tables -> ``pyarrow.Table``
        (see ``mlops_lite.tracking.sql`` for what is refused)."""
        self._flush_open(None)
        return sql.run_select(self._store, query, max_rows=max_rows, timeout_s=timeout_s)

    def mark_crashed(self, *, run_ids: Iterable[str] | None = None, stale_after: float | None = None,
                     actor: str | None = None) -> list[str]:
        """Mark ``failed`` the runs left ``running`` by a process that is gone; returns their ids.

        A running run is abandoned when it is not open in this process and either it was
        started on this host by a process that no longer exists, or (for runs of other
        hosts, whose processes cannot be checked from here) its last write is older than
        ``stale_after`` seconds. Its ``ended_at`` becomes its last write (``heartbeat_at``),
        the last moment anything of it is known to be stored."""
        wanted = None if run_ids is None else set(run_ids)
        with self._open_lock:
            mine = set(self._open)
        now = utcnow()
        with self._store.session() as session:
            runs = session.execute(select(Run).where(col(Run.status) == "running")).scalars().all()
            crashed: list[str] = []
            for run in runs:
                if (wanted is not None and run.id not in wanted) or run.id in mine:
                    continue
                last = as_utc(run.heartbeat_at or run.started_at)
                if run.host == _HOST and run.pid is not None:
                    gone = run.pid == os.getpid() or not _process_alive(run.pid)
                else:
                    gone = stale_after is not None and (now - last).total_seconds() >= stale_after
                if not gone:
                    continue
                moved = session.execute(update(Run).where(col(Run.id) == run.id, col(Run.status) == "running")
                                        .values(status="failed", ended_at=last).returning(col(Run.id))).all()
                if moved:
                    crashed.append(run.id)
                    self._audit.append(session, actor=actor or self._actor, action="run.crashed",
                                       object=f"run:{run.id}", before={"status": "running"},
                                       after={"status": "failed", "pid": run.pid, "host": run.host,
                                              "last_write": last.isoformat()})
        return crashed

    def close(self) -> None:
        """Write every open run's buffered points (a closing Platform calls this)."""
        self._flush_open(None)

    def _flush_open(self, run_ids: Iterable[str] | None) -> None:
        """Reads in this process see what its own open runs have logged."""
        with self._open_lock:
            runs = list(self._open.values()) if run_ids is None else [
                self._open[r] for r in run_ids if r in self._open]
        for run in runs:
            if run.pending:
                run.flush()

    def _forget(self, run_id: str) -> None:
        with self._open_lock:
            active = self._open.pop(run_id, None)
        if active is not None:
            LIVE.discard(active)


class ActiveRun:
    """A run being recorded. As a context manager it ends ``finished``, or ``failed``
    when the block raises; either way its buffered points are written first."""

    def __init__(self, tracking: Tracking, run_id: str, actor: str, *, flush_every: int = FLUSH_EVERY,
                 flush_interval: float = FLUSH_INTERVAL_S) -> None:
        self._tracking = tracking
        self.id = run_id
        self._actor = actor
        self.flush_every = flush_every
        self.flush_interval = flush_interval
        self._metrics: dict[tuple[str, int], tuple[float, int]] = {}
        self._params: dict[str, str] = {}
        self._next_step: dict[str, int] = {}
        self._buffer_lock = threading.Lock()  # guards the buffers (held for microseconds)
        self._write_lock = threading.RLock()  # one database write of this run at a time
        self._last_write = time.monotonic()
        self._ended: str | None = None
        self.flushes = 0  # batches written, for tests and curious users

    # --- logging (buffered) ------------------------------------------------------
    def log_metric(self, key: str, value: float, step: int | None = None,
                   timestamp: datetime | float | None = None) -> None:
        """Buffer one point. ``step`` None: one more than the last step of ``key`` logged
        through this handle (0 first). ``timestamp``: a datetime (naive = UTC) or seconds
        since the epoch; default now. NaN or infinite values are refused."""
        if self._ended is not None:
            self._refuse_ended()
        number = _finite(key, value)
        micros = time.time_ns() // 1000 if timestamp is None else _micros(timestamp, key)
        with self._buffer_lock:
            step = self._step(key, step)
            self._metrics[(key, step)] = (number, micros)
            pending = len(self._metrics) + len(self._params)
        if pending >= self.flush_every or time.monotonic() - self._last_write >= self.flush_interval:
            self.flush()

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None,
                    timestamp: datetime | float | None = None) -> None:
        """Buffer one point per key, all at ``step`` (None: each key's next step)."""
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
        if pending >= self.flush_every or time.monotonic() - self._last_write >= self.flush_interval:
            self.flush()

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Buffer params (kept as text); a key logged again takes the last value."""
        if self._ended is not None:
            self._refuse_ended()
        rows = {_check_key(key, "param"): str(value) for key, value in params.items()}
        with self._buffer_lock:
            self._params.update(rows)
            pending = len(self._metrics) + len(self._params)
        if pending >= self.flush_every or time.monotonic() - self._last_write >= self.flush_interval:
            self.flush()

    def log_batch(self, metrics: Iterable[tuple[Any, ...]] = (), params: Mapping[str, Any] | None = None) -> int:
        """Write metric points ``(key, value[, step[, timestamp]])`` and params now, with
        whatever is buffered, in one transaction; returns how many rows were written.
        Nothing is written when any item is invalid."""
        if self._ended is not None:
            self._refuse_ended()
        checked_params = {_check_key(key, "param"): str(value) for key, value in (params or {}).items()}
        now = time.time_ns() // 1000
        points: dict[tuple[str, int], tuple[float, int]] = {}
        isfinite = math.isfinite
        lowest, highest = _STEPS
        with self._buffer_lock:  # held throughout: steps left out are numbered in order
            next_step = dict(self._next_step)  # kept only when the whole batch is valid
            for index, item in enumerate(metrics):
                size = len(item) if isinstance(item, tuple | list) else 0
                if not 2 <= size <= 4:
                    raise InvalidInput(f"metric #{index} is {item!r}", field=f"metrics[{index}]",
                                       expected="(key, value), (key, value, step) or (key, value, step, timestamp)")
                key, value = item[0], item[1]
                if type(key) is not str or not key:
                    _check_key(key)
                number = value if type(value) is float and isfinite(value) else _finite(key, value)
                stamp = item[3] if size > 3 else None
                micros = now if stamp is None else _micros(stamp, key)
                step = item[2] if size > 2 else None
                if step is None:
                    step = next_step.get(key, 0)
                elif type(step) is not int or not lowest <= step <= highest:
                    step = _check_step(step, key)
                if step >= next_step.get(key, 0):
                    next_step[key] = step + 1
                points[(key, step)] = (number, micros)
            self._next_step = next_step
            self._metrics.update(points)
            self._params.update(checked_params)
        return self.flush()

    @property
    def pending(self) -> int:
        """Points and params buffered, not yet written."""
        return len(self._metrics) + len(self._params)

    def flush(self) -> int:
        """Write the buffer now (one transaction); returns how many rows were written."""
        with self._write_lock:
            return self._write(None)

    # --- immediate writes ------------------------------------------------------------
    def log_artifact(self, name: str, data: bytes | BinaryIO) -> str:
        """Store bytes, or a binary stream read to its end in bounded memory, content-addressed
        and attach them to the run; returns the digest."""
        if self._ended is not None:
            self._refuse_ended()
        objects = self._tracking._objects
        digest, _ = objects.put_bytes(data) if isinstance(data, bytes) else objects.put_stream(data)
        with self._write_lock, self._tracking._store.session() as session:
            run = self._running(session)
            run.artifacts = {**run.artifacts, name: digest}
            run.heartbeat_at = utcnow()
            session.add(run)
        return digest

    def end(self, status: str = "finished") -> RunRecord:
        """Write what is buffered and end the run (one transaction)."""
        if status not in RUN_STATUSES[1:]:
            raise InvalidInput(f"bad run status {status!r}", field="status", expected="finished | failed")
        if self._ended is not None:
            self._refuse_ended()
        with self._write_lock:
            self._write(status)
            self._ended = status
        self._tracking._forget(self.id)
        return self._tracking.get_run(self.id)

    # --- internals ---------------------------------------------------------------------
    def _write(self, end_status: str | None) -> int:
        """Write the buffers in one transaction (and end the run with ``end_status``, if
        given); returns the rows written. Called with the write lock held. If the
        transaction fails the buffers are put back (points logged meanwhile win over the
        restored ones), unless the run has ended elsewhere: then they are dropped."""
        with self._buffer_lock:
            metrics, self._metrics = self._metrics, {}
            params, self._params = self._params, {}
        if end_status is None and not metrics and not params:
            self._last_write = time.monotonic()
            return 0
        store = self._tracking._store
        ended_elsewhere = False
        try:
            with store.session() as session:
                now = utcnow()
                if end_status is None:
                    moved = session.execute(_TOUCH_RUN, {"now": now, "id": self.id}).all()
                else:
                    moved = session.execute(_END_RUN, {"now": now, "status": end_status, "id": self.id}).all()
                if not moved:
                    ended_elsewhere = True
                    self._running(session)  # raises NotFound or Conflict, naming the state
                written = writes.write_params(session, duckdb=store.is_duckdb, run_id=self.id, params=params)
                written += writes.write_metrics(session, duckdb=store.is_duckdb, run_id=self.id, points=metrics)
                if end_status is not None:
                    self._tracking._audit.append(session, actor=self._actor, action="run.end",
                                                 object=f"run:{self.id}", before={"status": "running"},
                                                 after={"status": end_status})
        except BaseException:
            if ended_elsewhere:
                self._ended = self._ended or "ended elsewhere"
                self._tracking._forget(self.id)
            else:
                with self._buffer_lock:
                    metrics.update(self._metrics)
                    params.update(self._params)
                    self._metrics, self._params = metrics, params
            raise
        self._last_write = time.monotonic()
        self.flushes += 1
        return written

    def _step(self, key: str, step: Any) -> int:
        """The step a point goes to (call with the buffer lock held)."""
        if step is None:
            step = self._next_step.get(key, 0)
        else:
            step = _check_step(step, key)
        if step >= self._next_step.get(key, 0):
            self._next_step[key] = step + 1
        return int(step)

    def _refuse_ended(self) -> None:
        raise Conflict(f"run {self.id} has ended ({self._ended}); it takes no more records")

    def _running(self, session: Session) -> Run:
        run = session.get(Run, self.id)
        if run is None:
            raise NotFound(f"run {self.id!r} does not exist")
        if run.status != "running":
            raise Conflict(f"run {self.id} has ended ({run.status}); it takes no more records")
        return run

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._ended is None:
            self.end("failed" if exc_type else "finished")


# --- helpers -----------------------------------------------------------------------------------

def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME or any(
            ord(c) < 32 for c in name):
        raise InvalidInput(f"bad {what} name {name!r}", field=what,
                           expected=f"a non-empty string of at most {_MAX_NAME} characters, no control characters")
    return name


def _latest_metrics(session: Any, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """Per run, each metric's value at its highest step (one query, however many points)."""
    if not run_ids:
        return {}
    if session.get_bind().dialect.name == "duckdb":  # arg_max: no sort, about twice as fast as the window
        query = (select(col(Metric.run_id), col(Metric.key), func.arg_max(Metric.value, Metric.step))
                 .where(col(Metric.run_id).in_(run_ids)).group_by(Metric.run_id, Metric.key)
                 .order_by(Metric.key))
    else:
        rank = func.row_number().over(partition_by=(Metric.run_id, Metric.key),
                                      order_by=col(Metric.step).desc()).label("rank")
        ranked = select(col(Metric.run_id), col(Metric.key), col(Metric.value), rank).where(
            col(Metric.run_id).in_(run_ids)).subquery()
        query = select(ranked.c.run_id, ranked.c.key, ranked.c.value).where(ranked.c.rank == 1).order_by(
            ranked.c.key)
    latest: dict[str, dict[str, float]] = {}
    for run_id, key, value in session.execute(query):
        latest.setdefault(run_id, {})[key] = float(value)
    return latest


_SELECT_RUN = text("SELECT id, name, experiment, status, started_at, ended_at, data_commits, tags, artifacts, "
                   "git_commit, git_dirty, environment FROM runs WHERE id = :id")
_SELECT_PARAMS = text("SELECT key, value FROM params WHERE run_id = :id")
_SELECT_LATEST_DUCKDB = text("SELECT key, arg_max(value, step) FROM metrics WHERE run_id = :id GROUP BY key "
                             "ORDER BY key")
_SELECT_LATEST = text("SELECT key, value FROM (SELECT key, value, row_number() OVER (PARTITION BY key ORDER BY "
                      "step DESC) AS rank FROM metrics WHERE run_id = :id) ranked WHERE rank = 1 ORDER BY key")
_TOUCH_RUN = text("UPDATE runs SET heartbeat_at = :now WHERE id = :id AND status = 'running' RETURNING id")
_END_RUN = text("UPDATE runs SET status = :status, ended_at = :now, heartbeat_at = :now "
                "WHERE id = :id AND status = 'running' RETURNING id")


def _json_value(value: Any, empty: Any) -> Any:
    """A JSON column as read by a text statement: DuckDB gives text, PostgreSQL parsed values."""
    if value is None:
        return empty
    return json.loads(value) if isinstance(value, str) else value


def _row_record(row: Any, params: dict[str, str], metrics: dict[str, float]) -> RunRecord:
    (run_id, name, experiment, status, started_at, ended_at, data_commits, tags, artifacts, git_commit, git_dirty,
     environment) = row
    return RunRecord(id=run_id, name=name, experiment=experiment, status=status, started_at=as_utc(started_at),
                     ended_at=None if ended_at is None else as_utc(ended_at),
                     data_commits=tuple(_json_value(data_commits, [])), params=params, metrics=metrics,
                     artifacts=dict(_json_value(artifacts, {})), tags=dict(_json_value(tags, {})),
                     git_commit=git_commit, git_dirty=None if git_dirty is None else bool(git_dirty),
                     environment=dict(_json_value(environment, {})))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return False
    return True


def _run_record(run: Run, params: dict[str, str], metrics: dict[str, float]) -> RunRecord:
    return RunRecord(id=run.id, name=run.name, experiment=run.experiment, status=run.status,
                     started_at=run.started_at, ended_at=run.ended_at,
                     data_commits=tuple(run.data_commits or ()), params=params, metrics=metrics,
                     artifacts=dict(run.artifacts or {}), tags=dict(run.tags or {}), git_commit=run.git_commit,
                     git_dirty=run.git_dirty, environment=dict(run.environment or {}))
