"""`mlops-lite data ...` and `mlops-lite access-key ...`: the real script as subprocesses,
each run against its own temporary home; results checked against the stores afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pytest

from mlops_lite.config import load_settings
from mlops_lite.data import RepositoryConfig
from mlops_lite.platform import Platform, open_local

SCRIPT = Path(sys.executable).with_name("mlops-lite")
DATA = Path(__file__).resolve().parents[2] / "data"
HOLDOUT = DATA / "loans_holdout.csv"

DATA_COMMANDS = (
    "data", "data repo", "data repo create", "data repo list", "data repo delete", "data repo config",
    "data repo rotate-key",
    "data branch", "data branch create", "data branch list", "data branch delete", "data branch reset",
    "data put", "data get", "data ls", "data commit", "data log", "data diff", "data merge", "data revert",
    "data tag", "data tag create", "data tag list", "data tag delete", "data query", "data gc", "data fsck",
    "access-key", "access-key create",
)


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MLOPS_LITE_HOME": str(home)}
    for key in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN", "MLOPS_LITE_CONFIG"):
        env.pop(key, None)
    return env


def cli(home: Path, *args: str, stdin: bytes | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(SCRIPT), *args], env=_env(home), capture_output=True, text=True,
                            timeout=timeout, input=None if stdin is None else stdin.decode(),
                            stdin=subprocess.DEVNULL if stdin is None else None, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def cli_bytes(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """For `data get` to stdout: the bytes exactly as written."""
    return subprocess.run([str(SCRIPT), *args], env=_env(home), capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def ok(home: Path, *args: str, **kwargs: Any) -> str:
    result = cli(home, *args, **kwargs)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def fails(home: Path, *args: str, **kwargs: Any) -> str:
    """Run a command that must fail as the tree's errors do: exit 1, one `error: ...` line."""
    result = cli(home, *args, **kwargs)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@contextmanager
def stores(home: Path) -> Iterator[Platform]:
    """The home's stores, opened in this process once the subprocesses have ended."""
    platform = open_local(load_settings(home=home))
    try:
        yield platform
    finally:
        platform.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ help


def test_help_on_every_data_subcommand(home: Path) -> None:
    def run(command: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        return command, cli(home, *command.split(), "--help")

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(run, DATA_COMMANDS))
    for command, result in results:
        assert result.returncode == 0, (command, result.stderr)
        assert f"Usage: mlops-lite {command}" in result.stdout, command
        assert "--help" in result.stdout
    listed = dict(results)["data"].stdout
    for command in DATA_COMMANDS:
        if command.startswith("data ") and command.count(" ") == 1:
            assert f"  {command.split()[1]} " in listed, command
    assert not home.exists()  # help runs nothing


# ------------------------------------------------------------------------------------ the whole round


