"""The online store (mlops_lite.features.online) over a real metadata database: DuckDB
(a file in the test's folder) and PostgreSQL (a cluster of the session's; skipped,
saying so, where PostgreSQL is not installed). Its TTL rule is offline's to the
microsecond, and its keys are the ones materialization's SQL writes."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from mlops_lite.features import offline
from mlops_lite.features.definitions import from_toml
from mlops_lite.features.online import EXPIRED, MISSING, PRESENT, OnlineStore, decode, entity_key, status
from mlops_lite.metadata import MetadataStore
from mlops_lite.metadata.tables import FeatureMaterializationRow

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["duckdb", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'metadata.duckdb'}"
        return
    cluster = request.getfixturevalue("postgres")
    with cluster.database() as url:
        yield url


@pytest.fixture
def metadata(database_url: str) -> Iterator[MetadataStore]:
    store = MetadataStore(database_url)
    yield store
    store.close()


_finished = [0]


def _record(view: str, keys: int, written: int, deleted: int, mode: str = "full") -> FeatureMaterializationRow:
    _finished[0] += 1
    at = T0 + timedelta(seconds=_finished[0])
    return FeatureMaterializationRow(id=uuid.uuid4().hex, view=view, view_digest="d" * 64, mode=mode,
                                     repository="loans", data_commit="c" * 64, as_of_us=0, keys=keys,
                                     written=written, deleted=deleted, started_at=at, finished_at=at, actor="test")


def _rows(items: dict[str, tuple[int, dict[str, Any]]]) -> pa.Table:
    return pa.table({"entity_key": pa.array(list(items), pa.string()),
                     "event_us": pa.array([v[0] for v in items.values()], pa.int64()),
                     "created_us": pa.array([None] * len(items), pa.int64()),
                     "payload": pa.array([json.dumps(v[1]) for v in items.values()], pa.string())})


def _write(store: OnlineStore, view: str, items: dict[str, tuple[int, dict[str, Any]]], *,
           remove: list[str] | None = None, replace: bool) -> Any:
    return store.write(view, _rows(items), remove=remove or [], replace=replace,
                       record=_record(view, len(items), len(items), len(remove or []),
                                      "full" if replace else "incremental"))


def _content(store: OnlineStore, view: str) -> dict[str, tuple[int, dict[str, Any]]]:
    table = store.stored(view)
    return {k: (e, json.loads(p)) for k, e, p in zip(*(table.column(c).to_pylist()
                                                        for c in ("entity_key", "event_us", "payload")), strict=True)}


def test_a_full_write_then_lookups(metadata: MetadataStore) -> None:
    store = OnlineStore(metadata)
    first = {str(i): (1_000 + i, {"n": i, "b": i / 2, "s": f"é{i}", "ok": i % 2 == 0, "none": None})
             for i in range(50)}
    result = _write(store, "history", first, replace=True)
    assert (result.keys, result.written, result.deleted) == (50, 50, 0)
    _write(store, "other", {"1": (5, {"x": 1})}, replace=True)
    found = store.lookup("history", ["3", "49", "nope", "3"])
    assert found[2] is None
    assert found[0] == found[3] == (1_003, json.dumps(first["3"][1]))
    assert decode(found[1][1]) == first["49"][1]  # type: ignore[index]
    assert store.count("history") == 50 and store.views() == {"history": 50, "other": 1}
    # A full write replaces the view's rows, and only that view's.
    _write(store, "history", {"7": (9_999, {"n": -7}), "new": (1, {"n": 0})}, replace=True)
    assert store.lookup("history", ["3", "7", "new"]) == [None, (9_999, '{"n": -7}'), (1, '{"n": 0}')]
    assert store.views() == {"history": 2, "other": 1}
    # What the cache answers is what the database holds (a fresh store reads it).
    fresh = OnlineStore(metadata)
    assert _content(fresh, "history") == _content(store, "history") == {"7": (9_999, {"n": -7}), "new": (1, {"n": 0})}
    store.forget("other")
    assert store.views() == {"history": 2} and store.lookup("other", ["1"]) == [None]


def test_an_incremental_write_touches_only_the_keys_it_names(metadata: MetadataStore) -> None:
    store = OnlineStore(metadata)
    base = {f"k{i}": (i, {"v": i}) for i in range(20)}
    _write(store, "v", base, replace=True)
    store.lookup("v", ["k0"])  # the cache holds the view
    changed = {"k3": (103, {"v": 103}), "k4": (4, {"v": -4}), "k20": (20, {"v": 20})}
    result = _write(store, "v", changed, remove=["k5", "k6", "absent"], replace=False)
    assert (result.written, result.deleted) == (3, 3)
    want = {**{k: v for k, v in base.items() if k not in ("k5", "k6")}, **changed}
    assert _content(store, "v") == want
    assert {k: v for k, v in zip(want, store.lookup("v", list(want)), strict=True)} == {
        k: (e, json.dumps(p)) for k, (e, p) in want.items()}
    assert store.lookup("v", ["k5", "k6"]) == [None, None]
    # Another process's store (no cache) reads the same rows.
    assert _content(OnlineStore(metadata), "v") == want
    # An incremental write before the cache was ever filled, then a first read.
    cold = OnlineStore(metadata)
    _write(cold, "v", {"k1": (1, {"v": "one"})}, remove=["k2"], replace=False)
    assert cold.lookup("v", ["k1", "k2", "k3"]) == [(1, '{"v": "one"}'), None, (103, '{"v": 103}')]
    assert cold.count("v") == 18


def test_an_incremental_write_of_nothing_changes_nothing(metadata: MetadataStore) -> None:
    store = OnlineStore(metadata)
    _write(store, "v", {"a": (1, {"v": 1})}, replace=True)
    result = _write(store, "v", {}, replace=False)
    assert (result.written, result.deleted) == (0, 0)
    assert store.lookup("v", ["a"]) == [(1, '{"v": 1}')]


def test_a_second_store_sees_a_newer_materialization_after_refresh(database_url: str) -> None:
    """Two handles on one database (two servers on PostgreSQL; two stores in one process
    on a DuckDB file): the reader's cache answers until refresh_s, then the newer rows."""
    writer_db, reader_db = MetadataStore(database_url), MetadataStore(database_url)
    try:
        writer = OnlineStore(writer_db)
        reader = OnlineStore(reader_db, refresh_s=0.5)
        stale = OnlineStore(reader_db, refresh_s=3600)
        _write(writer, "v", {"a": (1, {"v": 1}), "b": (1, {"v": 1})}, replace=True)
        assert reader.lookup("v", ["a", "b"]) == stale.lookup("v", ["a", "b"]) == [(1, '{"v": 1}')] * 2
        checked = time.monotonic()
        _write(writer, "v", {"a": (2, {"v": 2})}, remove=["b"], replace=False)
        assert writer.lookup("v", ["a", "b"]) == [(2, '{"v": 2}'), None]  # the writer's own cache at once
        if time.monotonic() - checked < 0.4:
            assert reader.lookup("v", ["a", "b"]) == [(1, '{"v": 1}')] * 2  # cached: no query yet
        time.sleep(max(0.0, checked + 0.6 - time.monotonic()))
        assert reader.lookup("v", ["a", "b"]) == [(2, '{"v": 2}'), None]
        assert reader.count("v") == 1
        assert stale.lookup("v", ["a", "b"]) == [(1, '{"v": 1}')] * 2  # within its refresh_s
        # A full rewrite by the other handle is seen as well.
        _write(writer, "v", {"z": (3, {"v": 3})}, replace=True)
        time.sleep(0.6)
        assert reader.lookup("v", ["a", "z"]) == [None, (3, '{"v": 3}')]
    finally:
        writer_db.close()
        reader_db.close()


