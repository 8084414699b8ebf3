"""The audit contract: ``platform.audit`` (mlops_lite/api/audit.py) reads, exports and
verifies the same chain with the same records, local or remote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mlops_lite import InvalidInput, PermissionDenied
from mlops_lite.records import AuditRecord
from tests.contract.conftest import API_KINDS, home_of

LINK_FIELDS = ["action", "actor", "after", "at", "before", "hash", "id", "object", "prev_hash", "seq"]


def _token_events(api: Any) -> str:
    """Two events about one token (created, revoked); answers the object they are about."""
    identity, _ = api.tokens.create("audited", "viewer")
    api.tokens.revoke(identity.token_id)
    return f"token:{identity.token_id}"


def test_events_are_newest_first_and_about_one_object_oldest_first(api: Any) -> None:
    before = api.audit.count()
    obj = _token_events(api)
    assert api.audit.count() == before + 2
    newest = api.audit.events(limit=2)
    assert all(type(event) is AuditRecord for event in newest)
    assert [(e.seq, e.action, e.object) for e in newest] == [(before + 2, "token.revoke", obj),
                                                             (before + 1, "token.create", obj)]
    assert newest[0].prev_hash == newest[1].hash
    assert newest[1].after == {"name": "audited", "role": "viewer"}
    assert newest[0].before == {"revoked": False}
    assert api.audit.about(obj) == newest[::-1]
    assert api.audit.about(obj, action_prefix="token.rev") == newest[:1]
    assert api.audit.about(obj, action_prefix="deployment.") == []
    assert api.audit.about("token:no-such-token") == []
    assert api.audit.events(limit=0) == []
    with pytest.raises(InvalidInput) as bad:
        api.audit.events(limit=-1)
    assert bad.value.field == "limit"
    assert [e.seq for e in api.audit.events()] == list(range(before + 2, 0, -1))  # the default limit covers all


def test_the_actor_over_http_is_the_callers_token(api: Any) -> None:
    obj = _token_events(api)
    actors = {event.actor for event in api.audit.about(obj)}
    # In-process, the platform's own actor (``connect(actor=...)``, default local:<user>).
    assert actors == ({"token:admin"} if api.remote else {api.actor})


def test_the_export_is_the_chain_oldest_first_with_its_links(api: Any) -> None:
    from mlops_lite.config import load_settings
    from mlops_lite.security.audit import load_or_create_key, verify_events

    _token_events(api)
    exported = api.audit.export()
    assert [sorted(event) for event in exported] == [LINK_FIELDS] * len(exported)
    assert [event["seq"] for event in exported] == list(range(1, api.audit.count() + 1))
    events = api.audit.events(limit=len(exported))[::-1]
    assert [(e["id"], e["hash"], e["prev_hash"], e["before"], e["after"]) for e in exported] == \
        [(e.id, e.hash, e.prev_hash, e.before, e.after) for e in events]
    # Verifiable offline with the installation's key, as `mlops-lite audit verify --file` does.
    key = load_or_create_key(load_settings(home=home_of(api)).audit_key_file)
    assert verify_events(key, exported) is None
    last = events[-1]
    assert [e["seq"] for e in api.audit.export(since=last.at)] == [last.seq]
    assert api.audit.export(since=last.at + timedelta(seconds=1)) == []


def test_an_intact_chain_verifies(api: Any) -> None:
    _token_events(api)
    assert api.audit.verify() is None


# --- A chain edited behind the platform's back: the local platform that holds the store
# is needed to edit it, so this fixture yields it beside the facet under test.


@pytest.fixture(params=API_KINDS)
def edited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(the platform under test, local or remote; the local platform holding its chain)."""
    from mlops_lite.client import RemotePlatform
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local
    from server import create_app
    from server.runner import serve_in_thread

    settings = load_settings(home=tmp_path / "home")
    token = init_home(settings).token
    local = open_local(settings)
    if request.param == "local":
        try:
            yield local, local
        finally:
            local.close()
        return
    running = serve_in_thread(create_app(local))
    try:
        with RemotePlatform(running.url, token) as remote:
            yield remote, local
    finally:
        running.stop()
        local.close()


def test_an_edited_event_is_the_first_bad_one(edited: tuple[Any, Any]) -> None:
    api, holder = edited
    _token_events(api)
    with holder._store.engine.begin() as connection:
        connection.execute(text("update audit_events set actor = 'mallory' where seq = 2"))
    bad = api.audit.verify()
    assert type(bad) is AuditRecord
    assert bad == holder.audit.verify() and (bad.seq, bad.actor) == (2, "mallory")


def test_a_deleted_event_breaks_the_chain_at_the_next(edited: tuple[Any, Any]) -> None:
    api, holder = edited
    _token_events(api)
    with holder._store.engine.begin() as connection:
        connection.execute(text("delete from audit_events where seq = 2"))
    bad = api.audit.verify()
    assert bad is not None and bad.seq == 3 and bad == holder.audit.verify()


# --- Over HTTP the caller's role decides (server/audit.py says why each needs its role).


@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
def test_reading_the_chain_needs_the_roles_the_server_declares(api: Any) -> None:
    from mlops_lite.client import RemotePlatform

    obj = _token_events(api)
    _, viewer_secret = api.tokens.create("a-viewer", "viewer")
    _, operator_secret = api.tokens.create("an-operator", "operator")
    with RemotePlatform(api.url, viewer_secret) as viewer, RemotePlatform(api.url, operator_secret) as operator:
        assert viewer.audit.count() == api.audit.count()
        reads: list[Callable[[Any], object]] = [lambda p: p.audit.events(), lambda p: p.audit.about(obj),
                                                lambda p: p.audit.verify()]
        for read in reads:
            with pytest.raises(PermissionDenied) as denied:
                read(viewer)
            assert denied.value.details == {"needed": "operator", "role": "viewer"}
            assert read(operator) == read(api)
        with pytest.raises(PermissionDenied) as denied:
            operator.audit.export()
        assert denied.value.details == {"needed": "admin", "role": "operator"}
