"""``platform.keys``, local and over HTTP: the same status, a rotation that re-wraps every
data key (audited, payloads readable after it), and over HTTP the admin role only."""

from __future__ import annotations

import os
from typing import Any

import pytest

from mlops_lite.errors import PermissionDenied
from tests.contract.conftest import actor_of, refused


def test_status_then_rotation_keeps_everything_readable(api: Any) -> None:
    repo = api.data.repo("keys-contract")
    repo.create(classification="internal")
    dev = repo.branch("dev")
    dev.create("main")
    dev.upload("a.csv", b"x,y\n1,2\n")
    dev.commit("before rotation")
    status = api.keys.status()
    postgres = bool(os.environ.get("MLOPS_LITE_DATABASE_URL"))
    # DuckDB's file is encrypted here; PostgreSQL keeps its own bytes, and the status says
    # what that rests on (its connection's TLS, read from pg_stat_ssl).
    assert status.encrypted and status.metadata_encrypted is not postgres
    assert any("PostgreSQL" in note and "TLS" in note for note in status.relies_on) is postgres
    assert {k.purpose for k in status.data_keys} == {"objects", "names", "metadata", "log", "anonymize"}
    assert {k.kek_id for k in status.data_keys} == {status.kek_id}
    rotation = api.keys.rotate()
    assert rotation.old_kek_id == status.kek_id != rotation.new_kek_id and rotation.data_keys == 5
    after = api.keys.status()
    assert after.kek_id == rotation.new_kek_id and {k.kek_id for k in after.data_keys} == {rotation.new_kek_id}
    assert [k.id for k in after.data_keys] == [k.id for k in status.data_keys]  # the same data keys
    assert dev.read_bytes("a.csv") == b"x,y\n1,2\n"
    event = next(e for e in api.audit.events(limit=20) if e.action == "keys.rotate")
    assert event.actor == actor_of(api) and event.after["kek_id"] == rotation.new_kek_id


def test_keys_need_an_admin_over_http(api: Any, api_kind: str) -> None:
    if api_kind == "local":
        pytest.skip("roles are the server's: in-process the platform acts as its own actor")
    from mlops_lite.client import RemotePlatform

    _, secret = api.tokens.create("ops", "operator")
    with RemotePlatform(api.url, secret) as operator:
        refused(PermissionDenied, operator.keys.status)
        refused(PermissionDenied, operator.keys.rotate)
    assert all(e.action != "keys.rotate" for e in api.audit.events(limit=20))