def test_data_round_trip(home: Path, tmp_path: Path) -> None:
    holdout = HOLDOUT.read_bytes()
    rows = pacsv.read_csv(HOLDOUT).num_rows
    batch = tmp_path / "batch"
    (batch / "sub").mkdir(parents=True)
    small = {"a.txt": b"alpha\n", "b.bin": bytes(range(256)) * 3, "sub/c.txt": b"gamma\n"}
    for name, body in small.items():
        (batch / name).write_bytes(body)

    assert "created repository loans" in ok(home, "data", "repo", "create", "loans", "--classification", "internal")
    assert "created branch dev" in ok(home, "data", "branch", "create", "loans", "dev", "--from", "main")

    # A protected branch takes changes only by merge.
    line = fails(home, "data", "put", "loans", "main", str(HOLDOUT), "loans/holdout.csv")
    assert "protected" in line and "main" in line

    ok(home, "data", "put", "loans", "dev", str(HOLDOUT), "loans/holdout.csv")
    out = ok(home, "data", "put", "loans", "dev", str(batch))
    assert "staged 3 object(s) under batch/" in out

    # A bad destination path is refused before anything is stored or staged.
    line = fails(home, "data", "put", "loans", "dev", str(HOLDOUT), "../x")
    assert "'../x'" in line

    listing = json.loads(ok(home, "data", "ls", "loans", "dev", "--json"))
    assert listing["prefixes"] == ["batch/", "loans/"]
    assert listing["objects"] == []
    listing = json.loads(ok(home, "data", "ls", "loans", "dev", "--recursive", "--json"))
    objects = {o["path"]: o for o in listing["objects"]}
    assert set(objects) == {"loans/holdout.csv", *(f"batch/{n}" for n in small)}
    assert all(o["staged"] for o in objects.values())
    assert objects["loans/holdout.csv"]["digest"] == sha256(holdout)
    assert objects["batch/b.bin"]["size"] == 768
    text = ok(home, "data", "ls", "loans", "dev", "batch")  # a folder's contents, as ls does
    assert "batch/a.txt" in text and "batch/sub/" in text and "*" in text
    assert "loans/holdout.csv" not in text

    uncommitted = json.loads(ok(home, "data", "diff", "loans", "dev", "--json"))
    assert sorted(e["path"] for e in uncommitted) == sorted(objects)
    assert {e["type"] for e in uncommitted} == {"added"}

    out = ok(home, "data", "commit", "loans", "dev", "-m", "holdout and a batch", "--meta", "source=cli")
    assert "committed" in out
    log = json.loads(ok(home, "data", "log", "loans", "dev", "--json"))
    assert [c["message"] for c in log] == ["holdout and a batch"]
    assert log[0]["metadata"] == {"source": "cli"}
    first = log[0]["id"]
    diff = json.loads(ok(home, "data", "diff", "loans", "main", "dev", "--json"))
    assert sorted(d["path"] for d in diff) == sorted(objects)

    assert "main is at" in ok(home, "data", "merge", "loans", "dev", "main", "-m", "bring in the holdout")

    got = cli_bytes(home, "data", "get", "loans", "main", "loans/holdout.csv")
    assert got.returncode == 0, got.stderr
    assert got.stdout == holdout
    got = cli_bytes(home, "data", "get", "loans", "main", "batch/b.bin", "--range", "10-300")
    assert got.stdout == small["b.bin"][10:301]

    assert "tagged" in ok(home, "data", "tag", "create", "loans", "v1", "main")
    tags = json.loads(ok(home, "data", "tag", "list", "loans", "--json"))
    assert [(t["name"], t["repository"]) for t in tags] == [("v1", "loans")]

    out = ok(home, "data", "query", "loans", "select count(*) as n from t", "--table", "t=v1:loans/holdout.csv")
    assert out.split()[:2] == ["n", str(rows)]
    assert f"t read at v1@{tags[0]['commit'][:12]}" in out
    csv_out = ok(home, "data", "query", "loans", "select gender, count(*) as n from t group by gender "
                 "order by gender", "--table", "t=main:loans/*.csv", "--csv")
    parsed = [line.split(",") for line in csv_out.strip().splitlines()]
    assert sum(int(n) for _, n in parsed[1:]) == rows

    # Edit a file on dev (put --commit), then revert that commit by its short id.
    out = ok(home, "data", "put", "loans", "dev", "-", "batch/a.txt", "--commit", "edit a", stdin=b"edited\n")
    edit = out.split("committed ")[1].split()[0]
    assert "Revert" in ok(home, "data", "revert", "loans", "dev", edit)

    # Something unreachable for gc: staged on a scratch branch, then dropped.
    ok(home, "data", "branch", "create", "loans", "scratch")
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"nobody keeps this\n")
    ok(home, "data", "put", "loans", "scratch", str(junk))
    assert "dropped 1" in ok(home, "data", "branch", "reset", "loans", "scratch")

    dry = json.loads(ok(home, "data", "gc", "--grace-seconds", "0", "--json"))
    assert dry["dry_run"] is True and dry["unreachable"] >= 1 and dry["removed"] == 0
    with stores(home) as platform:  # where the object lies (a keyed name in an encrypted home)
        junk_file = platform.data.object_file(sha256(junk.read_bytes()))
    assert junk_file.exists()
    out = ok(home, "data", "gc", "--apply", "--grace-seconds", "0")
    assert f"{dry['unreachable']} removed" in out
    assert not junk_file.exists()
    assert "clean" in ok(home, "data", "fsck")

    with stores(home) as platform:
        repo = platform.data.repo("loans")
        main = repo.ref("main")
        assert main.read_bytes("loans/holdout.csv") == holdout
        assert {o.path for o in main.objects()} == set(objects)
        assert [c.message for c in repo.log("main")] == ["bring in the holdout", "holdout and a batch"]
        dev_log = repo.log("dev")
        assert [c.message for c in dev_log][1:] == ["edit a", "holdout and a batch"]
        assert dev_log[0].metadata == {"reverts": dev_log[1].id} and dev_log[1].id.startswith(edit)
        assert repo.ref("dev").read_bytes("batch/a.txt") == small["a.txt"]  # the revert undid the edit
        assert repo.ref(f"{dev_log[1].id}").read_bytes("batch/a.txt") == b"edited\n"
        assert repo.ref(first).diff("dev") == []
        assert repo.branch("dev").uncommitted() == [] and repo.branch("scratch").uncommitted() == []
        assert [t.name for t in repo.tags()] == ["v1"]
        assert repo.query("select count(*) as n from t", t=("v1", "loans/holdout.csv")).table.to_pylist() == \
            [{"n": rows}]
        assert platform.data.fsck().clean
        events = platform.audit.events(limit=1000)
        assert {"data.commit", "data.merge", "data.revert", "data.branch.reset"} <= {e.action for e in events}
        assert all(e.actor.startswith("local:") for e in events if e.action.startswith("data."))