def test_status_is_status_sql_on_the_same_numbers() -> None:
    events: list[int | None] = [None, 0, 1, 999_999, 1_000_000, 1_000_001, -5, 2 ** 53]
    ttls = [0, 1, 1_000_000, 86_400_000_000]
    ats = [0, 1, 1_000_000, 1_000_001, 2_000_000, 2_000_001, 86_400_000_000, 86_400_000_001, 2 ** 53 + 1]
    grid = [(e, a) for e in events for a in ats]
    connection = offline.connect()
    try:
        connection.execute("CREATE TABLE g (__ts_us BIGINT, at_us BIGINT)")
        connection.executemany("INSERT INTO g VALUES (?, ?)", grid)
        seen = set()
        for ttl in ttls:
            got = connection.execute(f"SELECT __ts_us, at_us, {offline.status_sql('g', 'g.at_us', ttl)} FROM g "
                                     "ORDER BY rowid").fetchall()
            assert len(got) == len(grid)
            for e, a, sql_status in got:
                assert status(e, a, ttl) == sql_status, (e, a, ttl)
                seen.add(sql_status)
    finally:
        connection.close()
    assert seen == {PRESENT, EXPIRED, MISSING}
    assert status(0, 1_000_000, 1_000_000) == PRESENT and status(0, 1_000_001, 1_000_000) == EXPIRED
    assert status(0, 10 ** 18, 0) == PRESENT and status(None, 0, 0) == MISSING


