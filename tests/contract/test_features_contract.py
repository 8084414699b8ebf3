"""The feature store's contract (``platform.features``), asked of a local Platform and of a
RemotePlatform over HTTP alike (and of both on PostgreSQL with ``--postgres``): definitions
applied, validated and versioned; training sets pinned at data commits; materialization full
and incremental; online lookups whose statuses and values are the point-in-time join's at
the same time (the TTL applied the same way); entity-keyed predictions; bad input refused
with the field named, 422 over HTTP, and nothing changed.

The data: repository ``custs`` with a customer history (event and created timestamps),
committed on a branch and merged to ``main`` (main is protected)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from mlops_lite import Conflict, InvalidInput, NotFound
from mlops_lite.features import EXPIRED, MISSING, PRESENT
from tests.contract.conftest import owner_of, refused

REPO = "custs"
T = "2024-03-15T00:00:00+00:00"  # the moment the online lookups and the training set's rows are at
PRESENT_IDS = list(range(1, 31))  # history on 2024-01-01 and 2024-03-01: present at T (TTL 30 days)
EXPIRED_IDS = [41, 42, 43]  # history only on 2024-01-01: expired at T
MISSING_IDS = [99]  # no history at all


def _history() -> bytes:
    lines = ["customer_id,event_timestamp,created,n_loans,balance"]
    for c in PRESENT_IDS:
        lines.append(f"{c},2024-01-01 00:00:00,2024-01-01 00:00:00,{c % 3},{c * 1.5:.2f}")
        lines.append(f"{c},2024-03-01 00:00:00,2024-03-01 00:00:00,{c % 5},{c * 3.25:.2f}")
    # A tie on the event time: the later created row wins.
    lines.append("1,2024-03-01 00:00:00,2024-03-02 00:00:00,7,777.0")
    # A row after T: it must never be seen at T (no leakage), online or offline.
    lines.append("2,2024-04-01 00:00:00,2024-04-01 00:00:00,9,999.0")
    for c in EXPIRED_IDS:
        lines.append(f"{c},2024-01-01 00:00:00,2024-01-01 00:00:00,1,{c}.5")
    return ("\n".join(lines) + "\n").encode()


def _entity_rows() -> bytes:
    ids = [*PRESENT_IDS, *EXPIRED_IDS, *MISSING_IDS]
    return ("customer_id,event_timestamp\n" + "".join(f"{c},2024-03-15 00:00:00\n" for c in ids)).encode()


def _applications() -> bytes:
    """Entity rows with a label a model can learn from the features (balance)."""
    lines = ["customer_id,event_timestamp,default"]
    for c in PRESENT_IDS:
        for day in ("2024-03-05", "2024-03-10"):
            lines.append(f"{c},{day} 00:00:00,{int(c > 15)}")
    return ("\n".join(lines) + "\n").encode()


def _merge(api: Any, files: dict[str, bytes], message: str) -> str:
    """Commit ``files`` on a new branch and merge it to main; main's commit."""
    repo = api.data.repo(REPO)
    repo.create(classification="internal", exist_ok=True)
    branch = repo.branch(f"b{abs(hash(message)) % 10**8}")
    branch.create("main")
    for path, content in files.items():
        branch.upload(path, content)
    branch.commit(message)
    branch.merge_into("main")
    return str(repo.ref("main").log()[0].id)


def _mapping(ttl: str = "30d") -> dict[str, Any]:
    """The definitions as the mapping a TOML file holds."""
    return {
        "entity": [{"name": "customer", "join_keys": {"customer_id": "int64"}}],
        "feature_view": [{"name": "history", "entities": ["customer"],
                          "source": {"repository": REPO, "path": "customers/*.csv"},
                          "timestamp_field": "event_timestamp", "created_timestamp_field": "created", "ttl": ttl,
                          "features": {"n_loans": "int64", "balance": "float64"}}],
        "feature_service": [{"name": "credit", "features": ["history"]}],
    }


