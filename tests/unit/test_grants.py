"""Grants of a role on models and data repositories: stored on tokens and access keys (a
home made before grants opens and its tokens still work), and checked by the guard's
``check`` on the route's resource, never lifting a route that names none."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mlops_lite.metadata import MetadataStore
from mlops_lite.records import Grant
from mlops_lite.security.audit import AuditLog
from mlops_lite.security.tokens import Tokens

# api_tokens as the release before grants and expiry created it.
BEFORE_GRANTS = ('create table api_tokens (id VARCHAR PRIMARY KEY, name VARCHAR, role VARCHAR, token_hash VARCHAR, '
                 'created_at TIMESTAMP WITH TIME ZONE, revoked BOOLEAN, access_key_id VARCHAR)')


def test_a_home_made_before_grants_gains_the_columns_and_its_tokens_still_work(tmp_path: Path) -> None:
    path = tmp_path / "before.duckdb"
    secret = "mll_old-secret"
    with duckdb.connect(str(path)) as old:
        old.execute(BEFORE_GRANTS)
        old.execute("insert into api_tokens values ('t1', 'old-bot', 'operator', ?, ?, false, null)",
                    [hashlib.sha256(secret.encode()).hexdigest(), datetime(2026, 1, 2, tzinfo=UTC)])
    store = MetadataStore(f"duckdb:///{path}")
    try:
        tokens = Tokens(store, AuditLog(store, b"k" * 32))
        identity = tokens.authenticate(secret)
        assert (identity.name, identity.role, identity.grants) == ("old-bot", "operator", ())
        (record,) = tokens.list()
        assert (record.grants, record.expires_at) == ((), None)
        made, _ = tokens.create("team-a", "viewer", grants=["operator:model:teamA-*"])
        assert made.grants == (Grant("operator", models="teamA-*"),)
    finally:
        store.close()
    with duckdb.connect(str(path)) as reopened:
        columns = [c for (c,) in reopened.execute(
            "select column_name from information_schema.columns where table_name = 'api_tokens' "
            "order by ordinal_position").fetchall()]
    assert columns == ["id", "name", "role", "token_hash", "created_at", "revoked", "access_key_id", "grants",
                       "expires_at"]
