"""The data facet's contract beyond lakeFS's words, asked of a local Platform and a
RemotePlatform alike (fixture ``api`` in conftest.py): a repository's rules configured and
read back and enforced, SQL over tables at refs, gc and fsck, a folder imported, an
object opened, and bad input refused with its field named and nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from mlops_lite import Conflict, InvalidInput, NotFound, PermissionDenied, PolicyViolation
from mlops_lite.data import ColumnRule, FsckReport, GcReport, QueryResult, RepositoryConfig, SchemaRule
from mlops_lite.privacy.profile import PrivacyProfile
from mlops_lite.records import CommitRecord

REPO = "rules"
LOANS = b"id,amount\n1,10.5\n2,20.0\n3,30.25\n"
MORE = b"id,amount\n4,40.0\n"


@pytest.fixture
def repo(api: Any) -> Any:
    repo = api.data.repo(REPO)
    repo.create(classification="internal")
    return repo


@pytest.fixture
def dev(repo: Any) -> Any:
    branch = repo.branch("dev")
    branch.create("main")
    return branch


def _field(exc: pytest.ExceptionInfo[InvalidInput]) -> Any:
    return exc.value.details.get("field")


def test_rules_are_configured_read_back_and_enforced(api: Any, repo: Any, dev: Any) -> None:
    internal = PrivacyProfile("internal")
    assert repo.config() == RepositoryConfig(protected_branches=("main",), privacy=internal)
    schema = SchemaRule(paths="loans/*.csv", columns=(ColumnRule("id", "int", nullable=False),
                                                      ColumnRule("amount", "float")))
    config = repo.configure(schemas=[schema], pii_patterns=["ssn", "e.?mail"], max_object_bytes=64)
    assert type(config) is RepositoryConfig
    assert config == RepositoryConfig(protected_branches=("main",), schemas=(schema,),
                                      pii_patterns=("ssn", "e.?mail"), max_object_bytes=64, privacy=internal)
    assert repo.config() == config
    assert api.data.pii_patterns(REPO) == ("ssn", "e.?mail")

    # What is not named stays; the rules are the ones every commit meets, either way.
    assert repo.configure(protected_branches=["main", "release"]).schemas == (schema,)
    assert repo.info().protected_branches == ("main", "release")
    dev.upload("loans/a.csv", b"id,other\n1,x\n")
    with pytest.raises(PolicyViolation, match="pinned schema"):
        dev.commit("wrong columns")
    dev.reset()
    dev.upload("big.bin", b"x" * 65)
    with pytest.raises(PolicyViolation, match="over the limit of 64"):
        dev.commit("too big")
    dev.reset()
    dev.upload("loans/a.csv", LOANS)
    assert dev.commit("loans").message == "loans"

    repo.configure(protected_branches=[])
    api.data.repo(REPO).branch("main").upload("notes.txt", b"main is open now")
    assert [d.path for d in repo.branch("main").uncommitted()] == ["notes.txt"]


def test_a_repository_is_created_with_its_rules(api: Any) -> None:
    rules = RepositoryConfig(protected_branches=(), pii_patterns=("email",), privacy=PrivacyProfile("internal"))
    record = api.data.repo("open-repo").create(classification="internal", config=rules)
    assert record.protected_branches == ()
    assert api.data.repo("open-repo").config() == rules
    # exist_ok answers the repository as it is; the rules given are not applied to it.
    again = api.data.repo("open-repo").create(exist_ok=True, config=RepositoryConfig(pii_patterns=("ssn",)))
    assert again.name == "open-repo" and api.data.repo("open-repo").config() == rules
    with pytest.raises(InvalidInput) as bad:
        api.data.repo("never-made").create(classification="internal", config=RepositoryConfig(pii_patterns=("(",)))
    assert _field(bad) == "pii_patterns"
    assert "never-made" not in [r.name for r in api.data.repositories()]


def test_sql_over_tables_at_refs(repo: Any, dev: Any) -> None:
    dev.upload("loans/a.csv", LOANS)
    first = dev.commit("a")
    dev.upload("loans/b.csv", MORE)
    second = dev.commit("b")
    repo.create_tag("v1", first.id)

    result = repo.query("select count(*) as n, sum(amount) as total, max(id) as top from loans",
                        loans=("dev", "loans/*.csv"))
    assert type(result) is QueryResult
    assert result.commits == {"loans": second.id}
    assert result.table.to_pylist() == [{"n": 4, "total": 100.75, "top": 4}]
    assert result.table.schema == pa.schema([("n", pa.int64()), ("total", pa.float64()), ("top", pa.int64())])

    # Two tables, each read at its own ref and cited with its own commit.
    joined = repo.query("select now.id from now left join was using (id) where was.id is null order by now.id",
                        now=("dev", "loans/*.csv"), was=("v1", "loans/a.csv"))
    assert joined.commits == {"now": second.id, "was": first.id}
    assert joined.table.column("id").to_pylist() == [4]
    empty = repo.query("select * from was where amount > 1000", was=("v1", "loans/a.csv"))
    assert empty.table.num_rows == 0 and empty.table.column_names == ["id", "amount"]


def test_gc_dry_run_apply_and_fsck(api: Any, dev: Any) -> None:
    dev.upload("loans/a.csv", LOANS)
    dev.commit("a")
    dev.upload("scratch.bin", b"never committed")
    dev.reset()

    clean = api.data.fsck()
    assert type(clean) is FsckReport and clean.clean
    assert clean.commits_checked == 1 and clean.bad_objects == [] and clean.missing == []
    young = api.data.gc()
    assert type(young) is GcReport and young.dry_run
    assert (young.unreachable, young.removed, young.kept_young) == (0, 0, 1)
    dry = api.data.gc(grace_seconds=0)
    assert (dry.dry_run, dry.unreachable, dry.bytes_unreachable, dry.removed) == (True, 1, 15, 0)
    applied = api.data.gc(grace_seconds=0, dry_run=False)
    assert (applied.dry_run, applied.unreachable, applied.removed) == (False, 1, 1)
    assert applied.objects_total == dry.objects_total == clean.objects_checked
    after = api.data.fsck()
    assert after.clean and after.objects_checked == clean.objects_checked - 1
    assert dev.read_bytes("loans/a.csv") == LOANS

    with pytest.raises(InvalidInput) as bad:
        api.data.gc(retention_days=-1, dry_run=False, grace_seconds=0)
    assert _field(bad) == "retention_days"


def test_a_folder_is_imported_and_objects_opened(repo: Any, dev: Any, tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    (folder / "2024").mkdir(parents=True)
    (folder / "a.csv").write_bytes(LOANS)
    (folder / "2024" / "b.csv").write_bytes(MORE)
    (folder / "2024" / "c.bin").write_bytes(b"\x00\x01" * 1000)
    seen: list[tuple[int, int]] = []

    count = dev.import_directory(folder, prefix="raw/", workers=2, progress=lambda f, b: seen.append((f, b)))
    assert count == 3
    assert [d.path for d in dev.uncommitted()] == ["raw/2024/b.csv", "raw/2024/c.bin", "raw/a.csv"]
    assert max(seen) == (3, len(LOANS) + len(MORE) + 2000)
    made = dev.commit("import")

    assert type(dev.commit_record()) is CommitRecord and dev.commit_record() == made
    assert [c.id for c in repo.ref("dev").log(amount=1)] == [made.id]
    with repo.ref(made.id).open("raw/2024/c.bin") as stream:
        assert stream.read() == b"\x00\x01" * 1000
    with pytest.raises(NotFound):
        repo.ref("dev").open("raw/missing.csv")
    assert dev.import_directory(tmp_path / "drop" / "2024", prefix="raw/2024") == 2
    assert dev.uncommitted() == []  # the same bytes at the same paths change nothing


def test_an_import_that_fails_midway_stages_nothing(dev: Any, tmp_path: Path) -> None:
    dev.upload("drop/e.txt", b"staged before the import")
    folder = tmp_path / "drop"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "e.txt", "f.txt"):
        (folder / name).write_bytes(name.encode())
    (folder / "c-gone.txt").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        dev.import_directory(folder, prefix="drop", workers=1)
    assert [d.path for d in dev.uncommitted()] == ["drop/e.txt"]
    assert dev.read_bytes("drop/e.txt") == b"staged before the import"


def test_bad_input_names_the_field_and_changes_nothing(api: Any, repo: Any, dev: Any, tmp_path: Path) -> None:
    before = repo.config()
    for kwargs, field in (({"pii_patterns": ["("]}, "pii_patterns"),
                          ({"max_object_bytes": 0}, "max_object_bytes"),
                          ({"schemas": [SchemaRule("*.csv", (ColumnRule("id", "integer"),))]}, "schemas.id.type")):
        with pytest.raises(InvalidInput) as bad:
            repo.configure(**kwargs)
        assert _field(bad) == field
    assert repo.config() == before
    with pytest.raises(NotFound):
        api.data.repo("no-such-repo").configure(pii_patterns=["ssn"])
    with pytest.raises(InvalidInput) as bad:
        api.data.repo("Bad_Name").config()
    assert _field(bad) == "repository"

    dev.upload("loans/a.csv", LOANS)
    dev.commit("a")
    for sql, tables, field in (("select 1", {}, "tables"),
                               ("select 1", {"1bad": ("dev", "loans/a.csv")}, "tables"),
                               ("select 1", {"t": ("dev",)}, "tables.t"),
                               ("select nope from t", {"t": ("dev", "loans/a.csv")}, "sql"),
                               ("select * from t", {"t": ("dev", "../a.csv")}, "path")):
        with pytest.raises(InvalidInput) as bad:
            repo.query(sql, **tables)
        assert _field(bad) == field
    with pytest.raises(NotFound):
        repo.query("select * from t", t=("dev", "loans/missing-*.csv"))

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_bytes(LOANS)
    with pytest.raises(InvalidInput) as bad:
        dev.import_directory(tmp_path / "nothing-here")
    assert _field(bad) == "folder"
    with pytest.raises(InvalidInput) as bad:
        dev.import_directory(drop, prefix="../up")
    assert _field(bad) == "path"
    with pytest.raises(PolicyViolation):
        repo.branch("main").import_directory(drop)
    with pytest.raises(NotFound):
        repo.branch("nowhere").import_directory(drop)
    assert dev.uncommitted() == [] and repo.branch("main").uncommitted() == []
    with pytest.raises(Conflict):
        repo.create(classification="internal")


def test_the_server_confines_sql_to_its_tables(api: Any, api_kind: str, repo: Any, dev: Any) -> None:
    """Over HTTP the caller's SQL reaches its tables and nothing else on the server: no file,
    no setting, no extension (in-process it is the user's own DuckDB); and an unreadable
    table is the caller's bad input (in-process DuckDB's own error is raised)."""
    if api_kind == "local":
        pytest.skip("in-process the SQL runs as the user who holds the home")
    dev.upload("loans/a.csv", LOANS)
    dev.commit("a")
    table = {"t": ("dev", "loans/a.csv")}
    for sql in ("select * from read_text('/etc/hostname')",
                "copy t to '/tmp/mlops-lite-copied.csv'",
                "set enable_external_access = true",
                "install httpfs"):
        with pytest.raises(InvalidInput) as bad:
            repo.query(sql, **table)
        assert _field(bad) == "sql"
    assert not Path("/tmp/mlops-lite-copied.csv").exists()

    # Objects that are not the table their name says are bad input too, never a server error.
    dev.upload("junk/x.csv", b"\x00\xff\xfe" * 100 + b"\na,b\n1\n")
    dev.upload("junk/y.parquet", b"not parquet")
    dev.commit("junk")
    for path in ("junk/x.csv", "junk/y.parquet"):
        with pytest.raises(InvalidInput) as bad:
            repo.query("select * from t", t=("dev", path))
        assert _field(bad) == "tables.t" and "/objects/" not in str(bad.value)


def test_gc_and_fsck_need_an_admin(api: Any, api_kind: str, repo: Any) -> None:
    if api_kind == "local":
        pytest.skip("roles are the server's: in-process the platform acts as its own actor")
    from mlops_lite.client import RemotePlatform

    _, secret = api.tokens.create("reader", "operator")
    with RemotePlatform(api.url, secret) as operator:
        assert operator.data.repo(REPO).config() == repo.config()
        with pytest.raises(PermissionDenied):
            operator.data.gc()
        with pytest.raises(PermissionDenied):
            operator.data.fsck()
