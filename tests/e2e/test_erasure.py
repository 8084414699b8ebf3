"""Erasure of a data subject (``privacy erase``): a repository with several commits holding
the subject's rows, a model trained on them and predictions about the subject; after the
erasure every byte of the home, decrypted through the platform, is searched for the
subject's identifiers (raw and pseudonymous): zero hits."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlops_lite

SUBJECT = "cust-0042-q"
COLUMNS = ("customer_id", "income", "debt", "region", "default")


def customers(first: int, last: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed * 1000 + first)
    rows = []
    for n in range(first, last):
        income = round(rng.uniform(20, 120), 1)
        debt = round(rng.uniform(0, 60), 1)
        rows.append({"customer_id": f"cust-{n:04d}-q", "income": income, "debt": debt,
                     "region": rng.choice(["north", "south", "east"]), "default": int(debt > income * 0.4)})
    return rows


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    lines = [",".join(COLUMNS)] + [",".join(str(r[c]) for c in COLUMNS) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


def make_repository(p: Any, name: str, *, time_column: str | None = None, retention_days: int | None = None) -> None:
    from mlops_lite.data import RepositoryConfig
    from mlops_lite.privacy.profile import PrivacyProfile

    profile = PrivacyProfile(classification="internal", subject_columns=("customer_id",),
                             retention_days=retention_days, time_column=time_column)
    p.data.repo(name).create(config=RepositoryConfig(protected_branches=(), privacy=profile))


def commit(p: Any, repo: str, branch: str, files: dict[str, bytes], message: str) -> str:
    ref = p.data.repo(repo).branch(branch)
    for path, content in files.items():
        ref.upload(path, content)
    return str(ref.commit(message, metadata={"source": "test"}).id)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A home with 'loans' (four commits on main, a branch and a tag holding the subject,
    raw and as a token), 'copy' (an object identical to one of loans': deduplicated), a
    model trained on main and deployed, and predictions and feedback about the subject."""
    from mlops_lite import TrainingSpec
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local

    settings = load_settings(home=tmp_path / "home")
    token = init_home(settings).token
    p = open_local(settings)
    try:
        make_repository(p, "loans")
        make_repository(p, "copy")
        first = csv_bytes(customers(0, 150))
        commits = [commit(p, "loans", "main", {"loans/train.csv": first}, "first 150")]
        p.data.repo("loans").create_tag("v1", "main")
        commits.append(commit(p, "loans", "main", {"loans/train.csv": csv_bytes(customers(0, 200))}, "200 rows"))
        tokened = [dict(r, customer_id=p.privacy.anonymizer.token(r["customer_id"], p.privacy.anonymizer.key("loans")))
                   for r in customers(40, 50)]
        commits.append(commit(p, "loans", "main", {"loans/tokens.parquet": parquet_bytes(tokened),
                                                   "loans/readme.txt": b"no table here\n"}, "tokens"))
        p.data.repo("loans").branch("feature").create("main")
        commit(p, "loans", "feature", {"loans/more.csv": csv_bytes(customers(30, 60))}, "feature rows")
        p.data.repo("loans").branch("feature").upload("loans/staged.csv", csv_bytes(customers(41, 44)))  # uncommitted
        commits.append(commit(p, "loans", "main", {"loans/late.csv": csv_bytes(customers(300, 320))}, "no subject"))
        commit(p, "copy", "main", {"same/train.csv": first}, "a copy of loans' first file")
        commit(p, "copy", "main", {"same/other.csv": csv_bytes(customers(500, 510))}, "unrelated")
        table = p.data.repo("loans").ref("main").read_table("loans/train.csv").table
        spec = TrainingSpec.infer(table, target="default", exclude=())
        result = p.training.train("loans", "main", "loans/train.csv", spec)
        version = p.registry.register_from_run("credit", result.run.id)
        p.deployments.deploy("credit", version.model, version.version)
        rows = customers(40, 45)
        instances = [{k: v for k, v in r.items() if k != "default"} for r in rows]
        answer = p.deployments.predict("credit", instances)
        p.monitoring.flush()
        p.monitoring.record_feedback("credit", [(answer.request_id, "1")])
        yield {"platform": p, "settings": settings, "token": token, "commits": commits, "version": version}
    finally:
        p.close()


def identifiers(p: Any) -> list[bytes]:
    return [SUBJECT.encode(), *(t.encode() for t in p.privacy.subject_tokens("loans", SUBJECT))]


