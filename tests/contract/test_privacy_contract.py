"""``platform.privacy``'s data-subject rights, local and over HTTP: the same export,
erasure (dry run first), retention and refusals; over HTTP, the admin role only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from mlops_lite.clock import utcnow
from mlops_lite.errors import InvalidInput, NotFound, PermissionDenied
from tests.contract.conftest import actor_of, refused

SUBJECT = "c-7731"


def _repository(api: Any) -> Any:
    from mlops_lite.data import RepositoryConfig
    from mlops_lite.privacy.profile import PrivacyProfile

    repo = api.data.repo("subjects")
    repo.create(config=RepositoryConfig(protected_branches=(), privacy=PrivacyProfile(
        classification="internal", subject_columns=("customer_id",), retention_days=365, time_column="seen")))
    main = repo.branch("main")
    recent = (utcnow() - timedelta(days=1)).date().isoformat()
    main.upload("s/a.csv", f"customer_id,seen\n{SUBJECT},{recent}\nc-1,{recent}\nc-2,2001-01-01\n".encode())
    main.commit("first")
    main.upload("s/b.csv", f"customer_id,seen\nc-3,{recent}\n{SUBJECT},{recent}\n".encode())
    main.commit("second")
    return repo


def test_export_erase_and_retention(api: Any) -> None:
    repo = _repository(api)
    export = api.privacy.export("subjects", SUBJECT)
    assert sorted(r["path"] for r in export.rows) == ["s/a.csv", "s/b.csv"]
    assert all(r["row"]["customer_id"] == SUBJECT and r["branch"] == "main" for r in export.rows)

    dry = api.privacy.erase("subjects", SUBJECT, dry_run=True)
    assert (dry.dry_run, dry.rows, dry.objects, dry.erasure) == (True, 2, 2, None)
    assert SUBJECT.encode() in repo.ref("main").read_bytes("s/a.csv")
    report = api.privacy.erase("subjects", SUBJECT)
    assert (report.rows, report.objects, len(report.commits), report.repositories) == (2, 2, 2, ("subjects",))
    assert report.erasure and report.subject_digest and SUBJECT not in report.subject_digest
    assert SUBJECT.encode() not in repo.ref("main").read_bytes("s/a.csv")
    assert [c.message for c in repo.log("main")] == ["second", "first"]
    old, new = sorted(report.commits.items())[0]
    replaced = api.privacy.replacement(old)
    assert (replaced.new_commit, replaced.repository, replaced.kind) == (new, "subjects", "erase")
    refused(NotFound, lambda: api.privacy.replacement(new))
    assert api.privacy.export("subjects", SUBJECT).rows == ()
    event = next(e for e in api.audit.events(limit=50) if e.action == "privacy.erase")
    assert event.actor == actor_of(api) and event.after["commits"] == report.commits

    retention = api.privacy.retention(dry_run=True)
    assert [(r.repository, r.rows) for r in retention.repositories] == [("subjects", 1)]
    retention = api.privacy.retention()
    assert [(r.repository, r.rows) for r in retention.repositories] == [("subjects", 1)]
    assert b"2001-01-01" not in repo.ref("main").read_bytes("s/a.csv")
    assert any(e.action == "privacy.retention" for e in api.audit.events(limit=50))


def test_bad_requests_are_refused_alike(api: Any) -> None:
    _repository(api)
    count = len(api.audit.events(limit=1000))
    refused(NotFound, lambda: api.privacy.erase("no-such-repo", SUBJECT))
    refused(InvalidInput, lambda: api.privacy.erase("subjects", ""))
    refused(InvalidInput, lambda: api.privacy.export("subjects", " "))
    assert len(api.audit.events(limit=1000)) == count


def test_subject_rights_need_an_admin_over_http(api: Any, api_kind: str) -> None:
    if api_kind == "local":
        pytest.skip("roles are the server's: in-process the platform acts as its own actor")
    from mlops_lite.client import RemotePlatform

    _repository(api)
    _, secret = api.tokens.create("ops", "operator")
    with RemotePlatform(api.url, secret) as operator:
        refused(PermissionDenied, lambda: operator.privacy.erase("subjects", SUBJECT))
        refused(PermissionDenied, lambda: operator.privacy.export("subjects", SUBJECT))
        refused(PermissionDenied, lambda: operator.privacy.retention())
    assert all(not e.action.startswith("privacy.") for e in api.audit.events(limit=100))
