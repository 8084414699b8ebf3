"""``platform.features``: definitions, point-in-time training sets, the online store,
entity-keyed predictions and the skew check (docs/features.md)."""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlmodel import col, delete, select

from mlops_lite.clock import utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.features import offline
from mlops_lite.features.definitions import (
    KINDS,
    Definition,
    Definitions,
    FeatureService,
    FeatureView,
    ServicePlan,
    from_mapping,
    from_spec,
    load,
)
from mlops_lite.features.online import EXPIRED, MISSING, PRESENT, OnlineStore, entity_key, status
from mlops_lite.features.records import (
    ApplyChange,
    ApplyResult,
    FeatureDefinitionRecord,
    FeatureOverrideRecord,
    FeatureServiceRecord,
    MaterializationRecord,
    OnlineFeatures,
    SkewReport,
    TrainingSetRecord,
)
from mlops_lite.metadata import MetadataStore
from mlops_lite.metadata.tables import (
    FeatureDefinitionRow,
    FeatureMaterializationRow,
    FeatureOverrideRow,
    FeatureServedRow,
    FeatureServiceVersionRow,
    FeatureTrainingSetRow,
)
from mlops_lite.objects import ObjectStore

SKEW_METRIC = "features.skew"
SERVED_SLICE = 1000  # served vectors written per statement by the log's writer
MAX_ENTITIES = 1000


def to_us(moment: datetime) -> int:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC)


