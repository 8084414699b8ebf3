from pathlib import Path

import pytest

from mlops_lite import Conflict, IntegrityError, InvalidInput, NotFound

from ..conftest import DATA


def test_ingest_commits_content_addressed_and_reads_back(platform, tmp_path: Path) -> None:
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    commit = platform.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
    assert len(commit.id) == 64
    assert [o.path for o in platform.data.repo("loans").ref(commit.id).ls().objects] == ["loans/train.csv"]
    read = platform.data.repo("loans").ref(commit.id).read_table("loans/train.csv")
    assert read.commit == commit.id
    assert read.table.num_rows == 6000 and "default" in read.table.column_names
    import hashlib

    digest = hashlib.sha256((DATA / "loans.csv").read_bytes()).hexdigest()
    assert platform.data.repo("loans").ref("main").stat("loans/train.csv").digest == digest
    assert platform.data.object_file(digest).is_file()


def test_ingest_is_idempotent_and_old_commits_stay_readable(platform, tmp_path: Path) -> None:
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    first = platform.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
    assert platform.data.ingest("loans", DATA / "loans.csv", "loans/train.csv").id == first.id
    second = platform.data.ingest("loans", DATA / "loans_drifted.csv", "loans/train.csv")
    assert second.id != first.id and second.parent == first.id
    repo = platform.data.repo("loans")
    assert repo.ref(first.id).read_table("loans/train.csv").table.num_rows == 6000
    assert repo.ref("main").read_table("loans/train.csv").table.num_rows == 2000
    assert [c.id for c in repo.log("main")][:2] == [second.id, first.id]
    assert [b.name for b in repo.branches()] == ["main"]


def test_commit_with_nothing_staged_is_a_conflict_and_changes_nothing(platform) -> None:
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    platform.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
    branch = platform.data.repo("loans").branch("dev")
    branch.create("main")
    head = branch.head()
    with pytest.raises(Conflict, match="nothing to commit"):
        branch.commit("empty")
    assert branch.head() == head


@pytest.mark.parametrize("name", ["AB", "x", "-bad", "has space", "UPPER"])
def test_bad_repository_names_are_refused(platform, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        platform.data.repo(name)
    assert info.value.field == "repository"


@pytest.mark.parametrize("path", ["/abs.csv", "a/../b.csv", "a//b.csv", ""])
def test_bad_paths_are_refused_and_nothing_is_committed(platform, path: str) -> None:
    with pytest.raises(InvalidInput) as info:
        platform.data.ingest("loans", DATA / "loans.csv", path)
    assert info.value.field == "path"
    assert platform.data.repositories() == []


def test_missing_source_and_unknown_refs(platform, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        platform.data.ingest("loans", tmp_path / "nope.csv", "loans/train.csv")
    with pytest.raises(NotFound):
        platform.data.repo("nothing").ref("main").read_table("x.csv")
    platform.data.repo("loans").create(classification="internal")
    platform.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
    with pytest.raises(NotFound):
        platform.data.repo("loans").ref("no-such-branch").read_table("loans/train.csv")
    with pytest.raises(NotFound):
        platform.data.repo("loans").ref("main").read_table("loans/other.csv")


def test_a_corrupted_object_is_detected(platform) -> None:
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    platform.data.ingest("loans", DATA / "loans_holdout.csv", "loans/holdout.csv")
    digest = platform.data.repo("loans").ref("main").stat("loans/holdout.csv").digest
    target = platform.data.object_file(digest)
    target.chmod(0o644)
    target.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=digest):
        platform.data.repo("loans").ref("main").read_bytes("loans/holdout.csv")


def test_commits_survive_a_reopen(home: Path) -> None:
    from mlops_lite import connect

    with connect(home=home) as first:
        first.data.repo("loans").create(classification="internal", exist_ok=True)
        commit = first.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
    with connect(home=home) as second:
        assert second.data.repo("loans").branch("main").head().id == commit.id
        assert second.audit.verify() is None
