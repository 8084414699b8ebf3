import pytest
from sqlalchemy import text

from mlops_lite import InvalidInput, PermissionDenied, Unauthenticated
from mlops_lite.records import Identity
from mlops_lite.security import require

from ..conftest import DATA


def test_tokens_authenticate_and_are_stored_hashed(platform) -> None:
    identity, secret = platform.tokens.create("ci-bot", "operator")
    assert platform.tokens.authenticate(secret) == identity
    with pytest.raises(Unauthenticated):
        platform.tokens.authenticate(secret + "x")
    with pytest.raises(Unauthenticated):
        platform.tokens.authenticate("")
    with platform._store.engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("select token_hash from api_tokens"))]
    assert secret not in stored and len(stored[0]) == 64
    with pytest.raises(InvalidInput):
        platform.tokens.create("x", "superuser")


def test_roles_are_ordered() -> None:
    require(Identity("a", "admin"), "operator")
    require(Identity("o", "operator"), "viewer")
    with pytest.raises(PermissionDenied):
        require(Identity("v", "viewer"), "operator")
    with pytest.raises(PermissionDenied):
        require(Identity("o", "operator"), "approver")


def _events(platform) -> None:
    platform.tokens.create("a", "viewer")
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    platform.data.ingest("loans", DATA / "loans_holdout.csv", "loans/holdout.csv")
    platform.tokens.create("b", "viewer")


def test_the_audit_chain_verifies_and_detects_an_edit(platform) -> None:
    _events(platform)
    assert platform.audit.count() >= 4 and platform.audit.verify() is None
    with platform._store.engine.begin() as conn:
        conn.execute(text("update audit_events set actor = 'mallory' where seq = 2"))
    bad = platform.audit.verify()
    assert bad is not None and bad.seq == 2


def test_the_audit_chain_detects_a_deletion(platform) -> None:
    _events(platform)
    with platform._store.engine.begin() as conn:
        conn.execute(text("delete from audit_events where seq = 2"))
    bad = platform.audit.verify()
    assert bad is not None and bad.seq == 3


def test_concurrent_audited_writes_keep_one_unbroken_chain(platform) -> None:
    from concurrent.futures import ThreadPoolExecutor

    repo = platform.data.repo("audit-race")
    repo.create(classification="internal")
    branches = [repo.branch(f"b{i}") for i in range(6)]
    for branch in branches:
        branch.create("main")

    def work(branch) -> int:
        for step in range(6):
            branch.upload(f"{branch.name}/{step}.txt", f"{branch.name}-{step}".encode())
            branch.commit(f"step {step}")
        return 6

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert sum(pool.map(work, branches)) == 36
    assert platform.audit.verify() is None
    assert [e.action for e in platform.audit.events(limit=1000)].count("data.commit") == 36


def test_the_audit_chain_detects_reordering(platform) -> None:
    _events(platform)
    with platform._store.engine.begin() as conn:
        conn.execute(text("update audit_events set seq = 1000 where seq = 2"))
        conn.execute(text("update audit_events set seq = 2 where seq = 3"))
        conn.execute(text("update audit_events set seq = 3 where seq = 1000"))
    bad = platform.audit.verify()
    assert bad is not None and bad.seq == 2


def test_the_audit_chain_detects_an_insertion_forged_without_the_key(platform) -> None:
    import hashlib
    import json

    _events(platform)
    last = platform.audit.events(limit=1)[0]
    forged = {"prev": last.hash, "seq": last.seq + 1, "id": "f" * 32, "at": "2026-01-01T00:00:00+00:00",
              "actor": "mallory", "action": "model.alias.move", "object": "model:x", "before": {}, "after": {}}
    digest = hashlib.sha256(json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    with platform._store.engine.begin() as conn:
        conn.execute(text("insert into audit_events values (:seq, :id, :at, 'mallory', 'model.alias.move', "
                          "'model:x', '{}', '{}', :prev, :hash)"),
                     {"seq": last.seq + 1, "id": "f" * 32, "at": "2026-01-01 00:00:00+00", "prev": last.hash,
                      "hash": digest})
    bad = platform.audit.verify()
    assert bad is not None and bad.seq == last.seq + 1


def test_an_export_verifies_and_an_edited_export_does_not(platform) -> None:
    from mlops_lite.security.audit import verify_events

    _events(platform)
    events = platform.audit.export()
    key = platform.audit._key
    assert verify_events(key, events) is None
    assert verify_events(key, events[2:]) is None  # an export --since starts mid-chain
    edited = [dict(e) for e in events]
    edited[1]["actor"] = "mallory"
    assert verify_events(key, edited)["seq"] == 2
    assert verify_events(key, events[:1] + events[2:])["seq"] == 3
    assert (platform.settings.audit_key_file.stat().st_mode & 0o777) == 0o600