def _moment(value: datetime | str | None, field: str) -> datetime:
    if value is None:
        return utcnow()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInput(f"bad time {value!r}", field=field, expected="an ISO 8601 time") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ServedLog:
    """Served feature vectors, buffered and written by a background thread (never on the
    request path); ``flush`` writes what is queued now."""

    def __init__(self, store: MetadataStore, *, max_queue: int = 20000, every_s: float = 1.0) -> None:
        self._store = store
        self._queue: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._max_queue = max_queue
        self._every_s = every_s
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.dropped = 0

    def append(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """(service, version, served_us, entity row, values, statuses, commits, deployment) each."""
        with self._lock:
            room = self._max_queue - len(self._queue)
            self._queue.extend(rows[:max(room, 0)])
            self.dropped += max(len(rows) - max(room, 0), 0)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="feature-served-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.flush()
            except Exception:  # the next flush tries again; the queue is bounded
                import logging

                logging.getLogger(__name__).warning("writing served feature vectors failed", exc_info=True)

    def flush(self) -> int:
        with self._write_lock:
            with self._lock:
                batch, self._queue = self._queue, []
            # A slice at a time with a pause between: a flush of thousands of rows would
            # otherwise hold the interpreter while lookups wait (their p99).
            for start in range(0, len(batch), SERVED_SLICE):
                if start:
                    time.sleep(0.001)
                self._write(batch[start:start + SERVED_SLICE])
            return len(batch)

    def _write(self, batch: Sequence[tuple[Any, ...]]) -> None:
        if not self._store.is_duckdb:
            rows = [FeatureServedRow(id=uuid.uuid4().hex, service=service, service_version=version, served_us=at_us,
                                     entity=json.dumps(entity, default=str), payload=json.dumps(values, default=str),
                                     statuses=json.dumps(states), commits=json.dumps(commits), deployment=deployment)
                    for service, version, at_us, entity, values, states, commits, deployment in batch]
            with self._store.session() as db:
                db.add_all(rows)
            return
        # DuckDB: one Arrow insert (the ORM's add_all cost ~0.1 ms of Python per row)
        services, versions, served, entities, payloads, statuses, commits, deployments = zip(*batch, strict=True)
        dumps = json.dumps
        table = pa.table({
            "id": pa.array([uuid.uuid4().hex for _ in batch], pa.string()),
            "service": pa.array(services, pa.string()), "service_version": pa.array(versions, pa.string()),
            "served_us": pa.array(served, pa.int64()),
            "entity": pa.array([dumps(e, default=str) for e in entities], pa.string()),
            "payload": pa.array([dumps(v, default=str) for v in payloads], pa.string()),
            "statuses": pa.array([dumps(x) for x in statuses], pa.string()),
            "commits": pa.array([dumps(c) for c in commits], pa.string()),
            "deployment": pa.array(deployments, pa.string())})
        with self._store.session() as db:
            raw: Any = db.connection().connection.driver_connection
            raw.register("__served_batch", table)
            try:
                raw.execute("INSERT INTO feature_served (id, service, service_version, served_us, entity, payload, "
                            "statuses, commits, deployment) SELECT id, service, service_version, served_us, entity, "
                            "payload, statuses, commits, deployment FROM __served_batch")
            finally:
                raw.unregister("__served_batch")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


class Features:
    def __init__(self, store: MetadataStore, objects: ObjectStore, audit: Any, actor: str, *,
                 data: Callable[[], Any], alerts: Callable[[], Any] | None = None,
                 deployments: Callable[[], Any] | None = None,
                 refresh_s: float = 1.0) -> None:
        self._store = store
        self._objects = objects
        self._audit = audit
        self._actor = actor
        self._data = data
        self._alerts = alerts
        self._deployments = deployments
        self.online_store = OnlineStore(store, refresh_s=refresh_s)
        self.served = ServedLog(store)
        self._plans: dict[str, tuple[float, ServicePlan]] = {}
        self._plans_lock = threading.Lock()
        self._odfv = threading.local()
        self._state_cache: dict[str, tuple[float, tuple[str, str] | None]] = {}

    def close(self) -> None:
        self.served.close()

    # ---- definitions ------------------------------------------------------------------
    def apply(self, definitions: Definitions | Mapping[str, Any] | str | Path, *, ref: str = "main",
              dry_run: bool = False, actor: str | None = None) -> ApplyResult:
        """Validate ``definitions`` (a Definitions, a TOML/Python file, or the mapping a TOML
        file holds) against the sources at ``ref`` and make them the current set: a new
        digest is a new version (history kept), a definition left out is retired."""
        actor = actor or self._actor
        if isinstance(definitions, str | Path):
            definitions = load(Path(definitions))
        elif isinstance(definitions, Mapping):
            definitions = from_mapping(definitions)
        definitions.check_references()
        commits = self.validate_sources(definitions, ref)
        plans = {s.name: ServicePlan.of(s, definitions) for s in definitions.services}
        now = utcnow()
        changes: list[ApplyChange] = []
        with self._store.session() as db:
            current = {(r.kind, r.name): r for r in db.exec(select(FeatureDefinitionRow)
                                                             .where(FeatureDefinitionRow.current == True))}  # noqa: E712
            wanted: set[tuple[str, str]] = set()
            for item in definitions.all():
                key = (item.kind, item.name)
                wanted.add(key)
                version = plans[item.name].version if isinstance(item, FeatureService) else item.digest[:16]
                existing = current.get(key)
                if existing is not None and existing.digest == item.digest and existing.version == version:
                    changes.append(ApplyChange(item.kind, item.name, "unchanged", item.digest, version))
                    continue
                changes.append(ApplyChange(item.kind, item.name, "changed" if existing else "created",
                                           item.digest, version))
                if dry_run:
                    continue
                if existing is not None:
                    existing.current = False
                    existing.retired_at = now
                    db.add(existing)
                row = db.get(FeatureDefinitionRow, (item.kind, item.name, item.digest))
                if row is None:
                    row = FeatureDefinitionRow(kind=item.kind, name=item.name, digest=item.digest, version=version,
                                               spec=json.dumps(item.spec(), sort_keys=True), applied_at=now,
                                               applied_by=actor)
                row.current, row.retired_at, row.version, row.applied_at, row.applied_by = True, None, version, now, actor
                db.add(row)
            for key, row in current.items():
                if key not in wanted:
                    changes.append(ApplyChange(row.kind, row.name, "retired", row.digest, row.version))
                    if not dry_run:
                        row.current = False
                        row.retired_at = now
                        db.add(row)
            if not dry_run:
                for name, plan in plans.items():
                    if db.get(FeatureServiceVersionRow, (name, plan.version)) is None:
                        db.add(FeatureServiceVersionRow(service=name, version=plan.version,
                                                        plan=json.dumps(_plan_spec(plan), sort_keys=True),
                                                        applied_at=now, applied_by=actor))
                if any(c.action != "unchanged" for c in changes):
                    self._audit.append(db, actor=actor, action="features.apply", object="features",
                                       after={"ref": ref, "commits": commits,
                                              "changes": [[c.kind, c.name, c.action, c.digest[:16]] for c in changes
                                                          if c.action != "unchanged"],
                                              "services": {n: p.version for n, p in plans.items()}})
        with self._plans_lock:
            self._plans.clear()
        return ApplyResult(ref=ref, commits=commits, changes=tuple(changes),
                           services={n: p.version for n, p in plans.items()}, dry_run=dry_run)

    def validate_sources(self, definitions: Definitions, ref: str) -> dict[str, str]:
        """Read every view's source at ``ref`` and check its columns and types against the
        definitions; the commits read, per repository."""
        if not definitions.views:
            return {}
        data = self._data()
        commits = offline.resolve_commits(data, [v.source.repository for v in definitions.views], ref)
        register = offline.data_register(data)
        entities = {e.name: e for e in definitions.entities}
        connection = offline.connect()
        try:
            for view in definitions.views:
                keys = [k for name in view.entities for k in entities[name].join_keys]
                offline.register_view_source(connection, view, keys, commits[view.source.repository], register)
            for odfv in definitions.on_demand:
                self._check_expressions(connection, odfv, definitions)
        finally:
            connection.close()
        return commits

    @staticmethod
    def _check_expressions(connection: Any, odfv: Any, definitions: Definitions) -> None:
        views = {v.name: v for v in definitions.views}
        columns = [f"CAST(NULL AS {offline.SQL_TYPES[f.dtype]}) AS {offline.q(f.name)}" for f in odfv.request]
        for source in odfv.sources:
            columns += [f"CAST(NULL AS {offline.SQL_TYPES[f.dtype]}) AS {offline.q(f.name)}"
                        for f in views[source].features]
        for feature, expression in odfv.features:
            try:
                connection.execute(f"SELECT CAST(({expression}) AS {offline.SQL_TYPES[feature.dtype]}) "
                                   f"FROM (SELECT {', '.join(columns) or '1 AS __none'})").fetchall()
            except Exception as exc:
                raise InvalidInput(f"the expression of {feature.name!r} fails: {exc}",
                                   field=f"on_demand.{odfv.name}.features.{feature.name}",
                                   expected="a DuckDB expression over the request fields and the sources' "
                                            "features") from exc

    def definitions(self) -> Definitions:
        """The current set."""
        return Definitions.of(from_spec(json.loads(r.spec)) for r in self._current_rows())

    def _current_rows(self) -> list[FeatureDefinitionRow]:
        with self._store.session() as db:
            return list(db.exec(select(FeatureDefinitionRow).where(FeatureDefinitionRow.current == True)  # noqa: E712
                                .order_by(FeatureDefinitionRow.kind, FeatureDefinitionRow.name)))

    def list(self, kind: str | None = None) -> builtins.list[FeatureDefinitionRecord]:
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"unknown kind {kind!r}", field="kind", expected=" | ".join(KINDS))
        return [_record(r) for r in self._current_rows() if kind is None or r.kind == kind]

    def history(self, kind: str, name: str) -> builtins.list[FeatureDefinitionRecord]:
        """Every version of one definition, newest first."""
        if kind not in KINDS:
            raise InvalidInput(f"unknown kind {kind!r}", field="kind", expected=" | ".join(KINDS))
        with self._store.session() as db:
            rows = list(db.exec(select(FeatureDefinitionRow).where(FeatureDefinitionRow.kind == kind,
                                                                   FeatureDefinitionRow.name == name)
                                .order_by(col(FeatureDefinitionRow.applied_at).desc())))
        if not rows:
            raise NotFound(f"no {kind} {name!r} was ever applied")
        return [_record(r) for r in rows]

    def plan(self, service: str, version: str | None = None) -> ServicePlan:
        """The service's plan: the current one, or the one of ``version`` as it was applied."""
        if version is None:
            now = time.monotonic()
            cached = self._plans.get(service)
            if cached is not None and now - cached[0] < 1.0:
                return cached[1]
            definitions = self.definitions()
            item = next((s for s in definitions.services if s.name == service), None)
            if item is None:
                raise NotFound(f"no feature service {service!r} (mlops-lite features list)",
                               details={"known": [s.name for s in definitions.services]})
            plan = ServicePlan.of(item, definitions)
            with self._plans_lock:
                self._plans[service] = (now, plan)
            return plan
        with self._store.session() as db:
            row = db.get(FeatureServiceVersionRow, (service, version))
        if row is None:
            raise NotFound(f"feature service {service!r} has no version {version!r}")
        spec = json.loads(row.plan)
        items: builtins.list[Definition] = [from_spec(s) for s in
                                            [spec["service"], *spec["entities"], *spec["views"], *spec["on_demand"]]]
        definitions = Definitions.of(items)
        return ServicePlan.of(next(iter(definitions.services)), definitions)

    def service(self, name: str, version: str | None = None) -> FeatureServiceRecord:
        plan = self.plan(name, version)
        with self._store.session() as db:
            row = db.get(FeatureServiceVersionRow, (name, plan.version))
        current = self.plan(name).version == plan.version if version is not None else True
        return FeatureServiceRecord(
            name=name, version=plan.version, features=plan.feature_names, dtypes=plan.dtypes(),
            join_keys=dict(plan.join_keys), request_fields={f.name: f.dtype for f in plan.request_fields},
            views={v.name: {"ttl_seconds": v.ttl_seconds, "repository": v.source.repository,
                            "entities": list(v.entities), "features": list(v.feature_names)} for v in plan.views},
            applied_at=row.applied_at if row is not None else utcnow(), current=current)

    def versions(self, name: str) -> builtins.list[str]:
        """The service's versions, newest first."""
        with self._store.session() as db:
            rows = db.exec(select(FeatureServiceVersionRow.version).where(FeatureServiceVersionRow.service == name)
                           .order_by(col(FeatureServiceVersionRow.applied_at).desc())).all()
        return list(rows)

    # ---- offline ------------------------------------------------------------------------
    def historical(self, service: str, entities: pa.Table, *, ref: str = "main", version: str | None = None,
                   timestamp_field: str = "event_timestamp", statuses: bool = False,
                   commits: Mapping[str, str] | None = None) -> tuple[pa.Table, dict[str, str]]:
        """The point-in-time join of ``entities`` with the service at ``ref`` (or at the given
        ``commits``); the table and the commits it read."""
        plan = self.plan(service, version)
        data = self._data()
        read = dict(commits) if commits is not None else offline.resolve_commits(
            data, [v.source.repository for v in plan.views], ref)
        table = offline.historical(plan, entities, read, offline.data_register(data),
                                   timestamp_field=timestamp_field, statuses=statuses)
        return table, read

    def training_set(self, service: str, *, entities: pa.Table | None = None, repository: str | None = None,
                     path: str | None = None, ref: str = "main", timestamp_field: str = "event_timestamp",
                     actor: str | None = None) -> TrainingSetRecord:
        """A point-in-time training set of the current service version, stored (Parquet in the
        artifact store) and identified by its data commits, service version and entity rows.
        Entity rows: an Arrow table, or a table of a data repository (``repository``,
        ``path``) read at the same ``ref``."""
        actor = actor or self._actor
        plan = self.plan(service)
        data = self._data()
        repositories = [v.source.repository for v in plan.views]
        if entities is None:
            if not (repository and path):
                raise InvalidInput("name the entity rows: a table, or a repository and a path",
                                   field="entities", expected="entities=, or repository= and path=")
            from mlops_lite.training.service import refuse_uncommitted

            refuse_uncommitted(data.repo(repository), repository, ref, path)
            commits = offline.resolve_commits(data, [*repositories, repository], ref)
            entities = data.repo(repository).ref(commits[repository]).read_table(path).table
            given: dict[str, Any] = {"repository": repository, "ref": ref, "path": path,
                                     "commit": commits[repository]}
        else:
            commits = offline.resolve_commits(data, repositories, ref)
            given = {"inline": entities.num_rows}
        table, _ = self.historical(service, entities, commits=commits, timestamp_field=timestamp_field)
        entity_digest = _table_digest(entities)
        ident = hashlib.sha256(json.dumps([sorted(commits.items()), plan.version, entity_digest,
                                           timestamp_field]).encode()).hexdigest()[:32]
        sink = io.BytesIO()
        pq.write_table(table, sink)
        digest, _ = self._objects.put_bytes(sink.getvalue())
        with self._store.session() as db:
            row = db.get(FeatureTrainingSetRow, ident)
            if row is None:
                row = FeatureTrainingSetRow(id=ident, service=service, service_version=plan.version,
                                            commits=json.dumps(commits), entities=json.dumps({**given,
                                                                                              "timestamp_field": timestamp_field}),
                                            entity_digest=entity_digest, digest=digest, rows=table.num_rows,
                                            columns=json.dumps(table.column_names), created_at=utcnow(),
                                            created_by=actor)
                db.add(row)
                self._audit.append(db, actor=actor, action="features.training_set", object=f"feature_service/{service}",
                                   after={"training_set": ident, "version": plan.version, "commits": commits,
                                          "rows": table.num_rows})
        return _training_record(row)

    def get_training_set(self, id: str) -> TrainingSetRecord:
        with self._store.session() as db:
            row = db.get(FeatureTrainingSetRow, id)
        if row is None:
            raise NotFound(f"no training set {id!r}")
        return _training_record(row)

    def training_sets(self, service: str | None = None) -> builtins.list[TrainingSetRecord]:
        with self._store.session() as db:
            query = select(FeatureTrainingSetRow).order_by(col(FeatureTrainingSetRow.created_at).desc())
            if service is not None:
                query = query.where(FeatureTrainingSetRow.service == service)
            return [_training_record(r) for r in db.exec(query)]

    def training_set_table(self, id: str) -> pa.Table:
        record = self.get_training_set(id)
        return pq.read_table(io.BytesIO(self._objects.get_bytes(record.digest)))

    def training_rows(self, id: str, inputs: Sequence[str]) -> pa.Table:
        """The rows of training set ``id`` a model with ``inputs`` trains from (``trainable_rows``):
        what training through a feature service keeps and what the gates cut their held-out
        slice from, so both see the same rows."""
        record = self.get_training_set(id)
        return trainable_rows(self.training_set_table(id),
                              self.plan(record.service, record.service_version).feature_names, inputs)

    # ---- materialization -----------------------------------------------------------------
    def materialize(self, views: Sequence[str] | None = None, *, ref: str = "main", mode: str = "incremental",
                    as_of: datetime | str | None = None, actor: str | None = None) -> builtins.list[MaterializationRecord]:
        """Write the latest row per key (event time <= ``as_of``, default now) of each view
        (default: every current view) at ``ref`` to the online store. ``incremental`` writes
        only the keys whose row changed since the store's; ``full`` replaces the view's rows."""
        if mode not in ("incremental", "full"):
            raise InvalidInput(f"unknown mode {mode!r}", field="mode", expected="incremental | full")
        actor = actor or self._actor
        moment = _moment(as_of, "as_of")
        definitions = self.definitions()
        by_name = {v.name: v for v in definitions.views}
        names = list(views) if views else list(by_name)
        for name in names:
            if name not in by_name:
                raise NotFound(f"no feature view {name!r}", details={"known": sorted(by_name)})
        entities = {e.name: e for e in definitions.entities}
        data = self._data()
        register = offline.data_register(data)
        out = []
        for name in names:
            view = by_name[name]
            out.append(self._materialize_view(view, entities, data, register, ref, mode, moment, actor))
        return out

    def _materialize_view(self, view: FeatureView, entities: Mapping[str, Any], data: Any, register: Any, ref: str,
                          mode: str, moment: datetime, actor: str) -> MaterializationRecord:
        started = utcnow()
        clock = time.perf_counter()
        commit = data.repo(view.source.repository).commit(ref).id
        keys = [k for name in view.entities for k in entities[name].join_keys]
        as_of_us = to_us(moment)
        previous = self._previous(view) if mode == "incremental" else None
        added = self._added_files(data, view, previous, commit, as_of_us) if previous is not None else None
        connection = offline.connect()
        try:
            latest_sql = offline.latest_sql(view, [k for k, _ in keys], as_of_us)
            removed: list[str] = []
            if added is not None and previous is not None:
                # Only files were added since the last run, and no row it read was after its
                # as-of: the latest row per key is the stored one or the added files' latest.
                if added:
                    offline.register_view_source(connection, view, keys, commit, register, paths=added)
                    connection.execute(f"CREATE TEMP TABLE __latest AS {latest_sql}")
                    touched = [r[0] for r in connection.execute("SELECT entity_key FROM __latest").fetchall()]
                    connection.register("__stored", self.online_store.stored(view.name, touched))
                    rows = connection.execute(
                        "SELECT n.* FROM __latest n LEFT JOIN __stored o USING (entity_key) WHERE o.entity_key IS NULL "
                        "OR n.event_us > o.event_us OR (n.event_us = o.event_us AND n.created_us IS NOT NULL AND "
                        "(o.created_us IS NULL OR n.created_us > o.created_us))").fetch_arrow_table()
                    fresh_keys, newest = connection.execute(
                        "SELECT (SELECT count(*) FROM __latest n ANTI JOIN __stored o USING (entity_key)), "
                        f"(SELECT max(__ts_us) FROM {offline.q('__src_' + view.name)})").fetchone()
                else:
                    rows = _empty_rows()
                    fresh_keys, newest = 0, None
                total = previous.keys + int(fresh_keys or 0)
                max_event = max(v for v in (previous.max_event_us, newest) if v is not None)
                replace = False
            else:
                offline.register_view_source(connection, view, keys, commit, register)
                max_event = connection.execute(
                    f"SELECT max(__ts_us) FROM {offline.q('__src_' + view.name)}").fetchone()[0]
                if previous is None:
                    rows = connection.execute(latest_sql).fetch_arrow_table()
                    replace = True
                    total = rows.num_rows
                else:
                    connection.register("__stored", self.online_store.stored(view.name))
                    connection.execute(f"CREATE TEMP TABLE __latest AS {latest_sql}")
                    rows = connection.execute(
                        "SELECT n.* FROM __latest n LEFT JOIN __stored o USING (entity_key) WHERE o.entity_key IS NULL "
                        "OR o.event_us <> n.event_us OR o.payload <> n.payload "
                        "OR o.created_us IS DISTINCT FROM n.created_us").fetch_arrow_table()
                    removed = [r[0] for r in connection.execute(
                        "SELECT o.entity_key FROM __stored o ANTI JOIN __latest n USING (entity_key)").fetchall()]
                    total = connection.execute("SELECT count(*) FROM __latest").fetchone()[0]
                    replace = False
        finally:
            connection.close()
        effective = "full" if replace else "incremental"
        record = FeatureMaterializationRow(id=uuid.uuid4().hex, view=view.name, view_digest=view.digest, mode=effective,
                                           repository=view.source.repository, data_commit=commit,
                                           as_of_us=as_of_us, max_event_us=max_event, keys=int(total),
                                           written=rows.num_rows,
                                           deleted=len(removed), started_at=started, finished_at=utcnow(), actor=actor)
        self.online_store.write(view.name, rows, remove=removed, replace=replace, record=record)
        return _materialization_record(record, time.perf_counter() - clock)

    @staticmethod
    def _added_files(data: Any, view: FeatureView, previous: FeatureMaterializationRow, commit: str,
                     as_of_us: int) -> builtins.list[str] | None:
        """The files of ``view``'s path source added between the last materialization's commit
        and ``commit``, when reading only them is exact: nothing of the source was changed or
        removed, and no row the last run saw lay after its as-of. None otherwise (read all)."""
        from mlops_lite.data.tables import glob_matcher, is_glob

        pattern = view.source.path
        if (pattern is None or previous.max_event_us is None or previous.max_event_us > previous.as_of_us
                or as_of_us < previous.as_of_us):
            return None
        if previous.data_commit == commit:
            return []
        prefix, compiled = glob_matcher(pattern) if is_glob(pattern) else (pattern, None)
        entries = data.repo(view.source.repository).diff(previous.data_commit, commit, prefix=prefix)
        matched = [e for e in entries if (compiled.fullmatch(e.path) if compiled is not None else e.path == pattern)]
        if any(e.type != "added" for e in matched):
            return None
        return sorted(e.path for e in matched)

    def _previous(self, view: FeatureView) -> FeatureMaterializationRow | None:
        """The view's last materialization, when it was of this same definition."""
        row = self._state(view.name)
        return row if row is not None and row.view_digest == view.digest else None

    def materializations(self, view: str | None = None, *, limit: int = 50) -> builtins.list[MaterializationRecord]:
        with self._store.session() as db:
            query = select(FeatureMaterializationRow).order_by(col(FeatureMaterializationRow.finished_at).desc())
            if view is not None:
                query = query.where(FeatureMaterializationRow.view == view)
            rows = list(db.exec(query.limit(limit)))
        return [_materialization_record(r, (r.finished_at - r.started_at).total_seconds()) for r in rows]

    def _state(self, view: str) -> FeatureMaterializationRow | None:
        with self._store.session() as db:
            return db.exec(select(FeatureMaterializationRow).where(FeatureMaterializationRow.view == view)
                           .order_by(col(FeatureMaterializationRow.finished_at).desc()).limit(1)).first()

    # ---- online ------------------------------------------------------------------------
    def online(self, service: str, entities: Sequence[Mapping[str, Any]], *, at: datetime | str | None = None,
               log: bool = True, deployment: str | None = None, version: str | None = None) -> OnlineFeatures:
        """The service's features for each entity row (its join keys, and the request fields
        on-demand features read), looked up in the online store, with a status per value:
        ``present``, ``expired`` (older than the view's TTL: the value is null) or ``missing``."""
        plan = self.plan(service, version)
        moment = _moment(at, "at")
        at_us = to_us(moment)
        rows, statuses, commits = self._lookup(plan, entities, at_us)
        if log:
            self._log(plan, entities, rows, statuses, commits, at_us, deployment)
        return OnlineFeatures(service=service, version=plan.version, features=plan.feature_names, rows=tuple(rows),
                              statuses=tuple(statuses), at=moment, commits=commits)

    def _lookup(self, plan: ServicePlan, entities: Sequence[Mapping[str, Any]], at_us: int
                ) -> tuple[builtins.list[dict[str, Any]], builtins.list[dict[str, str]], dict[str, builtins.list[str]]]:
        if not isinstance(entities, Sequence) or isinstance(entities, str | bytes) or not entities:
            raise InvalidInput("entities must be a non-empty list of objects", field="entities",
                               expected='[{"customer_id": 42}]')
        if len(entities) > MAX_ENTITIES:
            raise InvalidInput(f"{len(entities)} entity rows in one call", field="entities",
                               expected=f"at most {MAX_ENTITIES}")
        keys = dict(plan.join_keys)
        coerced = [_coerce_keys(row, keys, i) for i, row in enumerate(entities)]
        for i, row in enumerate(entities):
            for feature in plan.request_fields:
                if feature.name not in row:
                    raise InvalidInput(f"entity row {i} has no request field {feature.name!r}",
                                       field=f"entities[{i}].{feature.name}", expected=f"a {feature.dtype} value")
        values: builtins.list[dict[str, Any]] = [{} for _ in entities]
        states: builtins.list[dict[str, str]] = [{} for _ in entities]
        commits: dict[str, builtins.list[str]] = {}
        for view in plan.views:
            view_keys = plan.keys_of(view)
            found = self.online_store.lookup(view.name, [entity_key([k[n] for n in view_keys]) for k in coerced])
            ttl = offline.ttl_us(view)
            state = self._state_cached(view.name)
            if state is not None:
                commits[view.name] = [state[0], state[1]]
            for i, hit in enumerate(found):
                s = status(None if hit is None else hit[0], at_us, ttl) if hit is None or hit[0] <= at_us else MISSING
                payload = json.loads(hit[1]) if hit is not None and s == PRESENT else {}
                for f in view.feature_names:
                    values[i][f] = payload.get(f)
                    states[i][f] = s
        if plan.on_demand:
            self._on_demand(plan, entities, values, states)
        ordered = [{f: v.get(f) for f in plan.feature_names} for v in values]
        ordered_states = [{f: s.get(f, MISSING) for f in plan.feature_names} for s in states]
        return ordered, ordered_states, commits

    def _state_cached(self, view: str) -> tuple[str, str] | None:
        cache = self._state_cache
        now = time.monotonic()
        hit = cache.get(view)
        if hit is not None and now - hit[0] < 1.0:
            return hit[1]
        row = self._state(view)
        value = (row.repository, row.data_commit) if row is not None else None
        cache[view] = (now, value)
        return value

    def _on_demand(self, plan: ServicePlan, entities: Sequence[Mapping[str, Any]], values: builtins.list[dict[str, Any]],
                   states: builtins.list[dict[str, str]]) -> None:
        """On-demand features by DuckDB, over the same columns a training set gives them."""
        connection = getattr(self._odfv, "connection", None)
        if connection is None:
            connection = self._odfv.connection = offline.connect()
        columns: dict[str, tuple[str, builtins.list[Any]]] = {}
        for feature in plan.request_fields:
            columns[feature.name] = (feature.dtype, _typed(feature.dtype, [row.get(feature.name) for row in entities]))
        for view in plan.views:
            for feature in view.features:
                columns[feature.name] = (feature.dtype, [v.get(feature.name) for v in values])
        for odfv in plan.on_demand:
            wanted = [(f, e) for f, e in odfv.features if f.name in plan.feature_names]
            if not wanted:
                continue
            select_ = ", ".join(f"CAST(({e}) AS {offline.SQL_TYPES[f.dtype]}) AS {offline.q(f.name)}" for f, e in wanted)
            try:
                result = _evaluate(connection, select_, columns, len(entities))
            except Exception as exc:
                raise InvalidInput(f"on-demand view {odfv.name!r} failed on the request: {exc}",
                                   field="entities", expected="request fields of the declared types") from exc
            sources = [f for s in odfv.sources for f in plan.view(s).feature_names]
            reads = {feature.name: odfv.reads(feature.name, sources) for feature, _ in wanted}
            for i, row in enumerate(result):
                for (feature, _), value in zip(wanted, row, strict=True):
                    worst = PRESENT
                    for name in reads[feature.name]:
                        if states[i].get(name) == MISSING:
                            worst = MISSING
                            break
                        if states[i].get(name) == EXPIRED:
                            worst = EXPIRED
                    values[i][feature.name] = value
                    states[i][feature.name] = worst

    def _log(self, plan: ServicePlan, entities: Sequence[Mapping[str, Any]], rows: Sequence[dict[str, Any]],
             statuses: Sequence[dict[str, str]], commits: dict[str, builtins.list[str]], at_us: int,
             deployment: str | None) -> None:
        # Plain values on the request path; the rows (and their JSON) are made by the writer.
        self.served.append([(plan.service.name, plan.version, at_us, dict(e), r, s, commits, deployment)
                            for e, r, s in zip(entities, rows, statuses, strict=True)])

    # ---- serving models by entity key ----------------------------------------------------
    def predict(self, deployment: str, entities: Sequence[Mapping[str, Any]], *, key: str | None = None) -> Any:
        """Predict for entity rows: the features of the service the serving version was trained
        with are looked up online (and logged), request fields taken from each row, and the
        rows answered by the deployment's pipeline. Conflict when the service's version now
        differs from the model's (unless allowed: ``allow``); InvalidInput naming the entity
        and feature when a model input is missing or expired."""
        if self._deployments is None:
            raise NotFound("this platform serves no deployments")
        deployments = self._deployments()
        route = deployments.route(deployment)
        signature = _primary_signature(route)
        bound = signature.get("feature_service") if isinstance(signature, Mapping) else None
        if not bound:
            raise InvalidInput(f"deployment {deployment!r} serves a model trained without a feature service",
                               field="entities", expected='"instances" with every feature')
        plan = self.plan(bound["name"])
        if plan.version != bound["version"]:
            self._require_override(deployment, route, bound, plan.version)
        found = self.online(bound["name"], entities, deployment=deployment)
        inputs = [i["name"] for i in signature.get("inputs", [])]
        instances = []
        for i, (row, values, states) in enumerate(zip(entities, found.rows, found.statuses, strict=True)):
            instance: dict[str, Any] = {}
            for name in inputs:
                if name in values:
                    if states[name] != PRESENT:
                        keys = {k: row.get(k) for k, _ in plan.join_keys}
                        raise InvalidInput(f"feature {name!r} of {keys} is {states[name]}"
                                           + (" (older than its view's TTL)" if states[name] == EXPIRED else ""),
                                           field=f"entities[{i}]", expected="an entity with fresh features")
                    instance[name] = values[name]
                elif name in row:
                    instance[name] = row[name]
                else:
                    raise InvalidInput(f"entity row {i} lacks {name!r}, an input the model reads besides its features",
                                       field=f"entities[{i}].{name}", expected="the request field")
            instances.append(instance)
        return deployments.predict(deployment, instances, key=key)

    def _require_override(self, deployment: str, route: Any, bound: Mapping[str, Any], current: str) -> None:
        model, version = _primary_version(route)
        with self._store.session() as db:
            row = db.get(FeatureOverrideRow, (deployment, model, version, current))
        if row is None:
            raise Conflict(f"{model}@{version} was trained with feature service {bound['name']!r} version "
                           f"{bound['version']}, the store now serves version {current}: retrain it, or allow it "
                           f"(mlops-lite features allow {deployment} --reason ...; audited)",
                           details={"service": bound["name"], "trained_with": bound["version"], "current": current})

    def allow(self, deployment: str, *, reason: str, actor: str | None = None) -> FeatureOverrideRecord:
        """Let ``deployment`` serve its current version although its feature service version
        differs from the current one (audited ``features.version_override``)."""
        actor = actor or self._actor
        if not reason or not reason.strip():
            raise InvalidInput("an override needs a reason", field="reason", expected="why serving it is safe")
        if self._deployments is None:
            raise NotFound("this platform serves no deployments")
        route = self._deployments().route(deployment)
        signature = _primary_signature(route)
        bound = signature.get("feature_service") if isinstance(signature, Mapping) else None
        if not bound:
            raise InvalidInput(f"deployment {deployment!r} serves a model trained without a feature service",
                               field="deployment", expected="a deployment of a model trained from a feature service")
        current = self.plan(bound["name"]).version
        model, version = _primary_version(route)
        now = utcnow()
        with self._store.session() as db:
            row = FeatureOverrideRow(deployment=deployment, model=model, version=version, service_version=current,
                                     reason=reason, actor=actor, created_at=now)
            db.merge(row)
            self._audit.append(db, actor=actor, action="features.version_override", object=f"deployment/{deployment}",
                               before={"trained_with": bound["version"]},
                               after={"service": bound["name"], "serving": current, "model": model, "version": version,
                                      "reason": reason})
        return FeatureOverrideRecord(deployment, model, version, current, reason, actor, now)

    def check_deployment(self, target: Any, name: str, action: str, *, actor: str | None = None) -> None:
        """The deployments' placement hook: refuse to start serving a version whose feature
        service version differs from the current one, unless allowed for this deployment."""
        signature = getattr(target, "signature", None) or {}
        bound = signature.get("feature_service") if isinstance(signature, Mapping) else None
        if not bound:
            return
        try:
            current = self.plan(bound["name"]).version
        except NotFound as exc:
            raise Conflict(f"{target.model}@{target.version} was trained with feature service {bound['name']!r}, "
                           "which is no longer defined") from exc
        if current == bound["version"]:
            return
        with self._store.session() as db:
            row = db.get(FeatureOverrideRow, (name, target.model, target.version, current))
        if row is None:
            raise Conflict(f"{target.model}@{target.version} was trained with feature service {bound['name']!r} "
                           f"version {bound['version']}, the store now serves version {current}: retrain it, or "
                           f"allow it first (features allow; audited)",
                           details={"service": bound["name"], "trained_with": bound["version"], "current": current})

    # ---- skew --------------------------------------------------------------------------
    def check_skew(self, service: str, *, sample: int = 200, since: datetime | str | None = None,
                   alert: bool = True) -> SkewReport:
        """Recompute a sample of the served vectors point-in-time (at the served time, at the
        data commits the online store was materialized from) and compare value by value.
        A mismatch raises the ``feature-skew`` alert with the rows as evidence; a clean
        check resolves it."""
        if not isinstance(sample, int) or sample < 1 or sample > 10000:
            raise InvalidInput(f"bad sample {sample!r}", field="sample", expected="1 to 10000")
        self.plan(service)  # NotFound for an unknown service
        self.served.flush()
        since_us = to_us(_moment(since, "since")) if since is not None else 0
        with self._store.session() as db:
            served = list(db.exec(select(FeatureServedRow).where(FeatureServedRow.service == service,
                                                                 FeatureServedRow.served_us >= since_us)
                                  .order_by(col(FeatureServedRow.served_us).desc()).limit(sample)))
        mismatches: builtins.list[dict[str, Any]] = []
        compared = 0
        groups: dict[tuple[str, str], builtins.list[FeatureServedRow]] = {}
        for row in served:
            groups.setdefault((row.service_version, row.commits), []).append(row)
        for (version, commits_json), rows in groups.items():
            plan = self.plan(service, version)
            views = json.loads(commits_json)
            commits = {repo: commit for repo, commit in views.values()}
            if any(v.source.repository not in commits for v in plan.views):
                continue  # served before anything was materialized: nothing to recompute against
            entity_rows = [json.loads(r.entity) for r in rows]
            table = _entity_table(plan, entity_rows, [r.served_us for r in rows])
            recomputed, _ = self.historical(service, table, version=version, commits=commits, statuses=True,
                                            timestamp_field="__served_at")
            for i, row in enumerate(rows):
                served_values = json.loads(row.payload)
                served_states = json.loads(row.statuses)
                diffs = {}
                for feature in plan.feature_names:
                    compared += 1
                    offline_value = recomputed.column(feature)[i].as_py()
                    offline_state = recomputed.column("__status__" + feature)[i].as_py()
                    if offline_state != served_states.get(feature) or not _same(served_values.get(feature),
                                                                               offline_value):
                        diffs[feature] = {"served": served_values.get(feature), "status": served_states.get(feature),
                                          "offline": _jsonable(offline_value), "offline_status": offline_state}
                if diffs:
                    mismatches.append({"entity": entity_rows[i], "served_at": from_us(row.served_us).isoformat(),
                                       "service_version": version, "commits": views, "features": diffs})
        now = utcnow()
        fired = None
        if alert and self._alerts is not None:
            from mlops_lite.alerts.rules import Observation

            evidence = {"checked": len(served), "mismatched": len(mismatches), "rows": mismatches[:10]}
            transitions = self._alerts().evaluate([Observation(SKEW_METRIC, service, float(len(mismatches)), evidence)])
            fired = next((getattr(t, "rule", None) for t in transitions), None)
            if mismatches:
                fired = "feature-skew"
        return SkewReport(service=service, checked=len(served), mismatched=len(mismatches), values_compared=compared,
                          rows=tuple(mismatches[:50]), alert=fired, checked_at=now)

    def services(self) -> builtins.list[str]:
        return [r.name for r in self._current_rows() if r.kind == "feature_service"]

    def served_services(self, since: datetime | str | None = None) -> builtins.list[str]:
        """The services that served vectors at or after ``since`` (default: ever), sorted."""
        self.served.flush()
        since_us = to_us(_moment(since, "since")) if since is not None else 0
        with self._store.session() as db:
            names = db.exec(select(FeatureServedRow.service).where(FeatureServedRow.served_us >= since_us)
                            .distinct()).all()
        return sorted(names)

    def prune_served(self, before: datetime | str) -> int:
        """Delete the served vectors older than ``before``; how many went."""
        before_us = to_us(_moment(before, "before"))
        with self._store.session() as db:
            result = db.exec(delete(FeatureServedRow).where(col(FeatureServedRow.served_us) < before_us))
            return int(result.rowcount or 0)


