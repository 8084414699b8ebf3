"""The metadata store contract, on every backend: ``duckdb`` (a file in a temporary
folder, the embedded default) and ``postgres`` (a database of its own on a real cluster
the session starts on 127.0.0.1; skipped, naming what is missing, where PostgreSQL is
not installed). The same SQLModel tables, upgrades, transactions, errors, values, audit
chain and read-only SQL on both."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy
from sqlmodel import SQLModel, select

from mlops_lite import Conflict, InvalidInput
from mlops_lite.metadata import MetadataStore
from mlops_lite.metadata.tables import ApiToken, AuditEvent
from mlops_lite.security.audit import AuditLog
from mlops_lite.tracking.sql import run_select
from tests.postgres import PostgresCluster

BACKENDS = ["duckdb", "postgres"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database on the backend."""
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'metadata.duckdb'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    with cluster.database() as database_url:
        yield database_url


@pytest.fixture
def store(url: str) -> Iterator[MetadataStore]:
    opened = MetadataStore(url)
    try:
        yield opened
    finally:
        opened.close()


def _columns(store: MetadataStore, table: str) -> set[str]:
    with store.engine.connect() as connection:
        return {row[0] for row in connection.execute(sqlalchemy.text(
            "select column_name from information_schema.columns where table_schema = current_schema() "
            "and table_name = :table"), {"table": table})}


def _tables(store: MetadataStore) -> set[str]:
    with store.engine.connect() as connection:
        return {row[0] for row in connection.execute(sqlalchemy.text(
            "select table_name from information_schema.tables where table_schema = current_schema()"))}


def _old_database(url: str, *statements: str) -> None:
    """Run ``statements`` on the database at ``url`` as an older release left it."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sqlalchemy.text(statement))
    finally:
        engine.dispose()


def _token(token_id: str, name: str = "ci-bot", at: datetime | None = None) -> ApiToken:
    return ApiToken(id=token_id, name=name, role="viewer", token_hash=secrets.token_hex(32),
                    created_at=at or datetime.now(UTC))


def test_a_new_database_gets_every_table(store: MetadataStore) -> None:
    assert {table.name for table in SQLModel.metadata.sorted_tables} <= _tables(store)
    assert store.is_duckdb == store.url.startswith("duckdb")


def test_a_column_added_by_a_newer_release_is_added_to_an_old_database(url: str) -> None:
    _old_database(url, "create table api_tokens (id varchar primary key, name varchar not null, role varchar not null,"
                       " token_hash varchar not null, created_at timestamptz not null, revoked boolean not null)",
                  "insert into api_tokens values ('t1', 'admin', 'admin', 'h', now(), false)")
    upgraded = MetadataStore(url)
    try:
        assert "access_key_id" in _columns(upgraded, "api_tokens")
        with upgraded.session() as session:
            (row,) = session.exec(select(ApiToken)).all()
        assert (row.id, row.name, row.access_key_id) == ("t1", "admin", None)
    finally:
        upgraded.close()


def test_a_table_added_by_a_newer_release_is_created_in_an_old_database(url: str) -> None:
    MetadataStore(url).close()
    newest = SQLModel.metadata.sorted_tables[-1].name  # nothing refers to the last table in dependency order
    _old_database(url, f'drop table "{newest}"')
    upgraded = MetadataStore(url)
    try:
        assert {table.name for table in SQLModel.metadata.sorted_tables} <= _tables(upgraded)
        with upgraded.engine.connect() as connection:
            assert connection.execute(sqlalchemy.text(f'select count(*) from "{newest}"')).scalar_one() == 0
    finally:
        upgraded.close()


def test_a_session_commits_on_success_and_writes_nothing_on_error(store: MetadataStore) -> None:
    with store.session() as session:
        session.add(_token("kept"))
    with pytest.raises(RuntimeError, match="midway"), store.session() as session:
        session.add(_token("lost"))
        session.flush()
        raise RuntimeError("midway")
    with store.session() as session:
        assert [row.id for row in session.exec(select(ApiToken)).all()] == ["kept"]


def test_a_duplicate_key_is_a_conflict_and_writes_nothing(store: MetadataStore) -> None:
    with store.session() as session:
        session.add(_token("t1", name="first"))
    with pytest.raises(Conflict, match="nothing was written"), store.session() as session:
        session.add(_token("t2", name="second"))
        session.add(_token("t1", name="again"))
    with store.session() as session:
        assert [(row.id, row.name) for row in session.exec(select(ApiToken)).all()] == [("t1", "first")]


def test_committed_rows_outlive_the_store(url: str) -> None:
    first = MetadataStore(url)
    with first.session() as session:
        session.add(_token("t1"))
    first.close()
    reopened = MetadataStore(url)
    try:
        with reopened.session() as session:
            assert session.get(ApiToken, "t1") is not None
    finally:
        reopened.close()


def test_times_come_back_as_the_same_instants(store: MetadataStore) -> None:
    """An aware time (any offset) comes back as the same instant, to the microsecond."""
    moment = datetime(2026, 3, 1, 23, 30, 15, 123456, tzinfo=timezone(timedelta(hours=4)))
    with store.session() as session:
        session.add(_token("t1", at=moment))
    with store.session() as session:
        stored = session.exec(select(ApiToken)).one().created_at
    assert stored.tzinfo is not None and stored == moment


def test_the_audit_chain_appends_reads_and_verifies(store: MetadataStore) -> None:
    audit = AuditLog(store, secrets.token_bytes(32))
    after = {"name": "Zoë", "nested": {"list": [1, 2.5, None, "x"], "flag": True}}
    audit.record(actor="local:test", action="token.create", object="token:t1", after=after)
    with store.session() as session:
        session.add(_token("t1"))
        audit.append(session, actor="local:test", action="token.revoke", object="token:t1",
                     before={"revoked": False}, after={"revoked": True})
    with pytest.raises(RuntimeError), store.session() as session:
        audit.append(session, actor="local:test", action="token.lost", object="token:t1")
        raise RuntimeError("rolled back with the change it records")
    events = audit.about("token:t1")
    assert [(e.seq, e.action) for e in events] == [(1, "token.create"), (2, "token.revoke")]
    assert events[0].after == after and events[1].prev_hash == events[0].hash
    assert audit.count() == 2 and audit.verify() is None
    assert [e["seq"] for e in audit.export()] == [1, 2]
    with store.session() as session:
        edited = session.get(AuditEvent, 1)
        assert edited is not None
        edited.actor = "mallory"
        session.add(edited)
    bad = audit.verify()
    assert bad is not None and bad.seq == 1


def test_read_only_sql_answers_a_select_and_refuses_a_write(store: MetadataStore) -> None:
    with store.session() as session:
        for i in range(3):
            session.add(_token(f"t{i}", name=f"bot-{i}"))
    table = run_select(store, "select id, name from api_tokens order by id", max_rows=2)
    assert table.to_pylist() == [{"id": "t0", "name": "bot-0"}, {"id": "t1", "name": "bot-1"}]
    for query, rule in (("delete from api_tokens", "select_only"),
                        ("select * from api_tokens; drop table api_tokens", "single_statement")):
        with pytest.raises(InvalidInput) as refused:
            run_select(store, query)
        assert refused.value.details["rule"] == rule
    with store.session() as session:
        assert len(session.exec(select(ApiToken)).all()) == 3
