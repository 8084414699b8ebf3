"""Embedded data store: checks, protected branches, tables and queries, structural sharing."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlops_lite import InvalidInput, NotFound, PolicyViolation
from mlops_lite.data import ColumnRule, SchemaRule

from ..conftest import DATA


def _csv(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture
def repo(platform):
    repo = platform.data.repo("rules")
    repo.create(classification="internal")
    repo.branch("dev").create("main")
    return repo


SCHEMA = SchemaRule(paths="tables/*.csv", columns=(ColumnRule("id", "int", nullable=False),
                                                   ColumnRule("score", "float"), ColumnRule("email", "string")))


def test_a_failing_check_lists_every_reason_and_leaves_the_branch(repo) -> None:
    repo.configure(schemas=[SCHEMA], pii_patterns=["e-?mail", "phone"], max_object_bytes=200)
    dev = repo.branch("dev")
    bad = pa.table({"id": pa.array([1, None]), "score": ["high", "low"], "email": ["a@x.org", "b@y.org"]})
    dev.upload("tables/bad.csv", _csv(bad))
    dev.upload("big.bin", b"x" * 500)
    head = dev.head()
    with pytest.raises(PolicyViolation) as info:
        dev.commit("bad data")
    reasons = info.value.details["reasons"]
    assert any("'id' has 1 nulls" in r for r in reasons)
    assert any("'score' is string" in r for r in reasons)
    assert any("'email' matches a PII pattern" in r for r in reasons)
    assert any("big.bin: 500 bytes" in r for r in reasons)
    assert dev.head() == head and len(dev.uncommitted()) == 2


def test_anonymized_pii_and_a_matching_schema_pass(repo) -> None:
    from mlops_lite.security.anonymize import Anonymizer, derive_key

    repo.configure(schemas=[SCHEMA], pii_patterns=["email"])
    dev = repo.branch("dev")
    key = derive_key(b"k" * 32, "rules")
    good = pa.table({"id": [1, 2], "score": [0.5, 1.0],
                     "email": [Anonymizer.token("a@x.org", key), Anonymizer.token("b@y.org", key)]})
    dev.upload("tables/good.csv", _csv(good))
    dev.commit("good data")
    merged = dev.merge_into("main")
    assert repo.branch("main").head() == merged


def test_checks_also_guard_merges(repo) -> None:
    dev = repo.branch("dev")
    dev.upload("tables/t.csv", _csv(pa.table({"id": [1], "email": ["plain@example.com"]})))
    dev.commit("before the rule")
    repo.configure(pii_patterns=["email"])
    with pytest.raises(PolicyViolation, match="not pseudonymized"):
        dev.merge_into("main")
    assert repo.branch("main").head() is None


def test_bad_config_is_refused(repo) -> None:
    with pytest.raises(InvalidInput):
        repo.configure(pii_patterns=["("])
    with pytest.raises(InvalidInput):
        repo.configure(schemas=[SchemaRule("x", (ColumnRule("a", "complex"),))])
    assert repo.config().pii_patterns == ()


def test_read_table_and_glob_at_a_ref(platform, repo) -> None:
    dev = repo.branch("dev")
    dev.upload("loans/a.csv", (DATA / "loans_holdout.csv").read_bytes())
    table = pacsv.read_csv(DATA / "loans_holdout.csv")
    sink = pa.BufferOutputStream()
    pq.write_table(table.slice(0, 100), sink)
    dev.upload("loans/p/b.parquet", sink.getvalue().to_pybytes())
    commit = dev.commit("tables")
    read = repo.ref("dev").read_table("loans/*.csv")
    assert read.commit == commit.id and read.table.num_rows == 500
    assert repo.ref(commit.id).read_table("loans/p/*.parquet").table.num_rows == 100
    with pytest.raises(NotFound):
        repo.ref("dev").read_table("loans/*.json")


def test_sql_over_tables_at_refs(repo) -> None:
    dev = repo.branch("dev")
    dev.upload("loans/holdout.csv", (DATA / "loans_holdout.csv").read_bytes())
    first = dev.commit("v1")
    dev.upload("loans/holdout.csv", (DATA / "loans_drifted.csv").read_bytes())
    second = dev.commit("v2")
    result = repo.query("select (select count(*) from old) as old_rows, (select count(*) from new) as new_rows",
                        old=(first.id, "loans/holdout.csv"), new=("dev", "loans/*.csv"))
    assert result.table.to_pylist() == [{"old_rows": 500, "new_rows": 2000}]
    assert result.commits == {"old": first.id, "new": second.id}
    with pytest.raises(InvalidInput, match="query failed"):
        repo.query("select nonsense from t", t=("dev", "loans/holdout.csv"))
    with pytest.raises(InvalidInput):
        repo.query("select 1", **{"bad name": ("dev", "loans/holdout.csv")})


def test_commits_share_unchanged_subtrees(platform, repo) -> None:
    dev = repo.branch("dev")
    for folder in range(20):
        for i in range(20):
            dev.upload(f"f{folder}/{i}.txt", f"{folder}-{i}".encode())
    first = dev.commit("400 files")
    objects = platform.settings.objects_dir / "data"
    before = sum(1 for _ in objects.rglob("*") if _.is_file())
    dev.upload("f3/7.txt", b"changed")
    second = dev.commit("one change")
    after = sum(1 for _ in objects.rglob("*") if _.is_file())
    assert after - before == 3  # the new object, the f3 node, the root node
    assert [d.path for d in repo.diff(first.id, second.id)] == ["f3/7.txt"]


def test_gc_removes_only_unreachable_objects_and_fsck_stays_clean(platform, repo) -> None:
    dev = repo.branch("dev")
    dev.upload("a.txt", b"kept")
    dev.commit("kept")
    dev.upload("b.txt", b"dropped before commit")
    dev.reset()
    dry = platform.data.gc(retention_days=0, grace_seconds=0)
    assert dry.dry_run and dry.unreachable == 1 and dry.removed == 0
    young = platform.data.gc(retention_days=0, grace_seconds=3600, dry_run=False)
    assert young.removed == 0 and young.kept_young >= 1
    done = platform.data.gc(retention_days=0, grace_seconds=0, dry_run=False)
    assert done.removed == 1
    assert dev.read_bytes("a.txt") == b"kept"
    assert platform.data.fsck().clean


def test_fsck_finds_a_corrupt_and_a_missing_object(platform, repo) -> None:
    dev = repo.branch("dev")
    dev.upload("a.txt", b"aaaa")
    dev.upload("b.txt", b"bbbb")
    dev.commit("two")
    a = dev.stat("a.txt").digest
    b = dev.stat("b.txt").digest
    platform.data.object_file(a).chmod(0o644)
    platform.data.object_file(a).write_bytes(b"evil")
    platform.data.object_file(b).unlink()
    report = platform.data.fsck()
    assert report.bad_objects == [a]
    assert any(b in m for m in report.missing) and not report.clean


def test_per_path_merge_rules_pick_a_side_per_glob(repo) -> None:
    dev = repo.branch("dev")
    for name in ("c.txt", "d.txt"):
        dev.upload(name, b"base")
    dev.commit("base")
    dev.merge_into("main")
    other = repo.branch("other")
    other.create("main")
    for branch, content in ((dev, b"dev"), (other, b"other")):
        for name in ("c.txt", "d.txt"):
            branch.upload(name, content)
        branch.commit(content.decode())
    other.merge_into("main")
    dev.merge_into("main", strategy="dest-wins", rules={"c.*": "source-wins"})
    main = repo.ref("main")
    assert main.read_bytes("c.txt") == b"dev" and main.read_bytes("d.txt") == b"other"
    with pytest.raises(InvalidInput):
        dev.merge_into("main", rules={"*": "coin-flip"})


def test_gc_past_the_retention_keeps_history_walkable(platform, repo) -> None:
    from mlops_lite import connect

    dev, feat = repo.branch("dev"), repo.branch("feat")
    dev.upload("t.txt", b"v0")
    dev.commit("c0")
    feat.create("dev")
    dev.upload("t.txt", b"v1")
    dev.commit("c1")
    feat.upload("t.txt", b"v2")
    feat.upload("b.txt", b"feature")
    feat.commit("f1")
    report = platform.data.gc(retention_days=0, grace_seconds=0, dry_run=False)
    assert report.removed == 1  # v0: only the merge base, past the retention, reaches it
    home = platform.settings.home
    platform.close()
    with connect(home=home) as fresh:  # a new process has no tree cache to hide a lost node
        assert fresh.data.fsck().clean
        merged = fresh.data.repo("rules").branch("feat").merge_into("dev", strategy="source-wins")
        main = fresh.data.repo("rules").ref(merged.id)
        assert main.read_bytes("t.txt") == b"v2" and main.read_bytes("b.txt") == b"feature"
