"""The tokens contract: ``platform.tokens`` (mlops_lite/api/tokens.py) creates, lists,
counts and revokes bearer tokens and access keys with the same records and errors,
local or remote."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from mlops_lite import Conflict, InvalidInput, NotFound, PermissionDenied
from mlops_lite.records import Grant, Identity, TokenRecord


def test_a_token_is_created_listed_counted_and_revoked(api: Any) -> None:
    before = api.tokens.count()
    identity, secret = api.tokens.create("ci-bot", "operator")
    assert type(identity) is Identity and (identity.name, identity.role) == ("ci-bot", "operator")
    assert identity.token_id and secret.startswith("mll_")
    assert api.tokens.count() == before + 1
    records = api.tokens.list()
    assert all(type(record) is TokenRecord for record in records)
    assert [r.name for r in records] == ["admin", "ci-bot"]  # oldest first: the home's admin token
    record = records[-1]
    assert (record.id, record.role, record.revoked, record.access_key_id) == (identity.token_id, "operator",
                                                                              False, None)
    assert all(secret not in str(r) for r in records)
    revoked = api.tokens.revoke(identity.token_id)
    assert type(revoked) is TokenRecord and revoked == dataclasses.replace(record, revoked=True)
    assert api.tokens.list()[-1] == revoked
    assert api.tokens.count() == before + 1  # a revoked token is still counted
    assert [e.action for e in api.audit.about(f"token:{identity.token_id}")] == ["token.create", "token.revoke"]


def test_an_access_key_is_created_with_its_key_id_and_secret(api: Any) -> None:
    identity, key_id, secret = api.tokens.create_access_key("lakefs-client", "viewer")
    assert type(identity) is Identity and (identity.name, identity.role) == ("lakefs-client", "viewer")
    assert key_id.startswith("AKIAMLL") and len(key_id) == 20 and secret
    record = next(r for r in api.tokens.list() if r.id == identity.token_id)
    assert (record.access_key_id, record.revoked) == (key_id, False)
    assert all(secret not in str(r) for r in api.tokens.list())
    (event,) = api.audit.about(f"token:{identity.token_id}")
    assert (event.action, event.after) == ("access_key.create", {"name": "lakefs-client", "role": "viewer",
                                                                 "access_key_id": key_id})
    assert api.tokens.revoke(identity.token_id).revoked


@pytest.mark.parametrize("create", ["create", "create_access_key"])
def test_an_unknown_role_is_refused_naming_the_roles(api: Any, create: str) -> None:
    before = api.tokens.count()
    with pytest.raises(InvalidInput) as refused:
        getattr(api.tokens, create)("x", "superuser")
    assert (refused.value.message, refused.value.field, refused.value.expected) == \
        ("unknown role 'superuser'", "role", "predictor | viewer | operator | approver | admin")
    assert api.tokens.count() == before


@pytest.mark.parametrize("create", ["create", "create_access_key"])
def test_grants_and_an_expiry_are_stored_listed_and_audited(api: Any, create: str) -> None:
    made = getattr(api.tokens, create)("team-a", "viewer", grants=["operator:model:teamA-*",
                                                                   Grant("approver", repositories="teamA-data")],
                                       expires_in=timedelta(days=30))
    identity = made[0]
    wanted = (Grant("operator", models="teamA-*"), Grant("approver", repositories="teamA-data"))
    assert (identity.role, identity.grants) == ("viewer", wanted)
    record = next(r for r in api.tokens.list() if r.id == identity.token_id)
    assert record.grants == wanted and record.expires_at is not None
    assert timedelta(days=29) < record.expires_at - record.created_at <= timedelta(days=30, seconds=5)
    (event,) = api.audit.about(f"token:{identity.token_id}")
    assert event.after["grants"] == ["operator:model:teamA-*", "approver:repo:teamA-data"]
    assert event.after["expires_at"] == record.expires_at.isoformat()


@pytest.mark.parametrize(("options", "field"), [
    ({"grants": ["operator:team:teamA-*"]}, "grant"),
    ({"grants": ["superuser:model:x"]}, "role"),
    ({"grants": [Grant("operator")]}, "grants"),
    ({"expires_in": timedelta(0)}, "expires_in"),
    ({"expires_in": timedelta(days=4000)}, "expires_in"),
])
def test_a_bad_grant_or_lifetime_is_refused_naming_the_field(api: Any, options: dict[str, Any], field: str) -> None:
    before = api.tokens.count()
    with pytest.raises(InvalidInput) as refused:
        api.tokens.create("x", "viewer", **options)
    assert refused.value.field == field
    assert api.tokens.count() == before


def test_revoking_an_unknown_or_revoked_token_is_refused(api: Any) -> None:
    with pytest.raises(NotFound) as missing:
        api.tokens.revoke("no-such-token")
    assert missing.value.message == "no token 'no-such-token'"
    identity, _ = api.tokens.create("twice", "viewer")
    api.tokens.revoke(identity.token_id)
    with pytest.raises(Conflict) as conflict:
        api.tokens.revoke(identity.token_id)
    assert conflict.value.message == f"token {identity.token_id!r} (twice) is already revoked"
    assert [e.action for e in api.audit.about(f"token:{identity.token_id}")] == ["token.create", "token.revoke"]


# --- Over HTTP: the admin role, and a revoked secret refused at once.


@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
def test_only_an_admin_manages_tokens(api: Any) -> None:
    from mlops_lite.client import RemotePlatform

    target, _ = api.tokens.create("target", "viewer")
    _, secret = api.tokens.create("an-approver", "approver")
    before = api.tokens.list()
    with RemotePlatform(api.url, secret) as approver:
        verbs: list[Callable[[Any], object]] = [
            lambda t: t.list(), lambda t: t.count(), lambda t: t.create("x", "viewer"),
            lambda t: t.create_access_key("x", "viewer"), lambda t: t.revoke(target.token_id)]
        for verb in verbs:
            with pytest.raises(PermissionDenied) as denied:
                verb(approver.tokens)
            assert denied.value.details == {"needed": "admin", "role": "approver"}
    assert api.tokens.list() == before


@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
def test_a_revoked_secret_is_refused_at_once(api: Any) -> None:
    import httpx

    from mlops_lite import Unauthenticated
    from mlops_lite.client import RemotePlatform

    identity, secret = api.tokens.create("ci-bot", "operator")
    _, key_id, key_secret = api.tokens.create_access_key("lakefs-client", "viewer")
    key = next(r for r in api.tokens.list() if r.access_key_id == key_id)
    with RemotePlatform(api.url, secret) as bot:
        assert bot.deployments.list() == []  # authenticated, and now cached by the server
        assert httpx.get(f"{api.url}/api/v1/user", auth=(key_id, key_secret)).status_code == 200
        api.tokens.revoke(identity.token_id)
        api.tokens.revoke(key.id)
        with pytest.raises(Unauthenticated):
            bot.deployments.list()
    assert httpx.get(f"{api.url}/api/v1/user", auth=(key_id, key_secret)).status_code == 401


@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
def test_an_expired_secret_is_refused_saying_when_it_expired(api: Any) -> None:
    import httpx

    _, secret = api.tokens.create("short-lived", "viewer", expires_in=timedelta(seconds=1.5))
    _, key_id, key_secret = api.tokens.create_access_key("short-key", "viewer", expires_in=timedelta(seconds=1.5))
    bearer = {"Authorization": f"Bearer {secret}"}
    # Accepted, and so cached by the server, before the moment passes.
    assert httpx.get(f"{api.url}/v1/whoami", headers=bearer).status_code == 200
    assert httpx.get(f"{api.url}/api/v1/user", auth=(key_id, key_secret)).status_code == 200
    time.sleep(1.6)
    refused = httpx.get(f"{api.url}/v1/whoami", headers=bearer)
    assert refused.status_code == 401 and refused.json()["message"].startswith("the token expired at ")
    assert httpx.get(f"{api.url}/api/v1/user", auth=(key_id, key_secret)).status_code == 401


def test_whoami_names_the_caller_and_its_role(api: Any, api_kind: str) -> None:
    """In-process the platform is the stores' owner (admin); over HTTP it is the token's
    identity, so a client (the console) can hide what the role may not do."""
    me = api.whoami()
    assert me.role == "admin"
    if api_kind == "local":
        assert me.kind == "local" and me.token_id is None
        return
    assert me.kind == "token" and me.token_id is not None
    from mlops_lite.client import RemotePlatform

    _, secret = api.tokens.create("a-viewer", "viewer", grants=["operator:model:team-*"])
    with RemotePlatform(api.url, secret) as viewer:
        who = viewer.whoami()
    assert (who.name, who.role, who.kind) == ("a-viewer", "viewer", "token")
    assert [(g.role, g.models) for g in who.grants] == [("operator", "team-*")]