def hits(p: Any, settings: Any) -> dict[str, int]:
    """Where the subject's identifiers appear in the home, read through the platform:
    every object of both object stores (decrypted), every log and feedback row, every
    metadata table (the audit events among them), and every other file as it lies."""
    from sqlalchemy import text
    from sqlmodel import SQLModel

    from mlops_lite.objects import ObjectStore

    needles = identifiers(p)
    found: dict[str, int] = {}

    def scan(where: str, blob: bytes) -> None:
        count = sum(blob.count(n) for n in needles)
        if count:
            found[where] = found.get(where, 0) + count

    cipher = p.protection.object_cipher()
    for store_dir in sorted(settings.objects_dir.iterdir()):
        store = ObjectStore(store_dir, cipher)
        for name, path in store.files():
            digest = store.verify_file(name, path)
            assert digest is not None, f"unsound object {path}"
            content = store.get_bytes(digest)
            scan(f"object {store_dir.name}/{digest}", content)
            if content.startswith(b"PAR1"):  # compressed pages: read the values too
                import pyarrow.parquet as pq

                scan(f"object {store_dir.name}/{digest} (values)",
                     json.dumps(pq.read_table(io.BytesIO(content)).to_pylist(), default=str).encode())
    for view in ("predictions", "feedback"):
        scan(f"log {view}", json.dumps(p.monitoring.query(f"select * from {view}").to_pylist(), default=str).encode())
    with p._store.session() as session:
        for table in SQLModel.metadata.sorted_tables:
            rows = session.execute(text(f'select * from "{table.name}"')).all()
            scan(f"table {table.name}", json.dumps([list(r) for r in rows], default=str).encode())
    skip = {settings.objects_dir, settings.home / "predictions", settings.home / "feedback"}
    for path in settings.home.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip) and not path.name.endswith(".duckdb"):
            scan(f"file {path.relative_to(settings.home)}", path.read_bytes())
    return found


def walk(p: Any, repo: str, ref: str) -> list[Any]:
    log = p.data.repo(repo).log(ref, amount=1000)
    assert not log[-1].parents, "the log reaches the first commit"
    for record in log:
        p.data.repo(repo).commit(record.id)
    return log


def test_erasure_leaves_no_trace_of_the_subject(world: dict[str, Any]) -> None:
    from sqlmodel import select

    from mlops_lite.metadata.tables import PrivacyCommitMap, PrivacyFlag

    p, settings = world["platform"], world["settings"]
    before = hits(p, settings)
    assert any(k.startswith("object data/") for k in before), before
    assert any(k.startswith("log predictions") for k in before), before
    messages = {ref: [c.message for c in walk(p, "loans", ref)] for ref in ("main", "feature", "v1")}

    dry = p.privacy.erase("loans", SUBJECT, dry_run=True)
    assert dry.dry_run and dry.rows > 0 and hits(p, settings) == before

    report = p.privacy.erase("loans", SUBJECT)
    # five objects held the subject, one staged (the copy's file is the same object as the first train.csv)
    assert (report.rows, report.objects) == (5, 5) and set(report.repositories) == {"loans", "copy"}
    assert report.models_flagged == 1
    assert hits(p, settings) == {}
    assert report.prediction_log_rows
    assert p.data.fsck().clean, p.data.fsck()
    assert {ref: [c.message for c in walk(p, "loans", ref)] for ref in ("main", "feature", "v1")} == messages
    walk(p, "copy", "main")
    assert all(c.metadata.get("erased") for c in walk(p, "loans", "v1"))
    main = p.data.repo("loans").ref("main")
    assert main.read_bytes("loans/readme.txt") == b"no table here\n"
    late = main.read_bytes("loans/late.csv")
    assert late == csv_bytes(customers(300, 320)), "objects without the subject keep their exact bytes"
    staged = p.data.repo("loans").ref("feature").read_bytes("loans/staged.csv")
    assert staged == csv_bytes([r for r in customers(41, 44) if r["customer_id"] != SUBJECT])
    kept = main.read_bytes("loans/train.csv").decode().splitlines()
    assert len(kept) == 200 and kept[0] == ",".join(COLUMNS)

    with p._store.session() as session:
        mapping = {m.old_commit: m.new_commit for m in session.exec(select(PrivacyCommitMap)).all()}
        flags = session.exec(select(PrivacyFlag)).all()
    assert set(world["commits"]) <= set(mapping) and mapping == {**mapping, **report.commits}
    version = world["version"]
    assert [(f.model, f.version) for f in flags] == [(version.model, version.version)]
    assert "retrain suggested" in flags[0].note
    lineage = p.registry.lineage(version.model, version.version)
    assert any(e.action == "privacy.flag" for e in lineage.audit_events)
    served = p.deployments.lineage("credit")
    notes = [m for slot in served.slots for m in slot.missing if "retrain suggested" in m]
    assert len(notes) == 1 and mapping[world["commits"][-1]] in notes[0]
    events = [e for e in p.audit.events(limit=10_000) if e.action == "privacy.erase"]
    assert len(events) == 1 and events[0].after["subject_digest"] == report.subject_digest
    assert events[0].after["commits"] == report.commits
    assert p.audit.verify() is None

    again = p.privacy.erase("loans", SUBJECT)
    assert again.rows == 0 and again.commits == {}