KEYS = '''
[[entity]]
name = "n"
join_keys = {id = "int64"}
[[entity]]
name = "s"
join_keys = {code = "string"}
[[entity]]
name = "m"
join_keys = {region = "string", number = "int64"}
'''


def _view_toml(name: str, entity: str) -> str:
    return f'''
[[feature_view]]
name = "{name}"
entities = ["{entity}"]
source = {{repository = "r1", path = "{name}"}}
features = {{x = "float64"}}
'''


def test_entity_key_is_what_latest_sql_writes() -> None:
    definitions = from_toml(KEYS + _view_toml("by_int", "n") + _view_toml("by_str", "s") + _view_toml("by_two", "m"))
    ints = [0, 7, -3, 42, 2 ** 62, -(2 ** 63)]
    strs = ["a", "Zoë", "with space", "0042", "", "tab\tin", "emoji 🙂", "42"]
    multi = [("north", 1), ("", 0), ("south", -9), ("é", 2 ** 40)]
    ts = pa.array([1_000_000], pa.int64()).cast(pa.timestamp("us"))

    def table(columns: dict[str, pa.Array]) -> pa.Table:
        n = len(next(iter(columns.values())))
        return pa.table({**columns, "event_timestamp": pa.concat_arrays([ts] * n),
                         "x": pa.array([float(i) for i in range(n)])})

    sources = {
        ("r1", "by_int"): table({"id": pa.array(ints, pa.int64())}),
        ("r1", "by_str"): table({"code": pa.array(strs, pa.string())}),
        ("r1", "by_two"): table({"region": pa.array([m[0] for m in multi], pa.string()),
                                 "number": pa.array([m[1] for m in multi], pa.int64())}),
    }

    def register(connection: Any, name: str, repository: str, commit: str, path: str) -> None:
        connection.register(f"__arrow_{name}", sources[(repository, path)])
        connection.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM "__arrow_{name}"')

    entities = {e.name: e for e in definitions.entities}
    wanted = {"by_int": [(i,) for i in ints], "by_str": [(s,) for s in strs], "by_two": multi}
    connection = offline.connect()
    try:
        for view in definitions.views:
            keys = [k for e in view.entities for k in entities[e].join_keys]
            offline.register_view_source(connection, view, keys, "c", register)
            written = connection.execute(offline.latest_sql(view, [k for k, _ in keys], 2_000_000)).fetchall()
            by_value = {json.loads(p)["x"]: k for k, _, _, p in written}
            assert len(written) == len(wanted[view.name])
            for i, values in enumerate(wanted[view.name]):
                assert entity_key(list(values)) == by_value[float(i)], (view.name, values)
    finally:
        connection.close()