@pytest.fixture
def store(api: Any) -> Any:
    """``api`` with the customer history on main and the definitions applied."""
    _merge(api, {"customers/h.csv": _history(), "entities/at.csv": _entity_rows(),
                 "apps/a.csv": _applications()}, "customers")
    api.features.apply(_mapping())
    return api


def _state(api: Any) -> tuple[Any, ...]:
    """What a refused call must leave as it was."""
    return (sorted((r.kind, r.name, r.digest) for r in api.features.list()), api.features.services(),
            api.features.versions("credit") if "credit" in api.features.services() else [])


# --- definitions -----------------------------------------------------------------------------


def test_apply_versions_by_content_and_keeps_history(api: Any) -> None:
    _merge(api, {"customers/h.csv": _history()}, "customers")
    first = api.features.apply(_mapping())
    assert first.changed and not first.dry_run
    assert {(c.kind, c.name, c.action) for c in first.changes} == {
        ("entity", "customer", "created"), ("feature_view", "history", "created"),
        ("feature_service", "credit", "created")}
    assert first.commits == {REPO: api.data.repo(REPO).ref("main").log()[0].id}
    version = first.services["credit"]
    assert api.features.services() == ["credit"]
    record = api.features.service("credit")
    assert (record.version, record.features, record.join_keys, record.current) == (
        version, ("n_loans", "balance"), {"customer_id": "int64"}, True)
    assert record.dtypes == {"n_loans": "int64", "balance": "float64"}
    assert record.views["history"]["ttl_seconds"] == 30 * 86400.0

    again = api.features.apply(_mapping())
    assert not again.changed and {c.action for c in again.changes} == {"unchanged"}
    assert again.services == {"credit": version} and api.features.versions("credit") == [version]

    preview = api.features.apply(_mapping(ttl="7d"), dry_run=True)
    assert preview.dry_run and preview.services["credit"] != version
    assert api.features.service("credit").version == version  # a dry run changes nothing

    changed = api.features.apply(_mapping(ttl="7d"))
    assert {(c.kind, c.name, c.action) for c in changed.changes if c.action != "unchanged"} == {
        ("feature_view", "history", "changed"), ("feature_service", "credit", "changed")}
    new_version = changed.services["credit"]
    assert new_version != version
    assert api.features.versions("credit") == [new_version, version]
    old = api.features.service("credit", version)
    assert (old.version, old.current, old.views["history"]["ttl_seconds"]) == (version, False, 30 * 86400.0)
    assert api.features.service("credit").views["history"]["ttl_seconds"] == 7 * 86400.0
    history = api.features.history("feature_view", "history")
    assert [h.spec["ttl_seconds"] for h in history] == [7 * 86400.0, 30 * 86400.0]
    assert [h.current for h in history] == [True, False]
    assert [r.name for r in api.features.list("feature_view")] == ["history"]
    assert refused(NotFound, lambda: api.features.history("feature_view", "nope"))
    assert refused(InvalidInput, lambda: api.features.list("views")).field == "kind"
    assert refused(NotFound, lambda: api.features.service("nope"))


def _bad(mapping: dict[str, Any], change: Any) -> dict[str, Any]:
    bad = copy.deepcopy(mapping)
    change(bad)
    return bad


