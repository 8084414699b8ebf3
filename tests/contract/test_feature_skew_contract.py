"""Consistency checked, not hoped for: the skew check and the version refusal, asked of a
local Platform and of a RemotePlatform over HTTP alike (the ``api`` fixture).

Every online lookup logs the vector it served (service version, entity row, values,
statuses, the commits the online store was materialized from). ``check_skew`` recomputes
those rows point-in-time at those commits and compares value by value: a clean store
reports no mismatch and no alert; an online row rewritten behind the materializer's back
is reported (entity, served vs offline, per feature) and fires the ``feature-skew`` alert
with the rows as evidence; a full re-materialization and fresh lookups resolve it.

A model trained through a service is bound to the service's version: once the
definitions change, deploying it again is refused naming both versions, its entity-keyed
predictions are refused (409 over HTTP) until an admin allows it with a reason
(audited ``features.version_override``).

The data: repository ``custs``, a customer history committed on a branch and merged to
``main`` (main is protected)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from mlops_lite import Conflict, InvalidInput
from mlops_lite.features import PRESENT
from mlops_lite.metadata.tables import FeatureMaterializationRow, FeatureOnlineRow, core_table
from tests.contract.conftest import owner_of, refused

REPO = "custs"
CUSTOMERS = list(range(1, 31))
TAMPERED = 7


def _history() -> bytes:
    lines = ["customer_id,event_timestamp,created,n_loans,balance"]
    for c in CUSTOMERS:
        lines.append(f"{c},2024-01-01 00:00:00,2024-01-01 00:00:00,{c % 3},{c * 1.5:.2f}")
        lines.append(f"{c},2024-03-01 00:00:00,2024-03-01 00:00:00,{c % 5},{c * 3.25:.2f}")
    lines.append("1,2024-03-01 00:00:00,2024-03-02 00:00:00,7,777.0")  # a created-time tie
    return ("\n".join(lines) + "\n").encode()


def _applications() -> bytes:
    lines = ["customer_id,event_timestamp,default"]
    for c in CUSTOMERS:
        for day in ("2024-03-05", "2024-03-10"):
            lines.append(f"{c},{day} 00:00:00,{int(c > 15)}")
    return ("\n".join(lines) + "\n").encode()


def _mapping(ttl: str) -> dict[str, Any]:
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
    """``api`` with the history on main (through a branch), the definitions applied (a TTL
    long enough that every customer is present today) and the online store materialized."""
    repo = api.data.repo(REPO)
    repo.create(classification="internal")
    branch = repo.branch("customers")
    branch.create("main")
    branch.upload("customers/h.csv", _history())
    branch.upload("apps/a.csv", _applications())
    branch.commit("customers")
    branch.merge_into("main")
    api.features.apply(_mapping("3650d"))
    api.features.materialize(mode="full")
    return api


def _lookup(api: Any) -> Any:
    return api.features.online("credit", [{"customer_id": c} for c in CUSTOMERS])


def _skew_alerts(api: Any) -> list[Any]:
    return [a for a in api.alerts.list(subject="credit") if a.rule == "feature-skew"]


def _tamper(api: Any, customer: int) -> float:
    """Rewrite one online row's balance in SQL and record a newer materialization row at the
    same commit (a copy of the latest), as a store rewritten behind the materializer's back:
    the cache reloads on it. The balance written."""
    owner = owner_of(api)
    table = core_table(FeatureOnlineRow)
    planted = 123456.75
    with owner._store.session() as db:
        row = db.exec(select(FeatureOnlineRow).where(FeatureOnlineRow.view == "history",
                                                     FeatureOnlineRow.entity_key == str(customer))).one()
        payload = json.loads(row.payload)
        assert payload["balance"] != planted
        payload["balance"] = planted
        db.connection().execute(update(table).where(table.c.view == "history", table.c.entity_key == str(customer))
                                .values(payload=json.dumps(payload)))
        latest = db.exec(select(FeatureMaterializationRow).where(FeatureMaterializationRow.view == "history")
                         .order_by(col(FeatureMaterializationRow.finished_at).desc()).limit(1)).one()
        copy = FeatureMaterializationRow.model_validate(latest.model_dump())
        copy.id = uuid.uuid4().hex
        copy.finished_at = datetime.now(UTC)
        db.add(copy)
    time.sleep(1.2)  # the online cache checks for a newer materialization every second
    return planted


def test_a_clean_store_has_no_skew_and_a_tampered_row_fires_the_alert_until_rematerialized(store: Any) -> None:
    api = store
    first = _lookup(api)
    assert all(s == PRESENT for row in first.statuses for s in row.values())
    clean = api.features.check_skew("credit")
    assert (clean.checked, clean.mismatched, clean.values_compared) == (len(CUSTOMERS), 0, 2 * len(CUSTOMERS))
    assert clean.rows == () and clean.alert is None and _skew_alerts(api) == []

    planted = _tamper(api, TAMPERED)
    since = datetime.now(UTC)
    served = _lookup(api)
    assert served.rows[CUSTOMERS.index(TAMPERED)]["balance"] == planted  # the lookup served the tampered row
    report = api.features.check_skew("credit", since=since)
    assert (report.checked, report.mismatched) == (len(CUSTOMERS), 1)
    [row] = report.rows
    assert row["entity"] == {"customer_id": TAMPERED} and row["service_version"] == served.version
    assert row["features"] == {"balance": {"served": planted, "status": PRESENT, "offline": TAMPERED * 3.25,
                                           "offline_status": PRESENT}}  # n_loans agrees: not reported
    assert report.alert == "feature-skew"
    [alert] = _skew_alerts(api)
    assert (alert.state, alert.subject, alert.metric, alert.value, alert.severity) == (
        "firing", "credit", "features.skew", 1.0, "warning")
    assert alert.evidence["mismatched"] == 1 and alert.evidence["checked"] == len(CUSTOMERS)
    assert alert.evidence["rows"][0]["entity"] == {"customer_id": TAMPERED}
    assert alert.evidence["rows"][0]["features"]["balance"]["served"] == planted

    api.features.materialize(mode="full")
    since = datetime.now(UTC)
    fresh = _lookup(api)
    assert fresh.rows[CUSTOMERS.index(TAMPERED)]["balance"] == TAMPERED * 3.25
    healed = api.features.check_skew("credit", since=since)
    assert (healed.checked, healed.mismatched, healed.rows) == (len(CUSTOMERS), 0, ())
    [alert] = _skew_alerts(api)
    assert alert.state == "resolved"
    # The tampered vectors served before are still on record: a check over everything (without
    # touching the alert: a local call only) finds them.
    assert owner_of(api).features.check_skew("credit", alert=False).mismatched == 1
    assert _skew_alerts(api)[0].state == "resolved"


def test_a_model_bound_to_an_older_service_version_is_refused_until_allowed(store: Any) -> None:
    api = store
    trained = api.training.train_features("credit", REPO, "main", "apps/a.csv", target="default")
    old = trained.signature["feature_service"]["version"]
    version = api.registry.register_from_run("credit-model", trained.run.id)
    api.deployments.deploy("credit", "credit-model", version.version)
    assert len(api.features.predict("credit", [{"customer_id": 3}]).predictions) == 1

    api.features.apply(_mapping("3000d"))
    new = api.features.service("credit").version
    assert new != old
    deployments = [d.name for d in api.deployments.list()]
    error = refused(Conflict, lambda: api.deployments.deploy("credit-2", "credit-model", version.version))
    assert old in str(error) and new in str(error)
    assert [d.name for d in api.deployments.list()] == deployments

    assert refused(Conflict, lambda: api.features.predict("credit", [{"customer_id": 3}]))
    if api.remote:
        answer = httpx.post(f"{api.url}/v1/deployments/credit/predict", json={"entities": [{"customer_id": 3}]},
                            headers={"Authorization": api._http.headers["Authorization"]}, timeout=30)
        assert answer.status_code == 409, answer.text
        assert old in answer.text and new in answer.text

    events = api.audit.count()
    for reason in ("", "   "):
        assert refused(InvalidInput, lambda reason=reason: api.features.allow("credit", reason=reason)).field == "reason"
    assert api.audit.count() == events
    override = api.features.allow("credit", reason="the TTL change does not touch these rows")
    assert (override.deployment, override.version, override.service_version) == ("credit", version.version, new)
    [event] = [e for e in api.audit.about("deployment/credit") if e.action == "features.version_override"]
    assert event.after["reason"] == "the TTL change does not touch these rows"
    assert event.after["serving"] == new and event.before["trained_with"] == old
    assert event.actor == ("token:admin" if api.remote else str(api.actor))
    assert len(api.features.predict("credit", [{"customer_id": 3}, {"customer_id": 12}]).predictions) == 2


def test_every_lookup_and_entity_keyed_prediction_is_logged_off_the_request_path(store: Any) -> None:
    from mlops_lite.features.facet import ServedLog
    from mlops_lite.metadata.tables import FeatureServedRow

    api = store
    owner = owner_of(api)
    trained = api.training.train_features("credit", REPO, "main", "apps/a.csv", target="default")
    version = api.registry.register_from_run("credit-model", trained.run.id)
    api.deployments.deploy("credit", "credit-model", version.version)
    looked_up = api.features.online("credit", [{"customer_id": 4}, {"customer_id": 5}])
    api.features.predict("credit", [{"customer_id": 6}])
    owner.features.served.flush()
    with owner._store.session() as db:
        rows = {json.loads(r.entity)["customer_id"]: r for r in db.exec(select(FeatureServedRow))}
    assert sorted(rows) == [4, 5, 6]
    [materialized] = api.features.materializations("history")
    for customer, row in rows.items():
        assert (row.service, row.service_version) == ("credit", looked_up.version)
        assert json.loads(row.payload) == {"n_loans": customer % 5, "balance": customer * 3.25}
        assert json.loads(row.statuses) == {"n_loans": PRESENT, "balance": PRESENT}
        assert json.loads(row.commits) == {"history": [REPO, materialized.data_commit]}
        assert row.deployment == ("credit" if customer == 6 else None)
    assert owner.features.served.dropped == 0

    # The writer: nothing reaches the database until it flushes (a lookup only queues); the
    # queue is bounded and counts what it drops; close() writes what is queued.
    log = ServedLog(owner._store, max_queue=3, every_s=3600)
    entry = ("credit", looked_up.version, 1, {"customer_id": 1}, {"balance": 1.0}, {"balance": PRESENT}, {}, None)
    log.append([entry] * 5)
    assert log.dropped == 2
    with owner._store.session() as db:
        assert len(db.exec(select(FeatureServedRow)).all()) == 3
    log.close()
    with owner._store.session() as db:
        assert len(db.exec(select(FeatureServedRow)).all()) == 6