# ------------------------------------------------------------------------------------ merges


def test_merge_conflict_names_the_path_and_a_strategy_resolves_it(home: Path) -> None:
    with stores(home) as platform:
        repo = platform.data.repo("loans")
        repo.create(classification="internal")
        seed = repo.branch("seed")
        seed.create()
        seed.upload("t/x.csv", b"a,b\n1,2\n")
        seed.upload("t/y.csv", b"a,b\n0,0\n")
        seed.commit("seed")
        seed.merge_into("main")
        for name, body in (("left", b"a,b\n1,3\n"), ("right", b"a,b\n1,4\n")):
            branch = repo.branch(name)
            branch.create("main")
            branch.upload("t/x.csv", body)
            branch.commit(f"{name} edits x")
        repo.branch("left").merge_into("main")
        head = repo.ref("main").resolve()

    line = fails(home, "data", "merge", "loans", "right", "main")
    assert "t/x.csv" in line and "conflict" in line
    assert "unknown merge strategy" in fails(home, "data", "merge", "loans", "right", "main", "--strategy", "bogus")
    assert "--rule" in fails(home, "data", "merge", "loans", "right", "main", "--rule", "no-equals-sign")
    # A rule that matches nothing leaves the default, fail.
    assert "t/x.csv" in fails(home, "data", "merge", "loans", "right", "main", "--rule", "other/*=source-wins")
    with stores(home) as platform:
        assert platform.data.repo("loans").ref("main").resolve() == head  # nothing moved

    ok(home, "data", "merge", "loans", "right", "main", "--strategy", "source-wins", "-m", "right wins")
    with stores(home) as platform:
        main = platform.data.repo("loans").ref("main")
        assert main.read_bytes("t/x.csv") == b"a,b\n1,4\n"
        assert main.read_bytes("t/y.csv") == b"a,b\n0,0\n"
        record = main.commit_record()
        assert record.message == "right wins" and len(record.parents) == 2


# ------------------------------------------------------------------------------------ bad input


