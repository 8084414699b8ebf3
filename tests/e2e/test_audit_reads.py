"""Reads are audited too, over a real server on 127.0.0.1: object reads and uploads on the
lakeFS API, table queries on /v1/data, SQL on /v1/sql (its digest, never its text), gc
runs and failed logins (counted per client, never the secret); and the signed
checkpoints answer over HTTP as they do in-process."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from mlops_lite.client import RemotePlatform
from mlops_lite.security.checkpoints import check, read_public_key

CSV = b"id,amount\n1,100\n2,250\n3,75\n"
REPO = "audited"
BRANCH = "work"  # main is protected: it takes changes only by merge
WRONG_TOKEN = "mll_not-a-real-token-0123456789"
WRONG_SECRET = "wrong-secret-access-key-987654321"


@dataclass
class Served:
    url: str
    platform: Any
    admin: str
    key: str
    secret: str

    def v1(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/v1", headers={"Authorization": f"Bearer {token or self.admin}"},
                            timeout=60)

    def lakefs(self, key: str | None = None, secret: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", auth=(key or self.key, secret or self.secret), timeout=60)

    def events(self, action: str) -> list[Any]:
        return [e for e in self.platform.audit.events(limit=10_000) if e.action == action]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local
    from server import create_app
    from server.runner import serve_in_thread

    settings = load_settings(home=tmp_path / "home")
    init_home(settings)
    platform = open_local(settings)
    try:
        _, admin = platform.tokens.create("auditor", "admin")
        _, key, secret = platform.tokens.create_access_key("uploader", "operator")
        running = serve_in_thread(create_app(platform))
        try:
            yield Served(running.url, platform, admin, key, secret)
        finally:
            running.stop()
    finally:
        platform.close()


def _repository_with_an_object(served: Served) -> None:
    with served.lakefs() as api:
        assert api.post("/repositories", json={"name": REPO, "storage_namespace": f"local://{REPO}",
                                               "default_branch": "main"}).status_code == 201
        assert api.post(f"/repositories/{REPO}/branches", json={"name": BRANCH, "source": "main"}).status_code == 201
        assert api.post(f"/repositories/{REPO}/branches/{BRANCH}/objects", params={"path": "loans.csv"},
                        content=CSV, headers={"Content-Type": "application/octet-stream"}).status_code == 201
        assert api.post(f"/repositories/{REPO}/branches/{BRANCH}/commits",
                        json={"message": "loans"}).status_code == 201


def test_uploads_and_object_reads_are_events_naming_who_what_and_how_much(served: Served) -> None:
    _repository_with_an_object(served)
    [upload] = served.events("data.upload")
    assert (upload.actor, upload.object) == ("access-key:uploader", f"data:{REPO}/{BRANCH}")
    assert upload.after == {"path": "loans.csv", "digest": hashlib.sha256(CSV).hexdigest(), "bytes": len(CSV)}
    assert served.events("data.read") == []
    with served.lakefs() as api:
        assert api.get(f"/repositories/{REPO}/refs/{BRANCH}/objects", params={"path": "loans.csv"}).content == CSV
        ranged = api.get(f"/repositories/{REPO}/refs/{BRANCH}/objects", params={"path": "loans.csv"},
                         headers={"Range": "bytes=0-9"})
        assert ranged.status_code == 206
        # Metadata, not data: a stat, a listing and a HEAD are not reads of the bytes.
        assert api.get(f"/repositories/{REPO}/refs/{BRANCH}/objects/stat", params={"path": "loans.csv"}).is_success
        assert api.get(f"/repositories/{REPO}/refs/{BRANCH}/objects/ls").is_success
        assert api.head(f"/repositories/{REPO}/refs/{BRANCH}/objects", params={"path": "loans.csv"}).is_success
        # A read that fails (no such object) reads nothing.
        assert api.get(f"/repositories/{REPO}/refs/{BRANCH}/objects", params={"path": "nope.csv"}).status_code == 404
    reads = served.events("data.read")[::-1]
    assert [(e.actor, e.object, e.after["path"], e.after["bytes"]) for e in reads] == [
        ("access-key:uploader", f"data:{REPO}/{BRANCH}", "loans.csv", len(CSV)),
        ("access-key:uploader", f"data:{REPO}/{BRANCH}", "loans.csv", 10)]
    assert reads[1].after["range"] == [0, 9] and "range" not in reads[0].after


def test_queries_keep_a_digest_of_the_statement_not_its_text(served: Served) -> None:
    _repository_with_an_object(served)
    table_sql = "select amount from loans where id = 2 -- ann@example.com"
    metadata_sql = "SELECT count(*) AS n FROM runs WHERE name = 'ann@example.com'"
    with served.v1() as api:
        answer = api.post(f"/data/repositories/{REPO}/query",
                          json={"sql": table_sql, "tables": {"loans": [BRANCH, "loans.csv"]}})
        assert answer.status_code == 200, answer.text
        assert api.post("/sql", json={"query": metadata_sql}).status_code == 200
    [query] = served.events("data.query")
    assert (query.actor, query.object) == ("token:auditor", f"data:{REPO}")
    assert query.after["sql"] == {"sha256": hashlib.sha256(table_sql.encode()).hexdigest(),
                                  "length": len(table_sql), "keyword": "select"}
    assert query.after["rows"] == 1 and set(query.after["tables"]) == {"loans"}
    [sql] = served.events("sql.query")
    assert (sql.actor, sql.object) == ("token:auditor", "metadata")
    assert sql.after == {"sql": {"sha256": hashlib.sha256(metadata_sql.encode()).hexdigest(),
                                 "length": len(metadata_sql), "keyword": "select"}, "rows": 1}
    exported = json.dumps(served.platform.audit.export())
    assert "ann@example.com" not in exported and "where id = 2" not in exported


def test_a_gc_run_is_an_event(served: Served) -> None:
    with served.v1() as api:
        for dry_run in (True, False):
            assert api.post("/data/gc", json={"dry_run": dry_run, "retention_days": 0}).status_code == 200
    runs = served.events("data.gc")[::-1]
    assert [(e.actor, e.object, e.after["dry_run"]) for e in runs] == [("token:auditor", "data", True),
                                                                       ("token:auditor", "data", False)]
    assert runs[0].after["retention_days"] == 0 and "removed" in runs[0].after


def test_failed_logins_are_counted_per_client_and_kind_without_the_secret(served: Served) -> None:
    before = served.platform.audit.count()
    with served.v1(WRONG_TOKEN) as wrong:
        for _ in range(5):
            assert wrong.get("/audit/count").status_code == 401
    with served.lakefs(served.key, WRONG_SECRET) as wrong_key:
        for _ in range(3):
            assert wrong_key.get("/repositories").status_code == 401
    with httpx.Client(base_url=served.url + "/v1", timeout=60) as anonymous:
        for _ in range(2):
            assert anonymous.get("/audit/count").status_code == 401
    # Ten refusals, no event yet: they are counted until the window closes.
    assert served.platform.audit.count() == before
    with RemotePlatform(served.url, served.admin) as remote:
        remote.audit.checkpoint()  # closes the window: what the daemon's schedule does every minute
        failed = remote.audit.about("client:127.0.0.1", action_prefix="auth.failed")
    counts = {event.after["credential"]: event.after["count"] for event in failed}
    assert counts == {"token": 5, "access-key": 3, "none": 2}
    assert {event.actor for event in failed} == {"unauthenticated"}
    exported = json.dumps(served.platform.audit.export())
    assert WRONG_TOKEN not in exported and WRONG_SECRET not in exported


def test_checkpoints_over_http_and_an_auditor_with_the_public_key_alone(served: Served) -> None:
    _repository_with_an_object(served)
    with RemotePlatform(served.url, served.admin) as remote:
        signed = remote.audit.checkpoint()
        assert signed == remote.audit.checkpoints()[-1] == served.platform.audit.checkpoints()[-1]
        assert signed.seq == remote.audit.count()
        assert remote.audit.verify_signed() == served.platform.audit.verify_signed()
        assert remote.audit.verify_signed().verified
        # The auditor: an export, the checkpoints and the public key, checked off the server.
        verdict = check(remote.audit.export(), remote.audit.checkpoints(),
                        read_public_key(remote.audit.public_key()), whole_chain=True)
        assert verdict.verified and verdict.signed_through == signed.seq
        # The tail cut in the database behind the server's back.
        with served.platform._store.engine.begin() as connection:
            connection.execute(text(f"delete from audit_events where seq > {signed.seq - 2}"))
        served.platform.audit._shared.tail = None  # the server re-reads its tail, as after a restart
        answer = remote.request("GET", "/v1/audit/verify")
        assert answer["verified"] is False and answer["first_bad"] is None
        assert answer["signed"]["missing"] == [signed.seq - 1, signed.seq]
        assert any(signed.id in problem for problem in answer["signed"]["problems"])


def test_reading_checkpoints_needs_the_roles_the_server_declares(served: Served) -> None:
    _, viewer = served.platform.tokens.create("a-viewer", "viewer")
    with served.v1(viewer) as api:
        assert "BEGIN PUBLIC KEY" in api.get("/audit/public-key").json()["public_key"]
        assert api.get("/audit/checkpoints").status_code == 403
        assert api.post("/audit/checkpoints").status_code == 403


def test_the_daemons_schedule_writes_failed_logins_and_signs_the_head(tmp_path: Path) -> None:
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local
    from server.jobs import DaemonJobs

    settings = load_settings(home=tmp_path / "home", audit_checkpoint_interval_s=0.2)
    init_home(settings)
    with open_local(settings) as platform:
        jobs = DaemonJobs(platform, settings, prefect_url=None, load_flows=lambda: None, echo=lambda _: None)
        before = platform.audit.checkpoints()[-1]
        platform.audit.failed_login("192.0.2.7", "jwt")
        jobs.start()
        try:
            deadline = time.monotonic() + 20
            while not platform.audit.about("client:192.0.2.7") and time.monotonic() < deadline:
                time.sleep(0.05)
            while platform.audit.checkpoints()[-1].seq <= before.seq and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            jobs.stop()
        [failed] = platform.audit.about("client:192.0.2.7")
        assert failed.after["count"] == 1 and failed.after["credential"] == "jwt"
        assert platform.audit.checkpoints()[-1].seq == failed.seq
        assert platform.audit.verify_signed().verified
