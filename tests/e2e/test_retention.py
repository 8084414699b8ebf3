"""Retention (``privacy retention``): rows older than a repository's ``retention_days`` (by
its time column) leave its whole history; without a time column, objects first committed
longer ago leave the branch heads; each run is audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops_lite.clock import utcnow


@pytest.fixture
def p(tmp_path: Path) -> Iterator[Any]:
    from mlops_lite import connect

    platform = connect(home=tmp_path / "home")
    yield platform
    platform.close()


def make(p: Any, name: str, **profile: Any) -> Any:
    from mlops_lite.data import RepositoryConfig
    from mlops_lite.privacy.profile import PrivacyProfile

    p.data.repo(name).create(config=RepositoryConfig(
        protected_branches=(), privacy=PrivacyProfile(classification="internal", subject_columns=("customer_id",),
                                                      **profile)))
    return p.data.repo(name)


def test_rows_past_retention_leave_history(p: Any) -> None:
    repo = make(p, "events", retention_days=30, time_column="seen_at")
    old, recent = (utcnow() - timedelta(days=90)).isoformat(), (utcnow() - timedelta(days=2)).isoformat()
    first = f"customer_id,seen_at\nc1,{old}\nc2,{recent}\n".encode()
    repo.branch("main").upload("e/a.csv", first)
    repo.branch("main").commit("first")
    repo.branch("main").upload("e/b.csv", f"customer_id,seen_at\nc3,{recent}\nc4,not a time\n".encode())
    repo.branch("main").commit("second")
    assert p.privacy.retention(dry_run=True).repositories[0].rows == 1
    assert repo.ref("main").read_bytes("e/a.csv") == first

    report = p.privacy.retention()
    [run] = report.repositories
    assert (run.repository, run.rows, run.objects, run.commits) == ("events", 1, 1, 2)
    assert repo.ref("main").read_bytes("e/a.csv") == f"customer_id,seen_at\nc2,{recent}\n".encode()
    log = repo.log("main")
    assert [c.message for c in log] == ["second", "first"]
    assert repo.ref(log[-1].id).read_bytes("e/a.csv") == f"customer_id,seen_at\nc2,{recent}\n".encode()
    assert p.data.fsck().clean
    events = [e for e in p.audit.events(limit=1000) if e.action == "privacy.retention"]
    assert events and any(e.after.get("repositories", {}).get("events") for e in events)
    assert p.privacy.retention().repositories[0].rows == 0  # nothing left to remove


def test_without_a_time_column_old_objects_leave_the_heads(p: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlops_lite.data.context as context

    repo = make(p, "files", retention_days=30)
    long_ago = utcnow() - timedelta(days=45)
    monkeypatch.setattr(context, "utcnow", lambda: long_ago)
    repo.branch("main").upload("f/old.csv", b"customer_id\nc1\n")
    repo.branch("main").commit("old")
    monkeypatch.undo()
    repo.branch("main").upload("f/new.csv", b"customer_id\nc2\n")
    repo.branch("main").commit("new")
    make(p, "untouched")  # no retention declared

    report = p.privacy.retention()
    assert [(r.repository, r.paths_removed, r.commits) for r in report.repositories] == [("files", 1, 1)]
    paths = [o.path for o in repo.ref("main").objects()]
    assert paths == ["f/new.csv"]
    assert repo.log("main")[0].message.startswith("retention:")
    assert p.data.fsck().clean
    assert p.privacy.retention().repositories[0].paths_removed == 0


def test_the_prediction_log_keeps_its_retention(tmp_path: Path) -> None:
    """Feedback written now, and the same file moved into a partition dated long ago: the
    run removes the old partition only, and the audit event counts it."""
    import shutil

    from mlops_lite import connect

    with connect(home=tmp_path / "home", prediction_log_retention_days=30) as p:
        assert p.monitoring.record_feedback("credit", [("req-1", "1")]) == 1
        p.monitoring.flush()
        [today] = list((p.monitoring.feedback_dir / "deployment=credit").glob("date=*"))
        old = today.with_name("date=2001-01-01")
        shutil.copytree(today, old)
        assert p.privacy.retention(dry_run=True).prediction_log_files is None and old.exists()
        report = p.privacy.retention()
        assert (report.prediction_log_days, report.prediction_log_files) == (30, 1)
        assert not old.exists() and today.exists()
        assert p.monitoring.query("select count(*) as n from feedback").to_pylist() == [{"n": 1}]
        event = next(e for e in p.audit.events(limit=100) if e.action == "privacy.retention")
        assert event.after["prediction_log_files"] == 1


def test_the_daemon_runs_retention_daily(p: Any) -> None:
    from server.jobs import DaemonJobs

    repo = make(p, "daily", retention_days=30, time_column="seen_at")
    repo.branch("main").upload("d.csv", b"customer_id,seen_at\nc1,2001-01-01\nc2,2999-01-01\n")
    repo.branch("main").commit("rows")
    jobs = DaemonJobs(p, p.settings, prefect_url=None, load_flows=lambda: None)
    jobs.start()
    try:
        job = next(j for j in jobs._scheduler.get_jobs() if j.id == "privacy-retention")
        assert job.trigger.interval == timedelta(hours=24)
    finally:
        jobs.stop()
    jobs.retention()
    assert repo.ref("main").read_bytes("d.csv") == b"customer_id,seen_at\nc2,2999-01-01\n"
    assert any(e.action == "privacy.retention" for e in p.audit.events(limit=50))