def trainable_rows(table: pa.Table, features: Sequence[str], inputs: Sequence[str]) -> pa.Table:
    """The rows of a training set whose ``features`` (the service's) among ``inputs`` (the
    model's) are all present: a feature missing or expired as of the row's time is null, and
    such a row trains nothing (the request fields and the target are the entity rows' own, and
    are left as they are). Training through a feature service, local or remote, keeps these and
    the gates cut their held-out slice from them."""
    import pyarrow.compute as pc

    keep = None
    for name in inputs:
        if name in features and name in table.column_names:
            present = pc.is_valid(table.column(name))
            keep = present if keep is None else pc.and_(keep, present)
    return table if keep is None else table.filter(keep)


def _primary_signature(route: Any) -> dict[str, Any]:
    slot = route.primary if hasattr(route, "primary") else None
    signature = getattr(slot, "signature", None)
    if signature is None:
        signature = getattr(getattr(slot, "session", None), "signature", None)
    return dict(signature or {})


def _primary_version(route: Any) -> tuple[str, str]:
    slot = route.primary
    return str(slot.model), str(slot.version)


def _coerce_keys(row: Any, keys: Mapping[str, str], i: int) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise InvalidInput(f"entity row {i} is not an object", field=f"entities[{i}]", expected='{"customer_id": 42}')
    out = {}
    for key, dtype in keys.items():
        if key not in row:
            raise InvalidInput(f"entity row {i} has no join key {key!r}", field=f"entities[{i}].{key}",
                               expected=f"a {dtype} value")
        value = row[key]
        if dtype == "int64":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise InvalidInput(f"join key {key!r} is {value!r}", field=f"entities[{i}].{key}", expected="an integer")
            try:
                if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
                    raise ValueError(value)  # int() would read "4_2" as 42
                value = int(value)
            except ValueError as exc:
                raise InvalidInput(f"join key {key!r} is {value!r}", field=f"entities[{i}].{key}",
                                   expected="an integer") from exc
        elif not isinstance(value, str):
            raise InvalidInput(f"join key {key!r} is {value!r}", field=f"entities[{i}].{key}", expected="a string")
        out[key] = value
    return out