def test_materialize_incremental_writes_only_changed_keys(platform: Any, tmp_path: Path) -> None:
    """Through the facet: an incremental materialization after one key's row changed and
    one key left the source writes that one row and deletes that one key."""
    def csv(rows: list[tuple[int, str, float]]) -> bytes:
        return ("customer_id,event_timestamp,balance\n" + "".join(f"{c},{t},{b}\n" for c, t, b in rows)).encode()

    rows = [(c, "2024-01-01 00:00:00", float(c)) for c in range(1, 41)]
    repo = platform.data.repo("loans")
    repo.create(classification="internal")
    branch = repo.branch("add")
    branch.create()
    branch.upload("customers/h.csv", csv(rows))
    branch.commit("history")
    branch.merge_into("main")
    (tmp_path / "f.toml").write_text('''
[[entity]]
name = "customer"
join_keys = {customer_id = "int64"}
[[feature_view]]
name = "history"
entities = ["customer"]
source = {repository = "loans", path = "customers/*.csv"}
features = {balance = "float64"}
[[feature_service]]
name = "credit"
features = ["history"]
''')
    platform.features.apply(tmp_path / "f.toml")
    first, = platform.features.materialize(as_of="2024-06-01T00:00:00+00:00")
    assert (first.mode, first.keys, first.written, first.deleted) == ("full", 40, 40, 0)
    changed = [r for r in rows if r[0] != 40]
    changed[4] = (5, "2024-02-01 00:00:00", 555.0)
    second_branch = repo.branch("change")
    second_branch.create()
    second_branch.upload("customers/h.csv", csv(changed))
    second_branch.commit("customer 5 changed, 40 gone")
    second_branch.merge_into("main")
    second, = platform.features.materialize(as_of="2024-06-01T00:00:00+00:00")
    assert (second.mode, second.keys, second.written, second.deleted) == ("incremental", 39, 1, 1)
    again, = platform.features.materialize(as_of="2024-06-01T00:00:00+00:00")
    assert (again.written, again.deleted) == (0, 0)
    online = platform.features.online("credit", [{"customer_id": 5}, {"customer_id": 40}, {"customer_id": 6}],
                                      at="2024-02-02T00:00:00+00:00", log=False)
    assert [r["balance"] for r in online.rows] == [555.0, None, 6.0]
    assert [s["balance"] for s in online.statuses] == [PRESENT, MISSING, PRESENT]