def test_bad_input_is_one_error_line_and_changes_nothing(home: Path, tmp_path: Path) -> None:
    ok(home, "data", "repo", "create", "loans", "--classification", "internal")
    with stores(home) as platform:
        platform.data.repo("loans").branch("dev").create()
        audit_before = platform.audit.count()

    file = tmp_path / "f.txt"
    file.write_bytes(b"x")
    assert "repository name" in fails(home, "data", "repo", "create", "Bad_Name", "--classification", "internal")
    assert "'nope' does not exist" in fails(home, "data", "ls", "nope", "main")
    assert "'ghost' is not a branch, tag or commit" in fails(home, "data", "get", "loans", "ghost", "f.txt")
    assert "'a/../b'" in fails(home, "data", "put", "loans", "dev", str(file), "a/../b")
    assert "--meta" in fails(home, "data", "commit", "loans", "dev", "-m", "m", "--meta", "novalue")
    assert "no such file" in fails(home, "data", "put", "loans", "dev", str(tmp_path / "missing.csv"))
    assert "--range" in fails(home, "data", "get", "loans", "main", "f.txt", "--range", "ten")
    assert "--table" in fails(home, "data", "query", "loans", "select 1", "--table", "t=main")
    assert "--yes" in fails(home, "data", "repo", "delete", "loans")
    # CLI syntax is typer's usage error: exit 2.
    assert cli(home, "data", "commit", "loans", "dev").returncode == 2

    with stores(home) as platform:
        repo = platform.data.repo("loans")
        assert repo.branch("dev").uncommitted() == []
        assert [r.name for r in platform.data.repositories()] == ["loans"]
        assert platform.audit.count() == audit_before

    assert "deleted repository loans" in ok(home, "data", "repo", "delete", "loans", "--yes")
    assert json.loads(ok(home, "data", "repo", "list", "--json")) == []


def test_a_running_daemon_is_named_in_one_line(home: Path) -> None:
    home.mkdir(parents=True)
    # This test's own process stands in for a live daemon.
    (home / "daemon.json").write_text(json.dumps({"pid": os.getpid(), "url": "http://127.0.0.1:9",
                                                  "prefect_url": None, "started_at": "now"}))
    line = fails(home, "data", "repo", "list")
    assert str(os.getpid()) in line and "http://127.0.0.1:9" in line


# ------------------------------------------------------------------------------------ rules


def test_repo_config_pins_a_schema_that_commits_must_pass(home: Path, tmp_path: Path) -> None:
    ok(home, "data", "repo", "create", "loans", "--classification", "internal")
    ok(home, "data", "branch", "create", "loans", "dev")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps([{"name": "n", "type": "int", "nullable": False},
                                  {"name": "s", "type": "string", "nullable": True}]))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "n", "kind": "int"}]))

    assert "bad schema" in fails(home, "data", "repo", "config", "loans", "--schema", f"t/*.csv={bad}")
    assert "PII pattern" in fails(home, "data", "repo", "config", "loans", "--pii-pattern", "(")
    out = ok(home, "data", "repo", "config", "loans", "--schema", f"t/*.csv={schema}", "--pii-pattern", "email",
             "--max-object-bytes", "1000", "--protect", "main", "--protect", "release")
    assert "t/*.csv -> n:int!, s:string" in out
    shown = json.loads(ok(home, "data", "repo", "config", "loans", "--json"))
    assert shown["protected_branches"] == ["main", "release"]
    assert shown["max_object_bytes"] == 1000

    # Nulls in a column pinned not nullable: staged, and the commit is refused naming the column.
    ok(home, "data", "put", "loans", "dev", "-", "t/a.csv", stdin=b"n,s\n1,a\n,b\n")
    line = fails(home, "data", "commit", "loans", "dev", "-m", "nulls")
    assert "'n'" in line and "nullable" in line
    ok(home, "data", "branch", "reset", "loans", "dev")
    ok(home, "data", "put", "loans", "dev", "-", "t/a.csv", "--commit", "clean", stdin=b"n,s\n1,a\n2,b\n")

    with stores(home) as platform:
        repo = platform.data.repo("loans")
        config = repo.config()
        assert config == RepositoryConfig(protected_branches=("main", "release"), schemas=config.schemas,
                                          pii_patterns=("email",), max_object_bytes=1000, privacy=config.privacy)
        assert config.classification == "internal"
        assert [(c.name, c.type, c.nullable) for c in config.schemas[0].columns] == \
            [("n", "int", False), ("s", "string", True)]
        assert [c.message for c in repo.log("dev")] == ["clean"]
        assert repo.ref("dev").read_bytes("t/a.csv") == b"n,s\n1,a\n2,b\n"


# ------------------------------------------------------------------------------------ big files, fsck