_ARROW = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_(),
          "timestamp": pa.timestamp("us", tz="UTC")}


def _arrow(dtype: str, values: Sequence[Any]) -> pa.Array:
    try:
        if dtype == "timestamp":
            values = [datetime.fromisoformat(v) if isinstance(v, str) else v for v in values]
        return pa.array(values, _ARROW[dtype])
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"a value is not {dtype}: {exc}", field="entities", expected=f"{dtype} values") from exc


def _empty_rows() -> pa.Table:
    return pa.table({"entity_key": pa.array([], pa.string()), "event_us": pa.array([], pa.int64()),
                     "created_us": pa.array([], pa.int64()), "payload": pa.array([], pa.string())})


def _typed(dtype: str, values: Sequence[Any]) -> builtins.list[Any]:
    """Request values checked against their declared type (a clear 422, not a DuckDB error)."""
    typed: builtins.list[Any] = _arrow(dtype, values).to_pylist()
    return typed


def _evaluate(connection: Any, select_: str, columns: Mapping[str, tuple[str, builtins.list[Any]]],
              rows: int) -> builtins.list[tuple[Any, ...]]:
    """``select_`` over the rows of ``columns``: bound parameters for a few rows (a DuckDB
    query costs ~0.2 ms so), an Arrow table for many."""
    if rows <= 16:
        names = list(columns)
        if not names:
            return connection.execute(f"SELECT {select_} FROM range({rows})").fetchall()  # type: ignore[no-any-return]
        row_sql = "(" + ", ".join(f"CAST(? AS {offline.SQL_TYPES[columns[n][0]]})" for n in names) + ")"
        params = [columns[n][1][i] for i in range(rows) for n in names]
        sql = (f"SELECT {select_} FROM (VALUES {', '.join([row_sql] * rows)}) "
               f"AS __request({', '.join(offline.q(n) for n in names)})")
        return connection.execute(sql, params).fetchall()  # type: ignore[no-any-return]
    table = pa.table({n: _arrow(dtype, vals) for n, (dtype, vals) in columns.items()})
    connection.register("__request", table)
    try:
        return connection.execute(f"SELECT {select_} FROM __request").fetchall()  # type: ignore[no-any-return]
    finally:
        connection.unregister("__request")


