"""The daemon's feature jobs (server/jobs.py): ``feature-materialize`` materializes every
view incrementally on its interval (0 turns it off); ``feature-skew`` checks each service
that served vectors since its last pass (the ``feature-skew`` alert) and deletes served
vectors past ``feature_served_retention_days``. A failing job logs its error's type, never
a value, and the daemon carries on; on a home without definitions they do nothing and
say nothing."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from mlops_lite.metadata.tables import FeatureMaterializationRow, FeatureOnlineRow, FeatureServedRow, core_table

REPO = "custs"
CUSTOMERS = list(range(1, 11))
DEFINITIONS = {
    "entity": [{"name": "customer", "join_keys": {"customer_id": "int64"}}],
    "feature_view": [{"name": "history", "entities": ["customer"],
                      "source": {"repository": REPO, "path": "customers/*.csv"},
                      "timestamp_field": "event_timestamp", "ttl": "3650d",
                      "features": {"n_loans": "int64", "balance": "float64"}}],
    "feature_service": [{"name": "credit", "features": ["history"]}],
}
LEAKED_VALUE = "7319-do-not-log"


def _history(extra: str = "") -> bytes:
    lines = ["customer_id,event_timestamp,n_loans,balance"]
    lines += [f"{c},2024-03-01 00:00:00,{c % 4},{c * 2.5}" for c in CUSTOMERS]
    return ("\n".join(lines) + "\n" + extra).encode()


def _merge(platform: Any, content: bytes, name: str) -> None:
    repo = platform.data.repo(REPO)
    repo.create(classification="internal", exist_ok=True)
    branch = repo.branch(name)
    branch.create("main")
    branch.upload("customers/h.csv", content)
    branch.commit(name)
    branch.merge_into("main")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Opens a fresh home with the given settings; every platform opened is closed."""
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local

    opened: list[Any] = []

    def open_home(**settings: Any) -> Any:
        loaded = load_settings(home=tmp_path / "home", **settings)
        init_home(loaded)
        platform = open_local(loaded)
        opened.append(platform)
        return platform

    yield open_home
    for platform in opened:
        platform.close()


def _jobs(platform: Any, settings: Any = None) -> Any:
    from server.jobs import DaemonJobs

    return DaemonJobs(platform, settings or platform.settings, prefect_url=None, load_flows=lambda: None,
                      echo=lambda _: None)


def _until(condition: Callable[[], Any], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def _tamper(platform: Any, customer: int, balance: float) -> None:
    """One online row rewritten in SQL, then a newer materialization row at the same commit
    (the online cache reloads on it)."""
    table = core_table(FeatureOnlineRow)
    with platform._store.session() as db:
        row = db.exec(select(FeatureOnlineRow).where(FeatureOnlineRow.entity_key == str(customer))).one()
        payload = {**json.loads(row.payload), "balance": balance}
        db.connection().execute(update(table).where(table.c.view == "history", table.c.entity_key == str(customer))
                                .values(payload=json.dumps(payload)))
        latest = db.exec(select(FeatureMaterializationRow).order_by(
            col(FeatureMaterializationRow.finished_at).desc()).limit(1)).one()
        copy = FeatureMaterializationRow.model_validate(latest.model_dump())
        copy.id, copy.finished_at = uuid.uuid4().hex, datetime.now(UTC)
        db.add(copy)
    time.sleep(1.2)


def _served(platform: Any) -> int:
    with platform._store.session() as db:
        return int(db.exec(select(func.count()).select_from(FeatureServedRow)).one())


def test_the_daemon_materializes_checks_skew_and_prunes_served_vectors(home: Callable[..., Any]) -> None:
    platform = home(feature_materialize_interval_s=0.3, feature_skew_interval_s=0.5)
    _merge(platform, _history(), "customers")
    platform.features.apply(DEFINITIONS)
    assert platform.features.materializations() == []
    jobs = _jobs(platform)
    jobs.start()
    try:
        intervals = {j.id: j.trigger.interval for j in jobs._scheduler.get_jobs()}
        assert intervals["feature-materialize"] == timedelta(seconds=0.3)
        assert intervals["feature-skew"] == timedelta(seconds=0.5)
        [done] = _until(platform.features.materializations)
        assert done.view == "history" and done.written == len(CUSTOMERS)
    finally:
        jobs.stop()
    # The skew job alone from here (an incremental materialization would mend the row tampered below).
    jobs = _jobs(platform, platform.settings.model_copy(update={"feature_materialize_interval_s": 0}))
    jobs.start()
    try:
        assert "feature-materialize" not in {j.id for j in jobs._scheduler.get_jobs()}
        served = platform.features.online("credit", [{"customer_id": c} for c in CUSTOMERS])
        assert served.rows[2] == {"n_loans": 3, "balance": 7.5}
        _until(lambda: jobs._skew_since is not None and jobs._skew_since.timestamp() > served.at.timestamp())
        assert [a for a in platform.alerts.list(subject="credit") if a.rule == "feature-skew"] == []

        _tamper(platform, 3, 99999.5)
        assert platform.features.online("credit", [{"customer_id": 3}]).rows[0]["balance"] == 99999.5
        alert = _until(lambda: next((a for a in platform.alerts.open_alerts() if a.rule == "feature-skew"), None))
        assert (alert.subject, alert.state, alert.evidence["mismatched"]) == ("credit", "firing", 1)
        assert alert.evidence["rows"][0]["features"]["balance"]["offline"] == 7.5
    finally:
        jobs.stop()

    # Retention: a vector served 8 days ago goes on the next pass; today's stay.
    platform.features.online("credit", [{"customer_id": 1}], at=datetime.now(UTC) - timedelta(days=8))
    platform.features.served.flush()
    before = _served(platform)
    jobs.feature_skew()
    assert _served(platform) == before - 1 and before > 1


def test_a_failing_job_logs_the_error_type_without_values_and_the_schedule_goes_on(
        home: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    platform = home(feature_materialize_interval_s=0.2)
    _merge(platform, _history(), "customers")
    platform.features.apply(DEFINITIONS)
    _merge(platform, _history(f"11,2024-03-01 00:00:00,1,{LEAKED_VALUE}\n"), "broken")
    jobs = _jobs(platform)
    caplog.set_level(logging.INFO)
    jobs.start()
    try:
        _until(lambda: sum("scheduled feature materialization failed" in r.getMessage() for r in caplog.records) >= 2)
    finally:
        jobs.stop()
    assert platform.features.materializations() == []
    assert not any(LEAKED_VALUE in r.getMessage() or (r.exc_text and LEAKED_VALUE in r.exc_text)
                   for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_on_a_home_without_definitions_the_feature_jobs_do_nothing_and_say_nothing(
        home: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    platform = home(feature_materialize_interval_s=0.1, feature_skew_interval_s=0.1)
    jobs = _jobs(platform)
    caplog.set_level(logging.DEBUG)
    jobs.start()
    try:
        time.sleep(1.0)
    finally:
        jobs.stop()
    assert jobs.feature_skew() == {} and jobs.feature_materialize() == 0
    assert platform.features.materializations() == [] and _served(platform) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.name == "mlops_lite.daemon" and "feature" in r.getMessage()]


def test_materialize_interval_zero_turns_the_job_off(home: Callable[..., Any]) -> None:
    platform = home(feature_materialize_interval_s=0)
    jobs = _jobs(platform)
    jobs.start()
    try:
        ids = {j.id for j in jobs._scheduler.get_jobs()}
    finally:
        jobs.stop()
    assert "feature-skew" in ids and "feature-materialize" not in ids
