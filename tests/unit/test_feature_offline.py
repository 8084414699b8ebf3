"""The point-in-time join (mlops_lite.features.offline) against a brute-force reference
written in plain Python, on randomized rows that hit every edge: exact event-time ties
broken by created time (NULL created last), entity rows before any feature row, rows at
exactly the TTL (present) and one microsecond over (expired), a TTL of zero, views with
different keys and TTLs, and an on-demand expression. No platform: DuckDB over Arrow
tables the test builds."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from mlops_lite.errors import InvalidInput
from mlops_lite.features import offline
from mlops_lite.features.definitions import Definitions, FeatureView, ServicePlan, from_toml

BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
SECOND = 1_000_000
EPOCH = datetime(1970, 1, 1)

DEFINITIONS = '''
[[entity]]
name = "customer"
join_keys = {customer_id = "int64"}

[[entity]]
name = "branch"
join_keys = {region = "string", branch_no = "int64"}

[[feature_view]]
name = "history"
entities = ["customer"]
source = {repository = "loans", path = "history.parquet"}
timestamp_field = "event_timestamp"
created_timestamp_field = "created"
ttl = "10s"
features = {n_loans = "int64", balance = "float64"}

[[feature_view]]
name = "activity"
entities = ["customer"]
source = {repository = "events", query = "select * from raw where customer_id >= 0", tables = {raw = "activity.parquet"}}
timestamp_field = "ts"
ttl = "5s"
features = {channel = "string", flagged = "bool"}

[[feature_view]]
name = "branch_stats"
entities = ["branch"]
source = {repository = "loans", path = "branches.parquet"}
features = {staff = "int64"}

[[on_demand]]
name = "ratios"
request = {amount = "float64"}
sources = ["history"]
features = {burden = {dtype = "float64", expression = "amount / (balance + 1)"}}

[[feature_service]]
name = "credit"
features = ["history", "activity:channel", "activity:flagged", "branch_stats:staff", "ratios:burden"]
'''

COMMITS = {"loans": "c-loans", "events": "c-events"}


def _ts(values: Sequence[int | None], tz: str | None = None) -> pa.Array:
    return pa.array(values, pa.int64()).cast(pa.timestamp("us", tz=tz))


class Tables:
    """The Arrow tables a test serves as sources, by (repository, path); a ``register``
    callable of the shape offline.historical takes."""

    def __init__(self, tables: dict[tuple[str, str], pa.Table]) -> None:
        self.tables = tables
        self.asked: list[tuple[str, str, str]] = []

    def __call__(self, connection: Any, name: str, repository: str, commit: str, path: str) -> None:
        self.asked.append((repository, commit, path))
        connection.register(f"__arrow_{name}", self.tables[(repository, path)])
        connection.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM "__arrow_{name}"')


@dataclass
class Data:
    history: list[dict[str, Any]]   # customer_id, event_us, created_us, n_loans, balance
    activity: list[dict[str, Any]]  # customer_id, event_us, channel, flagged
    branches: list[dict[str, Any]]  # region, branch_no, event_us, staff
    entities: list[dict[str, Any]]  # customer_id, region, branch_no, t_us, amount, label, note

    def register(self) -> Tables:
        h = self.history
        history = pa.table({
            "customer_id": pa.array([r["customer_id"] for r in h], pa.int32()),  # a narrower int: cast
            "event_timestamp": _ts([r["event_us"] for r in h], "UTC"),
            "created": _ts([r["created_us"] for r in h]),
            "n_loans": pa.array([r["n_loans"] for r in h], pa.int64()),
            "balance": pa.array([r["balance"] for r in h], pa.float64()),
            "unused": pa.array(["x"] * len(h), pa.string())})
        a = self.activity
        activity = pa.table({
            "customer_id": pa.array([r["customer_id"] for r in a], pa.int64()),
            "ts": _ts([r["event_us"] for r in a]),
            "channel": pa.array([r["channel"] for r in a], pa.string()),
            "flagged": pa.array([r["flagged"] for r in a], pa.bool_())})
        b = self.branches
        branches = pa.table({
            "region": pa.array([r["region"] for r in b], pa.string()),
            "branch_no": pa.array([r["branch_no"] for r in b], pa.int64()),
            "event_timestamp": _ts([r["event_us"] for r in b], "UTC"),
            "staff": pa.array([r["staff"] for r in b], pa.int64())})
        return Tables({("loans", "history.parquet"): history, ("events", "activity.parquet"): activity,
                       ("loans", "branches.parquet"): branches})

    def entity_table(self) -> pa.Table:
        e = self.entities
        return pa.table({
            "label": pa.array([r["label"] for r in e], pa.int64()),
            "customer_id": pa.array([r["customer_id"] for r in e], pa.int64()),
            "event_timestamp": _ts([r["t_us"] for r in e]),
            "region": pa.array([r["region"] for r in e], pa.string()),
            "branch_no": pa.array([r["branch_no"] for r in e], pa.int64()),
            "amount": pa.array([r["amount"] for r in e], pa.float64()),
            "note": pa.array([r["note"] for r in e], pa.string())})


def generate(seed: int) -> Data:
    rng = random.Random(seed)
    customers = list(range(1, 9))
    history: list[dict[str, Any]] = []
    for c in customers[:-1]:  # the last customer has no history at all
        for _ in range(rng.randint(0, 8)):
            event = BASE_US + rng.randint(0, 40) * SECOND
            history.append({"customer_id": c, "event_us": event})
    # Exact event-time ties: copies of some rows' (key, event time) with other created times.
    for row in rng.sample(history, k=len(history) // 3):
        history.append({"customer_id": row["customer_id"], "event_us": row["event_us"]})
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in history:
        by_key.setdefault((row["customer_id"], row["event_us"]), []).append(row)
    for rows in by_key.values():  # distinct created times per (key, event), at most one NULL
        created = rng.sample(range(0, 100), k=len(rows))
        null_one = rng.random() < 0.4
        for i, row in enumerate(rows):
            row["created_us"] = None if null_one and i == 0 else row["event_us"] + created[i] * SECOND
    for row in history:
        row["n_loans"] = rng.randint(0, 9)
        row["balance"] = None if rng.random() < 0.1 else round(rng.uniform(0, 1000), 3)
    rng.shuffle(history)
    activity = [{"customer_id": c, "event_us": BASE_US + rng.randint(0, 40) * SECOND + rng.randint(0, 999_999),
                 "channel": rng.choice(["web", "branch", "phone"]), "flagged": rng.random() < 0.5}
                for c in customers for _ in range(rng.randint(0, 4))]
    # One row per (key, event time) in activity: it has no created time to break a tie.
    activity = list({(r["customer_id"], r["event_us"]): r for r in activity}.values())
    regions = ["north", "south"]
    branches = [{"region": rng.choice(regions), "branch_no": rng.randint(1, 3),
                 "event_us": BASE_US + rng.randint(0, 40) * SECOND, "staff": rng.randint(1, 50)}
                for _ in range(10)]
    branches = list({(r["region"], r["branch_no"], r["event_us"]): r for r in branches}.values())
    entities: list[dict[str, Any]] = []
    for i in range(60):
        c = rng.choice([*customers, 99])
        kind = rng.random()
        own = [r for r in history if r["customer_id"] == c]
        if kind < 0.35 and own:  # exactly at the TTL, or one microsecond over
            t = rng.choice(own)["event_us"] + 10 * SECOND + rng.choice([0, 1, 0, -1])
        elif kind < 0.45:
            t = BASE_US - rng.randint(1, 5) * SECOND  # before any feature row
        else:
            t = BASE_US + rng.randint(0, 60) * SECOND + rng.choice([0, 0, 1, 500_000])
        entities.append({"customer_id": c, "region": rng.choice(regions), "branch_no": rng.randint(1, 3),
                         "t_us": t, "amount": round(rng.uniform(1, 500), 2), "label": i % 2, "note": f"row-{i}"})
    return Data(history, activity, branches, entities)


def _latest(rows: list[dict[str, Any]], match: dict[str, Any], t_us: int, *, created: bool) -> dict[str, Any] | None:
    """The brute-force rule: the latest event time <= t; ties: the latest created (NULL last)."""
    candidates = [r for r in rows if all(r[k] == v for k, v in match.items())
                  and r["event_us"] is not None and r["event_us"] <= t_us]
    if not candidates:
        return None
    if created:
        return max(candidates, key=lambda r: (r["event_us"], r["created_us"] is not None, r["created_us"] or 0))
    return max(candidates, key=lambda r: r["event_us"])


def _state(row: dict[str, Any] | None, t_us: int, ttl_us: int) -> str:
    if row is None:
        return "missing"
    return "expired" if ttl_us > 0 and t_us - row["event_us"] > ttl_us else "present"


def reference(data: Data) -> list[dict[str, Any]]:
    out = []
    for e in data.entities:
        t = e["t_us"]
        h = _latest(data.history, {"customer_id": e["customer_id"]}, t, created=True)
        a = _latest(data.activity, {"customer_id": e["customer_id"]}, t, created=False)
        b = _latest(data.branches, {"region": e["region"], "branch_no": e["branch_no"]}, t, created=False)
        hs, as_, bs = _state(h, t, 10 * SECOND), _state(a, t, 5 * SECOND), _state(b, t, 0)
        row: dict[str, Any] = {"label": e["label"], "customer_id": e["customer_id"], "region": e["region"],
                               "branch_no": e["branch_no"], "amount": e["amount"], "note": e["note"]}
        row["n_loans"] = h["n_loans"] if h and hs == "present" else None
        row["balance"] = h["balance"] if h and hs == "present" else None
        row["channel"] = a["channel"] if a and as_ == "present" else None
        row["flagged"] = a["flagged"] if a and as_ == "present" else None
        row["staff"] = b["staff"] if b and bs == "present" else None
        row["burden"] = None if row["balance"] is None else e["amount"] / (row["balance"] + 1)
        row.update({"__status__n_loans": hs, "__status__balance": hs, "__status__channel": as_,
                    "__status__flagged": as_, "__status__staff": bs, "__status__burden": hs})
        out.append(row)
    return out


def _plan(text: str = DEFINITIONS, service: str = "credit") -> ServicePlan:
    definitions = from_toml(text)
    return ServicePlan.of(next(s for s in definitions.services if s.name == service), definitions)


def _run(data: Data, *, statuses: bool = True) -> list[dict[str, Any]]:
    tables = data.register()
    result = offline.historical(_plan(), data.entity_table(), COMMITS, tables, statuses=statuses)
    assert {(r, c) for r, c, _ in tables.asked} == {("loans", "c-loans"), ("events", "c-events")}
    rows = result.to_pylist()
    for row, entity in zip(rows, data.entities, strict=True):
        assert row.pop("event_timestamp") == EPOCH + timedelta(microseconds=entity["t_us"])
    return rows


def _compare(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert list(g) == list(w), i
        for column in w:
            if column == "burden" and w[column] is not None:
                assert g[column] == pytest.approx(w[column], rel=1e-12), (i, column, g, w)
            else:
                assert g[column] == w[column], (i, column, g, w)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6, 7, 8])
def test_the_point_in_time_join_equals_the_brute_force_reference(seed: int) -> None:
    data = generate(seed)
    got = _run(data)
    want = reference(data)
    _compare(got, want)
    # The edges the data is made to hit, hit in every seed's run.
    states = [r["__status__n_loans"] for r in want]
    assert {"present", "expired", "missing"} <= set(states), states
    at_ttl = [e for e in data.entities if any(
        h["customer_id"] == e["customer_id"] and e["t_us"] - h["event_us"] in (10 * SECOND, 10 * SECOND + 1)
        for h in data.history)]
    assert at_ttl


def test_the_edges_explicitly() -> None:
    """One customer, rows placed by hand: every rule checked on its own."""
    t0 = BASE_US + 100 * SECOND
    history = [
        {"customer_id": 1, "event_us": t0, "created_us": t0 + 5, "n_loans": 1, "balance": 10.0},
        {"customer_id": 1, "event_us": t0, "created_us": t0 + 9, "n_loans": 2, "balance": 20.0},  # tie: latest created
        {"customer_id": 1, "event_us": t0, "created_us": None, "n_loans": 3, "balance": 30.0},  # NULL created: last
        {"customer_id": 2, "event_us": t0, "created_us": None, "n_loans": 7, "balance": 70.0},  # NULL alone: kept
    ]
    branches = [{"region": "north", "branch_no": 1, "event_us": BASE_US, "staff": 12}]
    activity = [{"customer_id": 1, "event_us": t0, "channel": "web", "flagged": True}]
    cases = [  # (customer, t, want n_loans, want status)
        (1, t0 - 1, None, "missing"),
        (1, t0, 2, "present"),
        (1, t0 + 10 * SECOND, 2, "present"),  # exactly at the TTL
        (1, t0 + 10 * SECOND + 1, None, "expired"),  # one microsecond over
        (2, t0 + 3 * SECOND, 7, "present"),
        (3, t0, None, "missing"),
    ]
    entities = [{"customer_id": c, "region": "north", "branch_no": 1, "t_us": t, "amount": 1.0, "label": 0,
                 "note": str(i)} for i, (c, t, _, _) in enumerate(cases)]
    entities.append({"customer_id": 1, "region": "north", "branch_no": 1, "t_us": BASE_US + 10 * 365 * 86400 * SECOND,
                     "amount": 1.0, "label": 0, "note": "ten years on"})
    got = _run(Data(history, activity, branches, entities))
    assert [(r["n_loans"], r["__status__n_loans"]) for r in got[:-1]] == [(n, s) for _, _, n, s in cases]
    # A TTL of zero never expires: branch_stats ten years on.
    assert (got[-1]["staff"], got[-1]["__status__staff"]) == (12, "present")
    assert got[-1]["__status__n_loans"] == "expired" and got[-1]["burden"] is None
    assert [r["__status__channel"] for r in got[:4]] == ["missing", "present", "expired", "expired"]
    assert got[1]["burden"] == pytest.approx(1.0 / 21.0)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_leakage_rows_after_every_entity_time_never_appear(seed: int) -> None:
    data = generate(seed)
    clean = _run(data)
    latest = max(e["t_us"] for e in data.entities)
    rng = random.Random(seed)
    customers = sorted({e["customer_id"] for e in data.entities})
    planted = Data(
        history=[*data.history, *({"customer_id": c, "event_us": latest + rng.choice([1, SECOND, 86400 * SECOND]),
                                   "created_us": latest - 10 ** 12, "n_loans": -999, "balance": -1e9}
                                  for c in customers)],
        activity=[*data.activity, *({"customer_id": c, "event_us": latest + 1, "channel": "FUTURE", "flagged": True}
                                    for c in customers)],
        branches=[*data.branches, *({"region": r, "branch_no": n, "event_us": latest + 1, "staff": -999}
                                    for r in ("north", "south") for n in (1, 2, 3))],
        entities=data.entities)
    leaked = _run(planted)
    assert leaked == clean
    for row in leaked:
        assert -999 not in (row["n_loans"], row["staff"]) and row["balance"] != -1e9 and row["channel"] != "FUTURE"


def test_an_entity_row_without_a_time_gets_no_feature_values() -> None:
    """DuckDB's ASOF JOIN matches a NULL time to some row: such an entity row must get
    missing values, not whatever row that was (a future one, as likely as not)."""
    data = generate(17)
    blank = set(range(0, len(data.entities), 3))
    times = [None if i in blank else e["t_us"] for i, e in enumerate(data.entities)]
    entities = data.entity_table().set_column(2, "event_timestamp", _ts(times))
    got = offline.historical(_plan(), entities, COMMITS, data.register(), statuses=True).to_pylist()
    want = reference(data)
    features = ["n_loans", "balance", "channel", "flagged", "staff", "burden"]
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if i in blank:
            assert [g[f] for f in features] == [None] * len(features), (i, g)
            assert {g[f"__status__{f}"] for f in features} == {"missing"}, (i, g)
        else:
            assert [g[f"__status__{f}"] for f in features] == [w[f"__status__{f}"] for f in features], i
            assert [g[f] for f in features[:-1]] == [w[f] for f in features[:-1]], i


@pytest.mark.parametrize("kind", [pa.timestamp("us", tz="Asia/Dubai"), pa.timestamp("ns"),
                                  pa.timestamp("us", tz="UTC"), pa.timestamp("ns", tz="America/New_York")])
def test_the_entity_times_zone_and_unit_do_not_change_the_answer(kind: pa.DataType) -> None:
    """Naive times are UTC; zoned ones are the instants they name."""
    data = generate(5)
    entities = data.entity_table()
    want = offline.historical(_plan(), entities, COMMITS, data.register(), statuses=True)
    zoned = entities.set_column(2, "event_timestamp", entities.column("event_timestamp").cast(kind))
    got = offline.historical(_plan(), zoned, COMMITS, data.register(), statuses=True)
    assert got.drop_columns(["event_timestamp"]).equals(want.drop_columns(["event_timestamp"]))


def test_the_entity_rows_order_and_extra_columns_are_kept() -> None:
    data = generate(21)
    rng = random.Random(21)
    rng.shuffle(data.entities)
    entities = data.entity_table().append_column("extra_ts", _ts([e["t_us"] + 7 for e in data.entities]))
    result = offline.historical(_plan(), entities, COMMITS, data.register(), statuses=False)
    assert result.column_names == ["label", "customer_id", "event_timestamp", "region", "branch_no", "amount", "note",
                                   "extra_ts", "n_loans", "balance", "channel", "flagged", "staff", "burden"]
    assert result.column("note").to_pylist() == [e["note"] for e in data.entities]
    assert result.column("extra_ts").to_pylist() == entities.column("extra_ts").to_pylist()
    assert result.column("label").to_pylist() == [e["label"] for e in data.entities]
    # An entity column named like a feature is replaced by the feature, not duplicated.
    shadowed = entities.append_column("staff", pa.array([-1] * entities.num_rows, pa.int64()))
    again = offline.historical(_plan(), shadowed, COMMITS, data.register(), statuses=False)
    assert again.column_names == result.column_names and again.equals(result)


def test_an_on_demand_expression_reads_the_views_value_not_an_entity_column_of_its_name() -> None:
    """Online, an on-demand expression reads the view's features over the request; so does
    the training set, where an entity column named like a feature the service only reads
    (not serves) gives way to the feature."""
    text = DEFINITIONS + '\n[[feature_service]]\nname = "burden_only"\nfeatures = ["ratios:burden"]\n'
    data = generate(41)
    entities = data.entity_table().append_column("balance", pa.array([1e6] * len(data.entities), pa.float64()))
    result = offline.historical(_plan(text, "burden_only"), entities, COMMITS, data.register(), statuses=True)
    assert "balance" not in result.column_names
    want = reference(data)
    assert result.column("burden").to_pylist() == pytest.approx([w["burden"] for w in want], rel=1e-12)
    assert result.column("__status__burden").to_pylist() == [w["__status__burden"] for w in want]
    assert any(w["burden"] is not None for w in want)


def _source(connection: Any, view: FeatureView, keys: list[tuple[str, str]], table: pa.Table) -> None:
    offline.register_view_source(connection, view, keys, "c1", Tables({(view.source.repository, view.source.path
                                                                           or ""): table}))


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_latest_sql_is_the_latest_row_per_key_at_or_before_as_of(seed: int) -> None:
    data = generate(seed)
    definitions: Definitions = from_toml(DEFINITIONS)
    history = next(v for v in definitions.views if v.name == "history")
    branches = next(v for v in definitions.views if v.name == "branch_stats")
    tables = data.register()
    rng = random.Random(seed)
    for as_of in [BASE_US - 1, BASE_US + 20 * SECOND, BASE_US + rng.randint(0, 40) * SECOND, BASE_US + 10 ** 12]:
        connection = offline.connect()
        try:
            offline.register_view_source(connection, history, [("customer_id", "int64")], "c", tables)
            offline.register_view_source(connection, branches, [("region", "string"), ("branch_no", "int64")], "c",
                                         tables)
            got_h = connection.execute(offline.latest_sql(history, ["customer_id"], as_of)).fetchall()
            got_b = connection.execute(offline.latest_sql(branches, ["region", "branch_no"], as_of)).fetchall()
        finally:
            connection.close()
        want_h = {}
        for c in {r["customer_id"] for r in data.history}:
            row = _latest(data.history, {"customer_id": c}, as_of, created=True)
            if row is not None:
                want_h[str(c)] = (row["event_us"], row["created_us"],
                                  {"n_loans": row["n_loans"], "balance": row["balance"]})
        assert {k: (e, c, json.loads(p)) for k, e, c, p in got_h} == want_h
        assert len(got_h) == len(want_h)
        want_b = {}
        for region, number in {(r["region"], r["branch_no"]) for r in data.branches}:
            row = _latest(data.branches, {"region": region, "branch_no": number}, as_of, created=False)
            if row is not None:
                want_b[f"{region}\x1f{number}"] = (row["event_us"], None, {"staff": row["staff"]})
        assert {k: (e, c, json.loads(p)) for k, e, c, p in got_b} == want_b


def _view(extra: str = "", features: str = 'n_loans = "int64", balance = "float64"') -> FeatureView:
    text = f'''
[[entity]]
name = "customer"
join_keys = {{customer_id = "int64"}}
[[feature_view]]
name = "history"
entities = ["customer"]
source = {{repository = "loans", path = "h.parquet"}}
features = {{{features}}}
{extra}
'''
    return from_toml(text).views[0]


GOOD = {"customer_id": pa.array([1], pa.int64()), "event_timestamp": _ts([BASE_US]),
        "n_loans": pa.array([1], pa.int64()), "balance": pa.array([1.5], pa.float64()),
        "created": _ts([BASE_US])}


@pytest.mark.parametrize(("columns", "extra", "field"), [
    ({"balance": None}, "", "feature_view.history.features.balance"),
    ({"n_loans": pa.array(["1"], pa.string())}, "", "feature_view.history.features.n_loans"),
    ({"balance": pa.array([True], pa.bool_())}, "", "feature_view.history.features.balance"),
    ({"event_timestamp": pa.array([BASE_US], pa.int64())}, "", "feature_view.history.timestamp_field"),
    ({"event_timestamp": pa.array(["2024-01-01"], pa.string())}, "", "feature_view.history.timestamp_field"),
    ({}, 'timestamp_field = "when"', "feature_view.history.timestamp_field"),
    ({"created": pa.array([1], pa.int64())}, 'created_timestamp_field = "created"',
     "feature_view.history.created_timestamp_field"),
    ({}, 'created_timestamp_field = "made"', "feature_view.history.created_timestamp_field"),
    ({"customer_id": None}, "", "feature_view.history.entities (join key 'customer_id')"),
    ({"customer_id": pa.array(["1"], pa.string())}, "", "feature_view.history.entities (join key 'customer_id')"),
])
def test_source_mistakes_are_refused_naming_the_field(columns: dict[str, Any], extra: str, field: str) -> None:
    table = {**GOOD, **columns}
    arrow = pa.table({k: v for k, v in table.items() if v is not None})
    connection = offline.connect()
    try:
        with pytest.raises(InvalidInput) as refused:
            _source(connection, _view(extra), [("customer_id", "int64")], arrow)
    finally:
        connection.close()
    assert refused.value.field == field


def test_a_source_query_that_does_not_run_names_the_source() -> None:
    definitions = from_toml(DEFINITIONS.replace("select * from raw where customer_id >= 0", "select nope from raw"))
    plan = ServicePlan.of(definitions.services[0], definitions)
    data = generate(1)
    with pytest.raises(InvalidInput) as refused:
        offline.historical(plan, data.entity_table(), COMMITS, data.register())
    assert refused.value.field == "feature_view.activity.source"


@pytest.mark.parametrize(("change", "field"), [
    (lambda t: t.drop_columns(["customer_id"]), "entities.customer_id"),
    (lambda t: t.set_column(1, "customer_id", pa.array([str(x) for x in t.column("customer_id").to_pylist()])),
     "entities.customer_id"),
    (lambda t: t.set_column(4, "branch_no", pa.array([1.5] * t.num_rows)), "entities.branch_no"),
    (lambda t: t.drop_columns(["event_timestamp"]), "entities.event_timestamp"),
    (lambda t: t.set_column(2, "event_timestamp", pa.array(["2024"] * t.num_rows)), "entities.event_timestamp"),
    (lambda t: t.drop_columns(["amount"]), "entities.amount"),
])
def test_entity_row_mistakes_are_refused_naming_the_column(change: Any, field: str) -> None:
    data = generate(2)
    with pytest.raises(InvalidInput) as refused:
        offline.historical(_plan(), change(data.entity_table()), COMMITS, data.register())
    assert refused.value.field == field


def test_status_sql_is_the_ttl_rule() -> None:
    connection = offline.connect()
    try:
        for ttl in (0, 10):
            sql = offline.status_sql("v", "t", ttl)
            got = connection.execute(
                f"SELECT {sql} FROM (VALUES (NULL, 5), (0, 10), (0, 11), (0, 10000000)) v(__ts_us, t)").fetchall()
            assert [g[0] for g in got] == (["missing", "present", "present", "present"] if ttl == 0 else
                                           ["missing", "present", "expired", "expired"])
    finally:
        connection.close()