def test_online_values_are_the_training_sets_for_every_type_and_the_skew_check_agrees(platform: Any,
                                                                                      tmp_path: Path) -> None:
    """Each dtype through materialization's JSON and back equals the point-in-time join's
    value (extreme doubles and int64s, quotes and non-ASCII text, NULLs, timestamps), and
    the skew check, comparing the two, finds nothing (a timestamp served as DuckDB writes it
    in JSON once counted as a mismatch)."""
    import io

    import pyarrow.parquet as pq

    floats = [0.1 + 0.2, 1e-300, float("nan"), -0.0, float("inf"), 2.0 ** -1074, None]
    n = len(floats)
    stamps = [datetime(2023, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC),
              datetime(1970, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
              datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(2000, 2, 29, 12, tzinfo=UTC), None]
    table = pa.table({
        "id": pa.array(range(1, n + 1), pa.int64()),
        "event_timestamp": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
        "f": pa.array(floats, pa.float64()),
        "i": pa.array([2 ** 63 - 1, -(2 ** 63), 0, 1, -1, 42, None], pa.int64()),
        "s": pa.array(['a"b', "é\\n", "tab\t", "", "😀", "x'y", None]),
        "b": pa.array([True, False, None, True, False, True, False]),
        "ts": pa.array(stamps, pa.timestamp("us", tz="UTC"))})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    repo = platform.data.repo("loans")
    repo.create(classification="internal")
    branch = repo.branch("types")
    branch.create()
    branch.upload("v/t.parquet", buffer.getvalue())
    branch.commit("every type")
    branch.merge_into("main")
    (tmp_path / "f.toml").write_text('''
[[entity]]
name = "c"
join_keys = {id = "int64"}
[[feature_view]]
name = "v"
entities = ["c"]
source = {repository = "loans", path = "v/*.parquet"}
features = {f = "float64", i = "int64", s = "string", b = "bool", ts = "timestamp"}
[[feature_service]]
name = "svc"
features = ["v"]
''')
    platform.features.apply(tmp_path / "f.toml")
    at = "2024-02-01T00:00:00+00:00"
    entities = pa.table({"id": pa.array(range(1, n + 1), pa.int64()),
                         "event_timestamp": pa.array([datetime(2024, 2, 1)] * n, pa.timestamp("us"))})
    offline_rows = platform.features.historical("svc", entities)[0].to_pylist()
    platform.features.materialize(as_of=at)
    online = platform.features.online("svc", [{"id": i} for i in range(1, n + 1)], at=at)
    for want, got in zip(offline_rows, online.rows, strict=True):
        for name in ("f", "i", "s", "b"):
            assert type(got[name]) is type(want[name]), (name, got, want)
            assert got[name] == want[name] or (math.isnan(got[name]) and math.isnan(want[name])), (name, got, want)
        assert (got["ts"] is None) == (want["ts"] is None)
        if want["ts"] is not None:
            assert datetime.fromisoformat(got["ts"]) == want["ts"]
    assert [repr(r["f"]) for r in offline_rows] == [repr(f) for f in floats]
    assert [r["ts"] for r in offline_rows] == stamps
    report = platform.features.check_skew("svc")
    assert (report.checked, report.mismatched) == (n, 0), report.rows


def test_a_writer_whose_cache_missed_another_writers_materialization_does_not_keep_it_stale(
        database_url: str) -> None:
    """Two servers materialize on one database: the one whose cache predates the other's
    write must not patch its own write onto that stale cache and call it current."""
    first_db, second_db = MetadataStore(database_url), MetadataStore(database_url)
    try:
        first = OnlineStore(first_db, refresh_s=3600)
        second = OnlineStore(second_db, refresh_s=3600)
        _write(first, "v", {"x": (1, {"v": 1}), "y": (1, {"v": 1})}, replace=True)
        assert first.lookup("v", ["x", "y"]) == [(1, '{"v": 1}')] * 2
        _write(second, "v", {"y": (2, {"v": 2})}, remove=["x"], replace=False)
        _write(first, "v", {"z": (3, {"v": 3})}, replace=False)
        want = [None, (2, '{"v": 2}'), (3, '{"v": 3}')]
        assert OnlineStore(first_db).lookup("v", ["x", "y", "z"]) == want
        assert first.lookup("v", ["x", "y", "z"]) == want
    finally:
        first_db.close()
        second_db.close()


@pytest.mark.parametrize("seed", [3, 4])
def test_online_at_the_materialization_time_equals_the_point_in_time_join(platform: Any, tmp_path: Path,
                                                                         seed: int) -> None:
    """The randomized rows of the offline test (ties, NULL created, TTL boundaries, two key
    shapes, an on-demand feature) in data repositories: materialized as of T, the online
    values and statuses at T are the training set's at T, value by value."""
    import io
    import random

    import pyarrow.parquet as pq

    from tests.unit.test_feature_offline import BASE_US, DEFINITIONS, SECOND, generate

    data = generate(seed)
    for repository in ("loans", "events"):
        repo = platform.data.repo(repository)
        repo.create(classification="internal")
        branch = repo.branch("rows")
        branch.create()
        for (owner, path), table in data.register().tables.items():
            if owner == repository:
                buffer = io.BytesIO()
                pq.write_table(table, buffer)
                branch.upload(path, buffer.getvalue())
        branch.commit("rows")
        branch.merge_into("main")
    (tmp_path / "f.toml").write_text(DEFINITIONS)
    platform.features.apply(tmp_path / "f.toml")
    rng = random.Random(seed)
    events = sorted({h["event_us"] for h in data.history})
    moments = [BASE_US - SECOND, BASE_US + 25 * SECOND + 500_000, BASE_US + 10 ** 9,
               *(e + 10 * SECOND + rng.choice([0, 1]) for e in rng.sample(events, k=3))]
    rows = [{"customer_id": c, "region": r, "branch_no": b, "amount": float(c * 10 + b)}
            for c in [*range(1, 9), 99] for r in ("north", "south") for b in (1, 2, 3)]
    compared = {PRESENT: 0, EXPIRED: 0, MISSING: 0}
    for i, moment in enumerate(moments):
        at = EPOCH + timedelta(microseconds=moment)
        platform.features.materialize(as_of=at, mode="full" if i % 2 else "incremental")
        online = platform.features.online("credit", rows, at=at, log=False)
        entities = pa.table({"customer_id": pa.array([r["customer_id"] for r in rows], pa.int64()),
                             "region": pa.array([r["region"] for r in rows]),
                             "branch_no": pa.array([r["branch_no"] for r in rows], pa.int64()),
                             "amount": pa.array([r["amount"] for r in rows]),
                             "event_timestamp": pa.array([at] * len(rows), pa.timestamp("us", tz="UTC"))})
        table, _ = platform.features.historical("credit", entities, statuses=True)
        for j, (want, got, states) in enumerate(zip(table.to_pylist(), online.rows, online.statuses, strict=True)):
            for name in online.features:
                assert states[name] == want[f"__status__{name}"], (moment, j, name)
                assert got[name] == (pytest.approx(want[name]) if isinstance(want[name], float) else want[name]), (
                    moment, j, name, got, want)
                compared[states[name]] += 1
    assert all(compared.values()), compared
