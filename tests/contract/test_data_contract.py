"""What every data backend must do, in lakeFS's words."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_lite import BackendUnavailable, Conflict, InvalidInput, NotFound, PermissionDenied, PolicyViolation
from mlops_lite.data import RepositoryConfig


@pytest.fixture
def repo(data):
    repo = data.repo("contract-repo")
    repo.create(classification="internal")
    return repo


@pytest.fixture
def dev(repo):
    branch = repo.branch("dev")
    branch.create("main")
    return branch


def _commit(branch, files: dict[str, bytes], message: str = "change"):
    for path, content in files.items():
        branch.upload(path, content)
    return branch.commit(message)


def test_a_new_repository_has_an_empty_protected_main(data, repo) -> None:
    info = repo.info()
    assert info.default_branch == "main" and "main" in info.protected_branches
    assert [b.name for b in repo.branches()] == ["main"]
    assert repo.branch("main").head() is None
    assert "contract-repo" in [r.name for r in data.repositories()]
    with pytest.raises(Conflict):
        repo.create(classification="internal")
    assert repo.create(exist_ok=True).name == "contract-repo"


def test_protected_main_takes_changes_only_by_merge(repo, dev) -> None:
    with pytest.raises(PolicyViolation, match="protected"):
        repo.branch("main").upload("a.txt", b"a")
    _commit(dev, {"a.txt": b"a"})
    merged = dev.merge_into("main")
    assert repo.branch("main").head() == merged
    assert repo.ref("main").read_bytes("a.txt") == b"a"


def test_staging_is_visible_on_the_branch_only_until_committed(repo, dev) -> None:
    dev.upload("x/1.txt", b"one")
    assert dev.stat("x/1.txt").staged and dev.read_bytes("x/1.txt") == b"one"
    assert [d.path for d in dev.uncommitted()] == ["x/1.txt"]
    with pytest.raises(NotFound):
        repo.ref("main").stat("x/1.txt")
    commit = dev.commit("one", metadata={"source": "test"})
    assert commit.metadata == {"source": "test"} and dev.uncommitted() == []
    assert repo.ref(commit.id).read_bytes("x/1.txt") == b"one"
    assert not dev.stat("x/1.txt").staged


def test_commit_with_nothing_staged_is_a_conflict(dev) -> None:
    with pytest.raises(Conflict, match="nothing to commit"):
        dev.commit("empty")
    with pytest.raises(InvalidInput):
        dev.commit("  ")


def test_objects_are_content_addressed(repo, dev) -> None:
    import hashlib

    record = dev.upload("a.bin", b"payload")
    assert record.digest == hashlib.sha256(b"payload").hexdigest() and record.size == 7
    assert dev.upload("b.bin", b"payload").digest == record.digest


def test_byte_ranges(dev) -> None:
    _commit(dev, {"r.bin": bytes(range(100))})
    assert dev.read_bytes("r.bin", start=10, end=19) == bytes(range(10, 20))
    assert dev.read_bytes("r.bin", start=95) == bytes(range(95, 100))
    with pytest.raises(InvalidInput):
        dev.read_bytes("r.bin", start=200, end=300)


def test_listing_with_prefix_delimiter_and_pages(dev) -> None:
    _commit(dev, {f"d/{i}.txt": b"x" for i in range(5)} | {"d/sub/a.txt": b"a", "e.txt": b"e"})
    dev.upload("d/9.txt", b"staged")
    dev.delete_object("d/0.txt")
    flat = [o.path for o in dev.objects("d/")]
    assert flat == ["d/1.txt", "d/2.txt", "d/3.txt", "d/4.txt", "d/9.txt", "d/sub/a.txt"]
    page = dev.ls("d/", delimiter="/", amount=2)
    assert [o.path for o in page.objects] == ["d/1.txt", "d/2.txt"] and page.has_more
    rest = dev.ls("d/", delimiter="/", after=page.next_after, amount=10)
    assert [o.path for o in rest.objects] == ["d/3.txt", "d/4.txt", "d/9.txt"]
    assert rest.prefixes == ("d/sub/",) and not rest.has_more
    top = dev.ls("", delimiter="/")
    assert top.prefixes == ("d/",) and [o.path for o in top.objects] == ["e.txt"]


def test_delete_object_and_reset(repo, dev) -> None:
    _commit(dev, {"keep.txt": b"k", "drop.txt": b"d"})
    dev.delete_object("drop.txt")
    assert [(d.path, d.type) for d in dev.uncommitted()] == [("drop.txt", "removed")]
    assert dev.reset() == 1 and dev.uncommitted() == []
    dev.delete_object("drop.txt")
    dev.commit("drop")
    with pytest.raises(NotFound):
        dev.stat("drop.txt")
    with pytest.raises(NotFound):
        dev.delete_object("never.txt")


def test_log_is_newest_first_and_pages(repo, dev) -> None:
    commits = [_commit(dev, {f"{i}.txt": b"%d" % i}, f"c{i}") for i in range(5)]
    log = repo.log("dev", amount=3)
    assert [c.id for c in log] == [c.id for c in reversed(commits)][:3]
    more = repo.log("dev", amount=10, after=log[-1].id)
    assert [c.id for c in more] == [commits[1].id, commits[0].id]
    assert commits[3].parents == (commits[2].id,)


def test_diff_between_refs(repo, dev) -> None:
    base = _commit(dev, {"a.txt": b"a", "b.txt": b"b", "dir/c.txt": b"c"})
    dev.upload("a.txt", b"A")
    dev.delete_object("b.txt")
    dev.upload("dir/d.txt", b"d")
    head = dev.commit("edit")
    diff = {(d.path, d.type) for d in repo.diff(base.id, head.id)}
    assert diff == {("a.txt", "changed"), ("b.txt", "removed"), ("dir/d.txt", "added")}
    assert repo.diff(head.id, head.id) == []
    assert [d.path for d in repo.diff(base.id, head.id, prefix="dir/")] == ["dir/d.txt"]


def test_branch_from_any_ref_and_delete(repo, dev) -> None:
    first = _commit(dev, {"v.txt": b"1"})
    _commit(dev, {"v.txt": b"2"})
    old = repo.branch("old")
    assert old.create(first.id).head == first.id
    assert old.read_bytes("v.txt") == b"1"
    with pytest.raises(Conflict):
        old.create("main")
    old.delete()
    with pytest.raises(NotFound):
        old.head()
    with pytest.raises(NotFound):
        repo.branch("ghost").create("no-such-ref")


def test_three_way_merge_applies_both_sides(repo, dev) -> None:
    _commit(dev, {"shared.txt": b"base", "a.txt": b"a"})
    dev.merge_into("main")
    other = repo.branch("other")
    other.create("main")
    _commit(dev, {"from-dev.txt": b"dev"})
    _commit(other, {"from-other.txt": b"other"})
    other.merge_into("main")
    merged = dev.merge_into("main")
    main = repo.ref("main")
    assert len(merged.parents) == 2
    assert {o.path for o in main.objects()} == {"shared.txt", "a.txt", "from-dev.txt", "from-other.txt"}


def test_conflicts_fail_by_default_and_strategies_resolve_them(repo, dev) -> None:
    _commit(dev, {"c.txt": b"base", "d.txt": b"base"})
    dev.merge_into("main")
    other = repo.branch("other")
    other.create("main")
    _commit(dev, {"c.txt": b"dev", "d.txt": b"dev"})
    _commit(other, {"c.txt": b"other", "d.txt": b"other"})
    other.merge_into("main")
    head = repo.branch("main").head()
    with pytest.raises(Conflict, match=r"c\.txt") as info:
        dev.merge_into("main")
    assert sorted(info.value.details["conflicts"]) == ["c.txt", "d.txt"]
    assert repo.branch("main").head() == head
    dev.merge_into("main", strategy="source-wins")
    main = repo.ref("main")
    assert main.read_bytes("c.txt") == b"dev" and main.read_bytes("d.txt") == b"dev"
    with pytest.raises(InvalidInput):
        dev.merge_into("main", strategy="coin-flip")


def test_merging_again_changes_nothing(repo, dev) -> None:
    _commit(dev, {"a.txt": b"a"})
    first = dev.merge_into("main")
    assert dev.merge_into("main") == first


def test_revert_undoes_one_commit(repo, dev) -> None:
    _commit(dev, {"a.txt": b"1", "b.txt": b"1"})
    bad = _commit(dev, {"a.txt": b"2", "c.txt": b"new"})
    _commit(dev, {"b.txt": b"2"})
    reverted = dev.revert(bad.id)
    assert reverted.parents[0] != bad.id
    assert dev.read_bytes("a.txt") == b"1" and dev.read_bytes("b.txt") == b"2"
    with pytest.raises(NotFound):
        dev.stat("c.txt")


def test_tags(repo, dev) -> None:
    commit = _commit(dev, {"t.txt": b"t"})
    tag = repo.create_tag("v1", "dev")
    assert tag.commit == commit.id and [t.name for t in repo.tags()] == ["v1"]
    _commit(dev, {"t.txt": b"u"})
    assert repo.ref("v1").read_bytes("t.txt") == b"t"
    with pytest.raises(Conflict):
        repo.create_tag("v1", "dev")
    repo.delete_tag("v1")
    assert repo.tags() == []
    with pytest.raises(NotFound):
        repo.delete_tag("v1")


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b", "a/./b", "nul\x00byte", ""])
def test_bad_paths_are_refused_and_nothing_is_staged(dev, path: str) -> None:
    with pytest.raises(InvalidInput) as info:
        dev.upload(path, b"x")
    assert info.value.field == "path"
    assert dev.uncommitted() == []


@pytest.mark.parametrize("name", ["ab", "UPPER", "-x", "with space", "a" * 64])
def test_bad_repository_names_say_the_rule(data, name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        data.repo(name)
    assert info.value.field == "repository" and "lowercase" in info.value.expected


def test_unknown_things_are_not_found_by_name(data, repo) -> None:
    with pytest.raises(NotFound, match="nope-repo"):
        data.repo("nope-repo").info()
    with pytest.raises(NotFound, match="nope"):
        repo.ref("nope").stat("a")
    with pytest.raises(NotFound, match=r"missing\.txt"):
        repo.branch("main").stat("missing.txt")


def test_delete_repository(backend, data, repo, dev) -> None:
    _commit(dev, {"a.txt": b"a"})
    if backend == "lakefs":  # the server's DELETE needs admin; this suite's key is an operator's
        with pytest.raises(PermissionDenied):
            repo.delete()
        return
    repo.delete()
    assert "contract-repo" not in [r.name for r in data.repositories()]
    with pytest.raises(NotFound):
        repo.info()


def test_ingest_goes_through_a_merge_into_protected_main_and_is_idempotent(data, tmp_path) -> None:
    source = tmp_path / "t.csv"
    source.write_bytes(b"a,b\n1,2\n")
    data.repo("ingest-repo").create(classification="internal", exist_ok=True)
    first = data.ingest("ingest-repo", source, "tables/t.csv")
    assert len(first.parents) >= 1 and data.repo("ingest-repo").ref("main").read_bytes("tables/t.csv") == source.read_bytes()
    assert data.ingest("ingest-repo", source, "tables/t.csv").id == first.id
    assert [b.name for b in data.repo("ingest-repo").branches()] == ["main"]
    with pytest.raises(InvalidInput):
        data.ingest("ingest-repo", source, "tables/t.json")


def test_revert_is_allowed_on_protected_main_as_in_lakefs(repo, dev) -> None:
    _commit(dev, {"loans.csv": b"v\ngood\n"})
    good = dev.merge_into("main")
    _commit(dev, {"loans.csv": b"v\nbad\n", "extra.csv": b"v\nx\n"})
    bad = dev.merge_into("main")
    main = repo.branch("main")
    with pytest.raises(Conflict, match="merge"):
        main.revert(bad.id)  # a merge commit: say which parent
    assert main.head() == bad
    with pytest.raises(InvalidInput):
        main.revert(bad.id, parent_number=3)
    reverted = main.revert(bad.id, parent_number=1, message="roll back", metadata={"ticket": "7"})
    assert main.head() == reverted and reverted.parents == (bad.id,)
    assert reverted.tree == good.tree and reverted.message == "roll back" and reverted.metadata == {"ticket": "7"}
    with pytest.raises(Conflict) as info:
        main.revert(bad.id, parent_number=1)  # nothing left to undo
    assert info.value.details.get("reason") == "no_changes"
    assert main.revert(bad.id, parent_number=1, allow_empty=True).tree == good.tree
    # direct changes stay refused, reset included
    with pytest.raises(PolicyViolation):
        main.reset()
    with pytest.raises(PolicyViolation):
        main.delete_object("loans.csv")


def test_revert_of_a_root_commit_empties_the_branch(repo, dev) -> None:
    first = _commit(dev, {"a.txt": b"a", "b/c.txt": b"c"})
    dev.revert(first.id)
    assert list(dev.objects()) == []


def test_reset_of_one_path_or_prefix_and_missing_deletes(repo, dev) -> None:
    for path in ("a.txt", "d/1.txt", "d/2.txt"):
        dev.upload(path, b"x")
    assert dev.reset(path="a.txt") == 1
    assert dev.reset(prefix="d/") == 2 and dev.uncommitted() == []
    assert dev.delete_object("never.txt", missing_ok=True) is False
    with pytest.raises(NotFound):
        dev.delete_object("never.txt")


def test_three_dot_diff_is_what_a_merge_would_bring(repo, dev) -> None:
    _commit(dev, {"both.txt": b"base"})
    dev.merge_into("main")
    feature = repo.branch("feature")
    feature.create("main")
    _commit(feature, {"mine.txt": b"f", "both.txt": b"feature"})
    _commit(dev, {"theirs.txt": b"d", "both.txt": b"dev"})
    dev.merge_into("main")
    three = {(d.path, d.type) for d in repo.diff("main", "feature", three_dot=True)}
    assert three == {("both.txt", "conflict"), ("mine.txt", "added")}
    two = {(d.path, d.type) for d in repo.diff("main", "feature")}
    assert two == {("both.txt", "changed"), ("mine.txt", "added"), ("theirs.txt", "removed")}


def test_a_merge_that_brings_nothing_can_be_refused(repo, dev) -> None:
    _commit(dev, {"a.txt": b"a"})
    first = dev.merge_into("main")
    with pytest.raises(Conflict) as info:
        dev.merge_into("main", if_nothing="fail")
    assert info.value.details.get("reason") == "no_changes"
    assert dev.merge_into("main") == first
    empty = dev.merge_into("main", if_nothing="commit")
    assert empty.parents[0] == first.id and empty.tree == first.tree


# --- beyond lakeFS's words: what the lakefs backend answers with lakeFS calls alone ---------------


def test_a_reference_opens_objects_names_its_commit_and_logs(repo, dev) -> None:
    first = _commit(dev, {"a.bin": b"\x00\x01" * 100_000})
    second = _commit(dev, {"b.txt": b"b"})
    assert dev.commit_record() == second and repo.ref(first.id).commit_record() == first
    assert repo.ref("dev").commit_record() == repo.commit("dev")
    assert [c.id for c in repo.ref("dev").log()] == [second.id, first.id]
    assert [c.id for c in dev.log(amount=1, after=second.id)] == [first.id]
    with pytest.raises(InvalidInput):
        dev.log(amount=0)
    with repo.ref(first.id).open("a.bin") as stream:
        assert stream.read() == b"\x00\x01" * 100_000
    dev.upload("staged.txt", b"only on the branch")
    with dev.open("staged.txt") as stream:
        assert stream.read() == b"only on the branch"
    with pytest.raises(NotFound):
        repo.ref(second.id).open("staged.txt")
    with pytest.raises(InvalidInput):
        dev.open("../a.bin")
    with pytest.raises(NotFound):
        repo.branch("main").commit_record()  # no commits yet


def test_a_folder_is_imported_and_a_failed_import_stages_nothing(repo, dev, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    (folder / "2024").mkdir(parents=True)
    (folder / "a.csv").write_bytes(b"id\n1\n")
    (folder / "2024" / "b.csv").write_bytes(b"id\n2\n")
    seen: list[tuple[int, int]] = []
    assert dev.import_directory(folder, prefix="raw/", progress=lambda f, b: seen.append((f, b))) == 2
    assert [d.path for d in dev.uncommitted()] == ["raw/2024/b.csv", "raw/a.csv"] and max(seen) == (2, 10)
    assert dev.read_bytes("raw/2024/b.csv") == b"id\n2\n"
    dev.commit("import")
    assert dev.import_directory(folder / "2024", prefix="raw/2024") == 1 and dev.uncommitted() == []

    dev.upload("late/e.txt", b"staged before the import")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.txt", "b.txt", "e.txt"):
        (broken / name).write_bytes(name.encode())
    (broken / "c-gone.txt").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        dev.import_directory(broken, prefix="late", workers=1)
    assert [d.path for d in dev.uncommitted()] == ["late/e.txt"]
    assert dev.read_bytes("late/e.txt") == b"staged before the import"

    with pytest.raises(PolicyViolation, match="protected"):
        repo.branch("main").import_directory(folder)
    with pytest.raises(NotFound):
        repo.branch("nowhere").import_directory(folder)
    with pytest.raises(InvalidInput) as bad:
        dev.import_directory(folder, prefix="../up")
    assert bad.value.field == "path"
    with pytest.raises(InvalidInput) as bad:
        dev.import_directory(tmp_path / "nothing-here")
    assert bad.value.field == "folder"
    assert repo.branch("main").uncommitted() == [] and [d.path for d in dev.uncommitted()] == ["late/e.txt"]


LOANS = b"id,amount\n1,10.5\n2,20.0\n3,30.25\n"
MORE = b"id,amount\n4,40.0\n"


def test_sql_over_tables_at_refs(repo, dev) -> None:
    v1 = _commit(dev, {"loans/a.csv": LOANS})
    repo.create_tag("v1", "dev")
    v2 = _commit(dev, {"loans/b.csv": MORE})
    result = repo.query("select count(*) as n, sum(amount) as total, max(id) as top from loans",
                        loans=("dev", "loans/*.csv"))
    assert result.table.to_pylist() == [{"n": 4, "total": 100.75, "top": 4}] and result.commits == {"loans": v2.id}
    joined = repo.query("select now.id from now left join was using (id) where was.id is null order by now.id",
                        now=("dev", "loans/*.csv"), was=("v1", "loans/a.csv"))
    assert joined.table.column("id").to_pylist() == [4] and joined.commits == {"now": v2.id, "was": v1.id}
    with pytest.raises(NotFound):
        repo.query("select * from t", t=("dev", "loans/missing-*.csv"))
    for sql, tables, field in (("select 1", {}, "tables"),
                               ("select 1", {"t": ("dev",)}, "tables.t"),
                               ("select nope from t", {"t": ("dev", "loans/a.csv")}, "sql"),
                               ("select * from t", {"t": ("dev", "../a.csv")}, "path")):
        with pytest.raises(InvalidInput) as bad:
            repo.query(sql, **tables)
        assert bad.value.field == field


def test_a_repositorys_rules_are_read_back_and_set_where_the_backend_keeps_them(backend, data, repo) -> None:
    from mlops_lite.privacy.profile import DEFAULT_PII_PATTERNS, PrivacyProfile

    # The embedded store keeps the classification given; the lakeFS API cannot carry one, so
    # the server behind it made the repository personal (its default) and reports its patterns.
    expected = (RepositoryConfig(protected_branches=("main",), privacy=PrivacyProfile("internal"))
                if backend == "embedded" else
                RepositoryConfig(protected_branches=("main",), pii_patterns=DEFAULT_PII_PATTERNS))
    assert repo.config() == expected == data.repo("contract-repo").config()
    with pytest.raises(NotFound):
        data.repo("nope-repo").config()
    rules = RepositoryConfig(protected_branches=("main",), pii_patterns=("ssn",), privacy=PrivacyProfile("internal"))
    with pytest.raises(InvalidInput):
        data.repo("never-made").create(classification="internal", config=RepositoryConfig(pii_patterns=("(",)))
    assert data.repo("contract-repo").create(exist_ok=True, config=rules).name == "contract-repo"
    if backend == "embedded":
        assert repo.configure(pii_patterns=["ssn"]) == rules == repo.config()
        assert data.repo("ruled").create(classification="internal", config=rules).name == "ruled" and data.pii_patterns("ruled") == ("ssn",)
        return
    # A plain lakeFS server keeps its rules itself (branch protection, repository metadata).
    with pytest.raises(BackendUnavailable, match="branch protection"):
        repo.configure(pii_patterns=["ssn"])
    with pytest.raises(BackendUnavailable, match="branch protection"):
        data.repo("ruled").create(classification="internal", config=rules)
    assert [r.name for r in data.repositories()] == ["contract-repo"] and repo.config().pii_patterns \
        == DEFAULT_PII_PATTERNS
