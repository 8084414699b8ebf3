"""Tracking: runs with params, metrics, the data commits they read, and artifacts."""

from __future__ import annotations

import math
import uuid
from types import TracebackType
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from mlops_lite.clock import utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import Metric, Param, Run
from mlops_lite.objects import ObjectStore
from mlops_lite.records import RunRecord
from mlops_lite.security.audit import AuditLog

RUN_STATUSES = ("running", "finished", "failed")


class Tracking:
    """The ``platform.tracking`` facet."""

    def __init__(self, store: MetadataStore, objects: ObjectStore, audit: AuditLog, actor: str) -> None:
        self._store = store
        self._objects = objects
        self._audit = audit
        self._actor = actor

    def start_run(self, name: str, *, experiment: str = "default", data_commits: tuple[str, ...] = (),
                  tags: dict[str, Any] | None = None, actor: str | None = None) -> ActiveRun:
        if not name.strip():
            raise InvalidInput("a run needs a name", field="name", expected="a non-empty string")
        run = Run(id=uuid.uuid4().hex, name=name, experiment=experiment, status="running",
                  started_at=utcnow(), data_commits=list(data_commits), tags=tags or {}, artifacts={})
        with self._store.session() as session:
            session.add(run)
            self._audit.append(session, actor=actor or self._actor, action="run.start",
                               object=f"run:{run.id}", after={"name": name, "experiment": experiment,
                                                              "data_commits": list(data_commits)})
        return ActiveRun(self, run.id, actor or self._actor)

    def get_run(self, run_id: str) -> RunRecord:
        with self._store.session() as session:
            run = session.get(Run, run_id)
            if run is None:
                raise NotFound(f"run {run_id!r} does not exist")
            params = session.exec(select(Param).where(Param.run_id == run_id)).all()
            metrics = session.exec(select(Metric).where(Metric.run_id == run_id).order_by(Metric.step)).all()  # type: ignore[arg-type]
        return _run_record(run, {p.key: p.value for p in params}, {m.key: m.value for m in metrics})

    def list_runs(self, *, limit: int = 50) -> list[RunRecord]:
        with self._store.session() as session:
            runs = session.exec(select(Run).order_by(Run.started_at.desc()).limit(limit)).all()  # type: ignore[attr-defined]
            ids = [run.id for run in runs]
            metrics = session.exec(select(Metric).where(Metric.run_id.in_(ids))).all() if ids else []  # type: ignore[attr-defined]
        latest: dict[str, dict[str, float]] = {}
        for metric in sorted(metrics, key=lambda m: m.step):
            latest.setdefault(metric.run_id, {})[metric.key] = metric.value
        return [_run_record(run, {}, latest.get(run.id, {})) for run in runs]

    def count(self) -> int:
        with self._store.session() as session:
            return int(session.exec(select(func.count()).select_from(Run)).one())

    def read_artifact(self, run_id: str, name: str) -> bytes:
        run = self.get_run(run_id)
        if name not in run.artifacts:
            raise NotFound(f"run {run_id} has no artifact {name!r}; it has {sorted(run.artifacts)}")
        return self._objects.get_bytes(run.artifacts[name])


class ActiveRun:
    """A run being recorded. As a context manager it ends ``finished``, or ``failed``
    when the block raises."""

    def __init__(self, tracking: Tracking, run_id: str, actor: str) -> None:
        self._tracking = tracking
        self.id = run_id
        self._actor = actor

    def log_params(self, params: dict[str, Any]) -> None:
        rows = [Param(run_id=self.id, key=str(key), value=str(value)) for key, value in params.items()]
        with self._tracking._store.session() as session:
            self._running(session)
            for row in rows:
                session.merge(row)

    def log_metrics(self, metrics: dict[str, float], *, step: int = 0) -> None:
        now = utcnow()
        rows = []
        for key, value in metrics.items():
            number = float(value)
            if math.isnan(number):
                raise InvalidInput(f"metric {key!r} is NaN", field=f"metrics.{key}", expected="a finite number")
            rows.append(Metric(run_id=self.id, key=key, step=step, value=number, timestamp=now))
        with self._tracking._store.session() as session:
            self._running(session)
            for row in rows:
                session.merge(row)

    def log_artifact(self, name: str, data: bytes) -> str:
        """Store bytes content-addressed and attach them to the run; returns the digest."""
        digest, _ = self._tracking._objects.put_bytes(data)
        with self._tracking._store.session() as session:
            run = self._running(session)
            run.artifacts = {**run.artifacts, name: digest}
            session.add(run)
        return digest

    def end(self, status: str = "finished") -> RunRecord:
        if status not in RUN_STATUSES[1:]:
            raise InvalidInput(f"bad run status {status!r}", field="status", expected="finished | failed")
        with self._tracking._store.session() as session:
            run = self._running(session)
            run.status, run.ended_at = status, utcnow()
            session.add(run)
            self._tracking._audit.append(session, actor=self._actor, action="run.end",
                                         object=f"run:{self.id}", before={"status": "running"},
                                         after={"status": status})
        return self._tracking.get_run(self.id)

    def _running(self, session: Any) -> Run:
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
        self.end("failed" if exc_type else "finished")


def _run_record(run: Run, params: dict[str, str], metrics: dict[str, float]) -> RunRecord:
    return RunRecord(id=run.id, name=run.name, experiment=run.experiment, status=run.status,
                     started_at=run.started_at, ended_at=run.ended_at,
                     data_commits=tuple(run.data_commits or ()), params=params, metrics=metrics,
                     artifacts=dict(run.artifacts or {}), tags=dict(run.tags or {}))