BAD_DEFINITIONS = [
    ("unknown column", lambda m: m["feature_view"][0]["features"].update(credit_score="float64"),
     "feature_view.history.features.credit_score"),
    ("wrong type", lambda m: m["feature_view"][0]["features"].update(balance="timestamp"),
     "feature_view.history.features.balance"),
    ("join-key type mismatch", lambda m: m["entity"][0].update(join_keys={"customer_id": "string"}),
     "feature_view.history.entities (join key 'customer_id')"),
    ("unknown entity", lambda m: m["feature_view"][0].update(entities=["client"]),
     "feature_view.history.entities"),
    ("a feature twice in a service", lambda m: m["feature_service"][0].update(features=["history", "history:balance"]),
     "feature_service.credit.features"),
    ("a service named like a route", lambda m: m["feature_service"][0].update(name="apply"),
     "feature_service.name"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD_DEFINITIONS, ids=[c[0] for c in BAD_DEFINITIONS])
def test_bad_definitions_name_the_field_and_change_nothing(store: Any, case: str, change: Any, field: str) -> None:
    before = _state(store)
    error = refused(InvalidInput, lambda: store.features.apply(_bad(_mapping(ttl="9d"), change)))
    assert error.field == field, (case, error.field, str(error))
    assert _state(store) == before


def test_a_spec_that_skips_the_clients_checks_is_refused_by_the_server(store: Any) -> None:
    """The server validates the specs it is sent (a client may send anything)."""
    if not store.remote:
        pytest.skip("the wire format is the remote's: the local facet takes Definitions")
    specs = [{"kind": "entity", "name": "customer", "join_keys": [["customer_id", "float64"]], "description": ""}]
    for body, field in (({"definitions": specs}, "entity.customer.join_keys.customer_id"),
                        ({"definitions": [{"kind": "table", "name": "x"}]}, "kind"),
                        ({"definitions": "x"}, "definitions"),
                        ({"definitions": [{"kind": "feature_service", "name": "s", "features": [1]}]},
                         "definitions[0]"),
                        ({"definitions": [], "colour": "red"}, "colour")):
        error = refused(InvalidInput, lambda body=body: store.request("POST", "/v1/features/apply", json=body))
        assert error.field == field, (body, error.field)


# --- training sets, materialization, online lookups ---------------------------------------------


def test_a_training_set_is_pinned_at_its_commits(store: Any) -> None:
    commit = store.data.repo(REPO).ref("main").log()[0].id
    record = store.features.training_set("credit", repository=REPO, path="entities/at.csv")
    assert record.commits == {REPO: commit}
    assert record.rows == len(PRESENT_IDS) + len(EXPIRED_IDS) + len(MISSING_IDS)
    assert set(record.columns) >= {"customer_id", "event_timestamp", "n_loans", "balance"}
    assert record.service == "credit" and record.service_version == store.features.service("credit").version
    assert record.entities["repository"] == REPO and record.entities["commit"] == commit
    assert store.features.get_training_set(record.id) == record
    assert [r.id for r in store.features.training_sets("credit")] == [record.id]
    assert store.features.training_sets("other") == []
    table = store.features.training_set_table(record.id)
    rows = {r["customer_id"]: r for r in table.to_pylist()}
    assert (rows[1]["n_loans"], rows[1]["balance"]) == (7, 777.0)  # the tie: the later created row
    assert rows[2]["balance"] == 2 * 3.25  # not the row of 2024-04-01
    assert rows[41]["balance"] is None and rows[99]["balance"] is None
    # The same rows again at the same commit: the same training set.
    assert store.features.training_set("credit", repository=REPO, path="entities/at.csv").id == record.id
    assert refused(NotFound, lambda: store.features.get_training_set("nope"))
    assert refused(NotFound, lambda: store.features.training_set("nope", repository=REPO, path="entities/at.csv"))


def test_materialize_full_then_incremental_writes_only_changed_keys(store: Any) -> None:
    keys = len(PRESENT_IDS) + len(EXPIRED_IDS)
    full = store.features.materialize(mode="full", as_of=T)
    assert [(m.view, m.mode, m.keys, m.written, m.deleted) for m in full] == [("history", "full", keys, keys, 0)]
    same = store.features.materialize(as_of=T)
    assert [(m.mode, m.written, m.deleted) for m in same] == [("incremental", 0, 0)]
    commit = _merge(store, {"customers/more.csv": b"customer_id,event_timestamp,created,n_loans,balance\n"
                                                  b"5,2024-03-10 00:00:00,2024-03-10 00:00:00,4,123.0\n"},
                    "one customer changes")
    changed = store.features.materialize(["history"], as_of=T)
    assert [(m.mode, m.keys, m.written, m.data_commit) for m in changed] == [("incremental", keys, 1, commit)]
    assert [m.id for m in store.features.materializations("history", limit=2)] == [changed[0].id, same[0].id]
    assert len(store.features.materializations()) == 3
    assert refused(InvalidInput, lambda: store.features.materialize(mode="sometimes")).field == "mode"
    assert refused(NotFound, lambda: store.features.materialize(["nope"]))
    assert refused(InvalidInput, lambda: store.features.materialize(as_of="yesterday")).field == "as_of"
    assert len(store.features.materializations()) == 3


def test_online_statuses_and_values_are_the_point_in_time_joins(store: Any) -> None:
    """The TTL rule online is the training sets': at the same time, each value and its
    status (present, expired, missing) equal the historical join's."""
    store.features.materialize(mode="full", as_of=T)
    ids = [*PRESENT_IDS, *EXPIRED_IDS, *MISSING_IDS]
    found = store.features.online("credit", [{"customer_id": c} for c in ids], at=T)
    assert found.features == ("n_loans", "balance") and found.version == store.features.service("credit").version
    assert found.commits == {"history": [REPO, store.data.repo(REPO).ref("main").log()[0].id]}
    statuses = {c: s["balance"] for c, s in zip(ids, found.statuses, strict=True)}
    assert {c for c, s in statuses.items() if s == PRESENT} == set(PRESENT_IDS)
    assert {c for c, s in statuses.items() if s == EXPIRED} == set(EXPIRED_IDS)
    assert {c for c, s in statuses.items() if s == MISSING} == set(MISSING_IDS)

    import pyarrow as pa

    from mlops_lite.features.facet import from_us, to_us

    entities = pa.table({"customer_id": pa.array(ids, pa.int64()),
                         "event_timestamp": pa.array([from_us(to_us(found.at))] * len(ids),
                                                     pa.timestamp("us", tz="UTC"))})
    offline, _ = owner_of(store).features.historical("credit", entities, statuses=True)
    table = store.features.training_set_table(
        store.features.training_set("credit", repository=REPO, path="entities/at.csv").id).to_pylist()
    training = {r["customer_id"]: r for r in table}
    compared = 0
    for i, c in enumerate(ids):
        for feature in found.features:
            online_value, online_status = found.rows[i][feature], found.statuses[i][feature]
            assert online_status == offline.column("__status__" + feature)[i].as_py(), (c, feature)
            assert online_value == offline.column(feature)[i].as_py(), (c, feature)
            assert online_value == training[c][feature], (c, feature)
            compared += 1
    assert compared == 2 * len(ids)
    assert found.rows[0] == {"n_loans": 7, "balance": 777.0}  # the tie, online too
    assert found.rows[1]["balance"] == 2 * 3.25  # the row of 2024-04-01 is later than T


def _bad_entities() -> list[tuple[str, Any, str]]:
    return [("a row without its key", [{"customer_id": 1}, {"client": 2}], "entities[1].customer_id"),
            ("a key of the wrong type", [{"customer_id": 1.5}], "entities[0].customer_id"),
            ("a row that is not an object", [{"customer_id": 1}, 3], "entities[1]"),
            ("no rows", [], "entities"),
            ("over a thousand rows", [{"customer_id": 1}] * 1001, "entities")]


@pytest.mark.parametrize("case", [c[0] for c in _bad_entities()])
def test_bad_entity_rows_name_the_field(store: Any, case: str) -> None:
    rows, field = next((r, f) for c, r, f in _bad_entities() if c == case)
    store.features.materialize(mode="full", as_of=T)
    error = refused(InvalidInput, lambda: store.features.online("credit", rows, at=T))
    assert error.field == field, (case, error.field, str(error))
    assert refused(InvalidInput, lambda: store.features.online("credit", [{"customer_id": 1}], at="soon")).field == "at"
    assert refused(NotFound, lambda: store.features.online("nope", [{"customer_id": 1}]))


def test_over_http_bad_bodies_are_422_and_static_routes_win(store: Any) -> None:
    if not store.remote:
        pytest.skip("HTTP only")
    headers = {"Authorization": store._http.headers["Authorization"]}
    url = store.url
    for path, body, field in (("/v1/features/credit", {"entities": "x"}, "entities"),
                              ("/v1/features/credit", {"entities": [{"customer_id": 1}], "colour": 1}, "colour"),
                              ("/v1/features/credit", {"entities": [{"customer_id": True}]}, "entities[0].customer_id"),
                              ("/v1/features/materialize", {"mode": 3}, "mode"),
                              ("/v1/features/services/credit/skew", {"sample": 0}, "sample"),
                              ("/v1/features/services/credit/training-sets", {"repository": REPO}, "path")):
        answer = httpx.post(url + path, json=body, headers=headers)
        assert answer.status_code == 422, (path, body, answer.text)
        assert answer.json()["field"] == field, (path, body, answer.json())
    malformed = httpx.post(url + "/v1/features/credit", content=b"{", headers={**headers,
                                                                              "Content-Type": "application/json"})
    assert malformed.status_code == 400
    # POST /v1/features/apply and /materialize are the static routes, never a lookup.
    assert httpx.post(url + "/v1/features/apply", json={"entities": []}, headers=headers).json()["field"] \
        == "entities"  # an unknown field of the apply body
    assert httpx.post(url + "/v1/features/materialize", json={"mode": "full", "as_of": T},
                      headers=headers).json()[0]["mode"] == "full"
    assert httpx.get(url + "/v1/features/materializations", params={"limit": 0}, headers=headers).status_code == 422


# --- entity-keyed predictions ----------------------------------------------------------------------


def test_entity_keyed_prediction_of_a_model_trained_through_the_service(api: Any) -> None:
    _merge(api, {"customers/h.csv": _history(), "apps/a.csv": _applications()}, "customers")
    api.features.apply(_mapping(ttl="3650d"))  # never expired by the day this test runs
    trained = api.training.train_features("credit", REPO, "main", "apps/a.csv", target="default")
    bound = trained.signature["feature_service"]
    assert (bound["name"], bound["version"]) == ("credit", api.features.service("credit").version)
    assert sorted(i["name"] for i in trained.signature["inputs"]) == ["balance", "n_loans"]
    version = api.registry.register_from_run("credit-model", trained.run.id)
    api.deployments.deploy("credit", "credit-model", version.version)
    api.features.materialize(mode="full")

    answer = api.features.predict("credit", [{"customer_id": 3}, {"customer_id": 29}])
    assert len(answer.predictions) == 2 and answer.version == version.version
    by_features = api.deployments.predict("credit", [{"n_loans": 29 % 5, "balance": 29 * 3.25}])
    assert answer.predictions[1] == by_features.predictions[0]

    assert refused(InvalidInput, lambda: api.features.predict("credit", [{"customer_id": 99}])).field == "entities[0]"
    for rows, field in (([{"client": 1}], "entities[0].customer_id"), ([{"customer_id": "x"}], "entities[0].customer_id"),
                        ([{"customer_id": 1}] * 1001, "entities")):
        assert refused(InvalidInput, lambda rows=rows: api.features.predict("credit", rows)).field == field
    assert refused(NotFound, lambda: api.features.predict("nope", [{"customer_id": 1}]))

    # A changed service: the model is refused until an admin allows it (audited as the caller).
    api.features.apply(_mapping(ttl="3000d"))
    assert refused(Conflict, lambda: api.features.predict("credit", [{"customer_id": 3}]))
    override = api.features.allow("credit", reason="the TTL change does not touch these rows")
    assert (override.deployment, override.model, override.version) == ("credit", "credit-model", version.version)
    assert override.actor == ("token:admin" if api.remote else str(api.actor))
    assert override.service_version == api.features.service("credit").version
    assert len(api.features.predict("credit", [{"customer_id": 3}]).predictions) == 1
    assert refused(InvalidInput, lambda: api.features.allow("credit", reason=" ")).field == "reason"

    if api.remote:
        headers = {"Authorization": api._http.headers["Authorization"]}
        both = httpx.post(f"{api.url}/v1/deployments/credit/predict", headers=headers,
                          json={"instances": [{"n_loans": 1, "balance": 2.0}], "entities": [{"customer_id": 3}]})
        assert both.status_code == 422 and both.json()["field"] == "entities"
        neither = httpx.post(f"{api.url}/v1/deployments/credit/predict", headers=headers, json={})
        assert neither.status_code == 422 and neither.json()["field"] == "instances"

    report = api.features.check_skew("credit")
    assert report.checked >= 1 and report.mismatched == 0 and report.values_compared >= 2
    assert refused(InvalidInput, lambda: api.features.check_skew("credit", sample=0)).field == "sample"


def test_a_serving_replica_refuses_entity_rows_with_a_4xx_naming_the_control_plane(
        api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica (``mlops-lite serve``) has no feature store: entity rows are the control
    plane's to answer, and it says so (never a 5xx)."""
    if not api.remote:
        pytest.skip("a replica serves beside a control plane over HTTP")
    from server.runner import serve_in_thread
    from server.serving import ServingPlatform, build_serving_app
    from tests.contract.conftest import home_of

    monkeypatch.setenv("MLOPS_LITE_HOME", str(home_of(api)))
    _, replica_token = owner_of(api).tokens.create("replica@features", "predictor", service="replica")
    _, caller = owner_of(api).tokens.create("caller", "predictor")
    replica = serve_in_thread(build_serving_app(ServingPlatform(api.url, replica_token, poll_s=0.2)))
    try:
        answer = httpx.post(f"{replica.url}/v1/deployments/credit/predict", json={"entities": [{"customer_id": 1}]},
                            headers={"Authorization": f"Bearer {caller}"}, timeout=30)
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "entities" and "control plane" in answer.json()["message"]
    finally:
        replica.stop()


def test_request_fields_of_the_wrong_type_are_refused_naming_the_entities(store: Any) -> None:
    """On-demand features read request fields from each entity row: a value that is not of
    the declared type is InvalidInput (422), whatever it is."""
    mapping = _mapping()
    mapping["on_demand"] = [{"name": "ratios", "request": {"amount": "float64", "seen": "timestamp"},
                             "sources": ["history"],
                             "features": {"burden": {"dtype": "float64", "expression": "amount / (balance + 1)"},
                                          "age_days": {"dtype": "int64", "expression": "date_diff('day', seen, "
                                                                                       "TIMESTAMPTZ '2024-03-15')"}}}]
    mapping["feature_service"][0]["features"] = ["history", "ratios"]
    store.features.apply(mapping)
    store.features.materialize(mode="full", as_of=T)
    good = store.features.online("credit", [{"customer_id": 3, "amount": 30.0, "seen": "2024-03-01T00:00:00+00:00"}],
                                 at=T)
    assert good.rows[0]["burden"] == 30.0 / (3 * 3.25 + 1) and good.rows[0]["age_days"] == 14
    assert good.statuses[0]["burden"] == PRESENT
    for field, value in (("seen", "x"), ("seen", "2024-13-01"), ("seen", 2**70), ("amount", "many"),
                         ("amount", [1])):
        row = {"customer_id": 3, "amount": 30.0, "seen": "2024-03-01T00:00:00+00:00", field: value}
        error = refused(InvalidInput, lambda row=row: store.features.online("credit", [row], at=T))
        assert error.field == "entities", (field, value, error.field)
    error = refused(InvalidInput, lambda: store.features.online("credit", [{"customer_id": 3, "amount": 1.0}], at=T))
    assert error.field == "entities[0].seen"
