"""The online store: the latest row per entity key of each feature view, in the metadata
database (the daemon's DuckDB file by default, PostgreSQL when the home scales out),
served from an in-process cache.

The cache holds, per view, ``entity_key -> (event_us, payload JSON)``: a lookup is a dict
get and a ``json.loads`` of one small object. The process that materializes updates its
cache as its transaction commits; another process (a second server on PostgreSQL) sees
a newer materialization at its next refresh (``refresh_s``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import delete, func, insert
from sqlmodel import col, select

from mlops_lite.metadata import MetadataStore
from mlops_lite.metadata.tables import FeatureMaterializationRow, FeatureOnlineRow, core_table

PRESENT, EXPIRED, MISSING = "present", "expired", "missing"
KEY_SEPARATOR = "\x1f"


def status(event_us: int | None, at_us: int, ttl_us: int) -> str:
    """The one TTL rule (``offline.status_sql`` says the same in SQL)."""
    if event_us is None:
        return MISSING
    if ttl_us > 0 and at_us - event_us > ttl_us:
        return EXPIRED
    return PRESENT


def entity_key(values: Sequence[Any]) -> str:
    """The online key of join-key values (already of the entity's types), as the SQL
    in ``offline.latest_sql`` writes it."""
    if len(values) == 1:
        return _text(values[0])
    return KEY_SEPARATOR.join(_text(v) for v in values)


def _text(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class WriteResult:
    keys: int
    written: int
    deleted: int


class OnlineStore:
    def __init__(self, store: MetadataStore, *, refresh_s: float = 1.0) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, tuple[int, str]]] = {}
        self._seen: dict[str, str | None] = {}  # view -> the latest materialization id the cache holds
        self._checked: dict[str, float] = {}

    # ---- reads ------------------------------------------------------------------------
    def lookup(self, view: str, keys: Sequence[str]) -> list[tuple[int, str] | None]:
        """(event_us, payload JSON) per key, or None where the view has no row."""
        rows = self._rows(view)
        return [rows.get(k) for k in keys]

    def count(self, view: str) -> int:
        return len(self._rows(view))

    def _rows(self, view: str) -> dict[str, tuple[int, str]]:
        now = time.monotonic()
        rows = self._cache.get(view)
        if rows is not None and now - self._checked.get(view, 0.0) < self._refresh_s:
            return rows
        with self._lock:
            latest = self._latest_id(view)
            rows = self._cache.get(view)
            if rows is None or latest != self._seen.get(view):
                rows = self._load(view)
                self._cache[view] = rows
                self._seen[view] = latest
            self._checked[view] = time.monotonic()
            return rows

    def _latest_id(self, view: str) -> str | None:
        with self._store.session() as db:
            row = db.exec(select(FeatureMaterializationRow.id).where(FeatureMaterializationRow.view == view)
                          .order_by(col(FeatureMaterializationRow.finished_at).desc()).limit(1)).first()
        return row

    def _load(self, view: str) -> dict[str, tuple[int, str]]:
        table = self.stored(view)
        events = (int(e) for e in table.column("event_us").to_pylist())
        return dict(zip(table.column("entity_key").to_pylist(), zip(events, table.column("payload").to_pylist(),
                                                                    strict=True), strict=True))

    def stored(self, view: str, keys: Sequence[str] | None = None) -> pa.Table:
        """The view's stored rows (entity_key, event_us, created_us, payload), for an
        incremental diff; ``keys``: only these keys' rows."""
        schema = pa.schema([("entity_key", pa.string()), ("event_us", pa.int64()), ("created_us", pa.int64()),
                            ("payload", pa.string())])
        with self._store.session() as db:
            if self._store.is_duckdb:  # one Arrow read: the ORM took ~1.3 s for 50,000 rows
                raw: Any = db.connection().connection.driver_connection
                literal = "'" + view.replace("'", "''") + "'"  # no bound parameter: DuckDB would import pandas
                sql = ("SELECT entity_key, CAST(event_us AS BIGINT) AS event_us, "
                       "CAST(created_us AS BIGINT) AS created_us, payload "
                       f"FROM feature_online WHERE view = {literal}")
                if keys is None:
                    return raw.execute(sql).fetch_arrow_table().cast(schema)
                raw.register("__wanted_keys", pa.table({"entity_key": pa.array(list(keys), pa.string())}))
                try:
                    return raw.execute(f"{sql} AND entity_key IN (SELECT entity_key FROM __wanted_keys)"
                                       ).fetch_arrow_table().cast(schema)
                finally:
                    raw.unregister("__wanted_keys")
            query = select(FeatureOnlineRow.entity_key, FeatureOnlineRow.event_us, FeatureOnlineRow.created_us,
                           FeatureOnlineRow.payload).where(FeatureOnlineRow.view == view)
            if keys is None:
                result = list(db.exec(query).all())
            else:
                wanted = list(keys)
                result = [row for start in range(0, len(wanted), 5000) for row in db.exec(
                    query.where(col(FeatureOnlineRow.entity_key).in_(wanted[start:start + 5000]))).all()]
        return pa.table({"entity_key": pa.array([r[0] for r in result], pa.string()),
                         "event_us": pa.array([int(r[1]) for r in result], pa.int64()),
                         "created_us": pa.array([None if r[2] is None else int(r[2]) for r in result], pa.int64()),
                         "payload": pa.array([r[3] for r in result], pa.string())})

    # ---- writes -----------------------------------------------------------------------
    def write(self, view: str, rows: pa.Table, *, remove: Iterable[str] = (), replace: bool,
              record: FeatureMaterializationRow) -> WriteResult:
        """Upsert ``rows`` (entity_key, event_us, created_us, payload) for ``view`` and delete
        the keys ``remove`` names (all of the view's rows first when ``replace``), with the
        materialization ``record``, in one transaction."""
        removed = list(remove)
        table = core_table(FeatureOnlineRow)
        keys = rows.column("entity_key").to_pylist()
        with self._store.session() as db:
            # The materialization this write follows: the cache may take the write as a patch
            # only when it holds that one (another server may have written since it loaded).
            before = db.exec(select(FeatureMaterializationRow.id).where(FeatureMaterializationRow.view == view)
                             .order_by(col(FeatureMaterializationRow.finished_at).desc()).limit(1)).first()
            connection = db.connection()
            if replace:
                connection.execute(delete(table).where(table.c.view == view))
            else:
                doomed = [*keys, *removed]
                for start in range(0, len(doomed), 5000):
                    connection.execute(delete(table).where(table.c.view == view,
                                                           table.c.entity_key.in_(doomed[start:start + 5000])))
            self._insert(connection, view, rows)
            db.add(record)
        with self._lock:
            cache = self._cache.get(view)
            if cache is not None and self._seen.get(view) != before:
                cache = None
            if replace or cache is not None:
                fresh = {} if replace or cache is None else dict(cache)
                for k in removed:
                    fresh.pop(k, None)
                for k, e, p in zip(keys, rows.column("event_us").to_pylist(), rows.column("payload").to_pylist(),
                                   strict=True):
                    fresh[k] = (int(e), p)
                self._cache[view] = fresh
                self._seen[view] = record.id
                self._checked[view] = time.monotonic()
            else:
                self._cache.pop(view, None)
        return WriteResult(keys=len(keys), written=len(keys), deleted=len(removed))

    def _insert(self, connection: Any, view: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if self._store.is_duckdb:
            raw = connection.connection.driver_connection
            batch = rows.append_column("view", pa.array([view] * rows.num_rows, pa.string()))
            raw.register("__feature_batch", batch)
            try:
                raw.execute("INSERT INTO feature_online (view, entity_key, event_us, created_us, payload) "
                            "SELECT view, entity_key, event_us, created_us, payload FROM __feature_batch")
            finally:
                raw.unregister("__feature_batch")
            return
        table = core_table(FeatureOnlineRow)
        items = rows.to_pylist()
        for start in range(0, len(items), 5000):
            connection.execute(insert(table), [{**r, "view": view} for r in items[start:start + 5000]])

    def forget(self, view: str) -> None:
        """Drop a retired view's rows."""
        table = core_table(FeatureOnlineRow)
        with self._store.session() as db:
            db.connection().execute(delete(table).where(table.c.view == view))
        with self._lock:
            self._cache.pop(view, None)
            self._seen.pop(view, None)

    def views(self) -> dict[str, int]:
        with self._store.session() as db:
            rows = db.exec(select(FeatureOnlineRow.view, func.count()).group_by(FeatureOnlineRow.view)).all()
        return {v: int(n) for v, n in rows}


def decode(payload: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(payload)
    return value