def test_bad_input_is_refused_and_changes_nothing(world: dict[str, Any]) -> None:
    p = world["platform"]
    heads = p.data.repo("loans").branches()
    count = p.audit.count()
    with pytest.raises(mlops_lite.NotFound, match="no-such"):
        p.privacy.erase("no-such", SUBJECT)
    with pytest.raises(mlops_lite.InvalidInput) as empty:
        p.privacy.erase("loans", "  ")
    assert empty.value.field == "subject"
    with pytest.raises(mlops_lite.InvalidInput):
        p.privacy.export("loans", "")
    p.data.repo("plain").create(classification="public")
    with pytest.raises(mlops_lite.InvalidInput, match="subject columns"):
        p.privacy.erase("plain", SUBJECT)
    assert p.data.repo("loans").branches() == heads
    assert p.audit.count() == count + 1  # the creation of 'plain' only


def test_a_crash_mid_rewrite_changes_nothing_and_a_rerun_completes(world: dict[str, Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    p, settings = world["platform"], world["settings"]
    objects = p.data.objects
    heads = p.data.repo("loans").branches()
    tags = p.data.repo("loans").tags()
    real = objects.put_bytes
    written: list[str] = []

    def put_then_crash(data: bytes, **kw: Any) -> tuple[str, int]:
        if len(written) == 2:
            raise RuntimeError("the power went out")
        digest, size = real(data, **kw)
        written.append(digest)
        return digest, size

    monkeypatch.setattr(objects, "put_bytes", put_then_crash)
    with pytest.raises(RuntimeError, match="power"):
        p.privacy.erase("loans", SUBJECT)
    monkeypatch.undo()
    assert len(written) == 2
    assert p.data.repo("loans").branches() == heads and p.data.repo("loans").tags() == tags
    assert SUBJECT.encode() in p.data.repo("loans").ref("main").read_bytes("loans/train.csv")
    assert p.data.fsck().clean
    report = p.privacy.erase("loans", SUBJECT)
    assert report.rows > 0 and hits(p, settings) == {} and p.data.fsck().clean


def test_export_answers_every_row_of_the_subject(world: dict[str, Any]) -> None:
    p = world["platform"]
    export = p.privacy.export("loans", SUBJECT)
    where = {(r["branch"], r["path"]) for r in export.rows}
    assert where == {("main", "loans/train.csv"), ("main", "loans/tokens.parquet"),
                     ("feature", "loans/train.csv"), ("feature", "loans/tokens.parquet"),
                     ("feature", "loans/more.csv")}
    assert len(export.predictions) == 1
    events = [e for e in p.audit.events(limit=10_000) if e.action == "privacy.export"]
    assert len(events) == 1 and SUBJECT not in json.dumps(events[0].after)
    assert p.data.repo("loans").branches()  # nothing moved


def test_over_http_and_the_cli(world: dict[str, Any], tmp_path: Path) -> None:
    """An admin erases and exports over HTTP (RemotePlatform, and the CLI as the daemon's
    client); a viewer is refused (403) and nothing changes."""
    import os
    import subprocess
    import sys

    from mlops_lite.client.remote import RemotePlatform
    from server import create_app
    from server.runner import serve_in_thread

    p, settings = world["platform"], world["settings"]
    server = serve_in_thread(create_app(p))
    try:
        _, viewer = p.tokens.create("privacy-viewer", "viewer")
        heads = p.data.repo("loans").branches()
        with RemotePlatform(server.url, viewer) as remote:
            with pytest.raises(mlops_lite.PermissionDenied):
                remote.privacy.erase("loans", SUBJECT)
            with pytest.raises(mlops_lite.PermissionDenied):
                remote.privacy.export("loans", SUBJECT)
        assert p.data.repo("loans").branches() == heads
        with RemotePlatform(server.url, world["token"]) as remote:
            with pytest.raises(mlops_lite.InvalidInput):
                remote.privacy.erase("loans", "")
            with pytest.raises(mlops_lite.NotFound):
                remote.privacy.erase("no-such", SUBJECT)
            exported = remote.privacy.export("loans", SUBJECT)
            assert {r["path"] for r in exported.rows} >= {"loans/train.csv", "loans/more.csv"}
        env = {**os.environ, "MLOPS_LITE_HOME": str(settings.home), "MLOPS_LITE_URL": server.url,
               "MLOPS_LITE_TOKEN": world["token"]}
        script = str(Path(sys.executable).with_name("mlops-lite"))
        out = tmp_path / "export.json"
        done = subprocess.run([script, "privacy", "export", "--repo", "loans", "--subject", SUBJECT, "--out", str(out)],
                              env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert out.stat().st_mode & 0o077 == 0 and json.loads(out.read_text())["rows"]
        done = subprocess.run([script, "privacy", "erase", "--repo", "loans", "--subject", SUBJECT, "--json"],
                              env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["rows"] == 5 and SUBJECT not in done.stdout
        assert SUBJECT.encode() not in p.data.repo("loans").ref("main").read_bytes("loans/train.csv")
        assert p.data.fsck().clean
        version = world["version"]
        for args in (["models", "lineage", f"{version.model}@{version.version}"], ["deploy", "lineage", "credit"]):
            done = subprocess.run([script, *args], env=env, capture_output=True, text=True, timeout=120,
                                  stdin=subprocess.DEVNULL)
            assert done.returncode == 0 and "retrain suggested" in done.stdout, (args, done.stdout, done.stderr)
    finally:
        server.stop()


BEFORE_ERASURE = "5ce3818"  # the last commit whose homes have no privacy_* tables


def test_a_home_made_before_erasure_gets_its_tables_and_erases(tmp_path: Path) -> None:
    """The home is made by the code of the commit before erasure, in a subprocess; the new
    code adds the privacy tables (the store's additive upgrade) and erases in it."""
    import os
    import shutil
    import subprocess
    import sys

    repo_root = Path(__file__).resolve().parents[2]
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(repo_root), "cat-file", "-e", BEFORE_ERASURE],
                                                     capture_output=True).returncode != 0:
        pytest.skip(f"needs git and commit {BEFORE_ERASURE} (the code before erasure) in the checkout")
    old_code = tmp_path / "old-code"
    old_code.mkdir()
    archive = subprocess.run(["git", "-C", str(repo_root), "archive", BEFORE_ERASURE, "mlops_lite"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
    home = tmp_path / "old-home"
    script = (
        "import sys; from mlops_lite.config import load_settings; from mlops_lite.home import init_home; "
        "from mlops_lite.platform import open_local; from mlops_lite.data import RepositoryConfig; "
        "from mlops_lite.privacy.profile import PrivacyProfile; s = load_settings(home=sys.argv[1]); init_home(s); "
        "p = open_local(s); p.data.repo('loans').create(config=RepositoryConfig(protected_branches=(), "
        "privacy=PrivacyProfile(classification='internal', subject_columns=('customer_id',)))); "
        "b = p.data.repo('loans').branch('main'); b.upload('a.csv', sys.argv[2].encode()); b.commit('old'); p.close()")
    made = subprocess.run([sys.executable, "-c", script, str(home), csv_bytes(customers(0, 60)).decode()],
                          cwd=old_code, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(old_code), "HOME": str(tmp_path),
                                             **({"MLOPS_LITE_DATABASE_URL": os.environ["MLOPS_LITE_DATABASE_URL"]}
                                                if "MLOPS_LITE_DATABASE_URL" in os.environ else {})},
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local

    with open_local(load_settings(home=home)) as p:
        report = p.privacy.erase("loans", SUBJECT)
        assert (report.rows, len(report.commits)) == (1, 1)
        assert SUBJECT.encode() not in p.data.repo("loans").ref("main").read_bytes("a.csv")
        assert p.data.fsck().clean


def test_erasure_by_the_token_removes_the_pseudonymized_rows(world: dict[str, Any]) -> None:
    p = world["platform"]
    token = p.privacy.anonymizer.token(SUBJECT, p.privacy.anonymizer.key("loans"))
    report = p.privacy.erase("loans", token)
    assert (report.rows, report.objects) == (1, 1)  # the tokens file; the raw rows do not carry the token
    main = p.data.repo("loans").ref("main")
    assert token.encode() not in json.dumps(main.read_table("loans/tokens.parquet").table.to_pylist()).encode()
    assert SUBJECT.encode() in main.read_bytes("loans/train.csv")
    assert p.data.fsck().clean