def _entity_table(plan: ServicePlan, rows: Sequence[Mapping[str, Any]], served_us: Sequence[int]) -> pa.Table:
    keys = dict(plan.join_keys)
    columns: dict[str, pa.Array] = {}
    for key, dtype in keys.items():
        columns[key] = pa.array([_coerce_keys(r, keys, i)[key] for i, r in enumerate(rows)], _ARROW[dtype])
    for feature in plan.request_fields:
        columns[feature.name] = _arrow(feature.dtype, [r.get(feature.name) for r in rows])
    columns["__served_at"] = pa.array([from_us(u) for u in served_us], pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a == b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) or math.isnan(b):  # a NaN in the source is served as NaN: the same value
            return math.isnan(a) and math.isnan(b)
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(b, datetime):
        if isinstance(a, str):  # served from the online payload as DuckDB wrote it ('... 07:08:09.5+00')
            try:
                served = datetime.fromisoformat(a)
            except ValueError:
                return False
            served = served if served.tzinfo is not None else served.replace(tzinfo=UTC)
            when = b if b.tzinfo is not None else b.replace(tzinfo=UTC)
            return served == when
        return bool(str(a).replace("T", " ") == str(b.astimezone(UTC)).replace("+00:00", "") or _jsonable(b) == a)
    return bool(a == b)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _table_digest(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _plan_spec(plan: ServicePlan) -> dict[str, Any]:
    return {"service": plan.service.spec(), "entities": [e.spec() for e in plan.entities],
            "views": [v.spec() for v in plan.views], "on_demand": [o.spec() for o in plan.on_demand]}


def _record(row: FeatureDefinitionRow) -> FeatureDefinitionRecord:
    return FeatureDefinitionRecord(kind=row.kind, name=row.name, digest=row.digest, version=row.version,
                                   spec=json.loads(row.spec), applied_at=row.applied_at, applied_by=row.applied_by,
                                   current=row.current)


def _training_record(row: FeatureTrainingSetRow) -> TrainingSetRecord:
    return TrainingSetRecord(id=row.id, service=row.service, service_version=row.service_version,
                             commits=json.loads(row.commits), entities=json.loads(row.entities),
                             entity_digest=row.entity_digest, digest=row.digest, rows=row.rows,
                             columns=tuple(json.loads(row.columns)), created_at=row.created_at,
                             created_by=row.created_by)


def _materialization_record(row: FeatureMaterializationRow, seconds: float) -> MaterializationRecord:
    return MaterializationRecord(id=row.id, view=row.view, mode=row.mode, repository=row.repository,
                                 data_commit=row.data_commit, as_of=from_us(row.as_of_us), keys=row.keys,
                                 written=row.written, deleted=row.deleted, started_at=row.started_at,
                                 finished_at=row.finished_at, seconds=round(seconds, 6))