def test_a_big_file_streams_with_progress_and_fsck_finds_a_bad_object(home: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 << 20))
    with stores(home) as platform:
        platform.data.repo("blobs").create(classification="internal", config=RepositoryConfig(protected_branches=()))

    result = cli(home, "data", "put", "blobs", "main", str(big), "blobs/", "--commit", "big one")
    assert result.returncode == 0, result.stderr
    assert "staged blobs/big.bin" in result.stdout
    assert "big.bin" in result.stderr and "MB" in result.stderr  # the progress bar, on stderr
    out = tmp_path / "back.bin"
    ok(home, "data", "get", "blobs", "main", "blobs/big.bin", "-o", str(out))
    assert out.read_bytes() == big.read_bytes()
    assert not list(tmp_path.glob(".back.bin.part"))

    # Flip a byte of the stored object: fsck names it and exits 1.
    digest = sha256(big.read_bytes())
    with stores(home) as platform:
        stored = platform.data.object_file(digest)
    stored.chmod(0o644)
    with open(stored, "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = cli(home, "data", "fsck")
    assert result.returncode == 1
    assert "NOT clean" in result.stdout and f"bad object {digest}" in result.stdout
    report = json.loads(cli(home, "data", "fsck", "--json").stdout)
    assert report["clean"] is False and report["bad_objects"] == [digest]


# ------------------------------------------------------------------------------------ access keys


def test_access_key_create_prints_the_key_once_and_it_authenticates(home: Path) -> None:
    out = ok(home, "access-key", "create", "--name", "ci", "--role", "operator")
    lines = {line.split()[0] + " " + line.split()[1]: line.split()[-1] for line in out.splitlines()
             if line.startswith("  ")}
    key_id, secret = lines["access key"], lines["secret access"]
    assert key_id.startswith("AKIAMLL")
    assert "/api/v1" in out

    assert "unknown role" in fails(home, "access-key", "create", "--name", "x", "--role", "wizard")
    assert cli(home, "access-key", "create", "--role", "viewer").returncode == 2  # --name is required

    as_json = json.loads(ok(home, "access-key", "create", "--name", "bot", "--role", "viewer", "--json"))
    with stores(home) as platform:
        identity = platform.tokens.authenticate_access_key(key_id, secret)
        assert (identity.name, identity.role) == ("ci", "operator")
        other = platform.tokens.authenticate_access_key(as_json["access_key_id"], as_json["secret_access_key"])
        assert (other.name, other.role) == ("bot", "viewer")
        assert platform.tokens.count() == 2  # the refused one made nothing
        with pytest.raises(Exception, match="not valid"):
            platform.tokens.authenticate_access_key(key_id, secret + "x")


def test_revert_of_a_bad_merge_on_protected_main_names_its_parent(tmp_path: Path) -> None:
    """As in lakeFS: main is protected, yet a bad merge into it is reverted there; a merge
    commit needs the parent to revert to (`--parent 1`, lakeFS's parent_number)."""
    home = tmp_path / "home"
    ok(home, "init")
    ok(home, "data", "repo", "create", "rev", "--classification", "internal")
    ok(home, "data", "branch", "create", "rev", "dev")
    ok(home, "data", "put", "rev", "dev", "-", "loans.csv", "--commit", "good", stdin=b"id,amount\n1,100\n")
    ok(home, "data", "merge", "rev", "dev", "main", "-m", "good data")
    ok(home, "data", "put", "rev", "dev", "-", "loans.csv", "--commit", "bad", stdin=b"id,amount\n1,-999\n")
    ok(home, "data", "merge", "rev", "dev", "main", "-m", "bad data")
    bad_merge = json.loads(ok(home, "data", "log", "rev", "main", "--json"))[0]["id"]

    assert "parent" in fails(home, "data", "revert", "rev", "main", bad_merge)
    assert "committed" in ok(home, "data", "revert", "rev", "main", bad_merge, "--parent", "1")
    assert cli_bytes(home, "data", "get", "rev", "main", "loans.csv").stdout == b"id,amount\n1,100\n"
    assert "protected" in fails(home, "data", "put", "rev", "main", "-", "x.csv", stdin=b"a\n1\n")
