"""Signed checkpoints of the audit chain (mlops_lite/security/checkpoints.py): a cut tail,
an emptied chain and a forged checkpoint fail verification, with the home's keys and with
the public key alone; a home made before checkpoints gets its key and a first checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mlops_lite import Conflict, InvalidInput
from mlops_lite.config import Settings, load_settings
from mlops_lite.home import init_home
from mlops_lite.platform import Platform, open_local
from mlops_lite.security import audit as audit_module
from mlops_lite.security.checkpoints import (
    check,
    parse_lines,
    read_public_key,
    sign,
    to_line,
)

REPO = Path(__file__).resolve().parents[2]
BEFORE_CHECKPOINTS = "fdff47e"  # the last commit whose homes have no signing key


def _home(tmp_path: Path, **overrides: Any) -> Settings:
    settings = load_settings(home=tmp_path / "home", **overrides)
    init_home(settings)
    return settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return _home(tmp_path)


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    opened = open_local(settings)
    try:
        yield opened
    finally:
        opened.close()


def _events(platform: Platform, n: int) -> None:
    for i in range(n):
        platform.audit.record(actor="tester", action="test.event", object=f"thing:{i}", after={"i": i})


def _delete(platform: Platform, where: str) -> None:
    with platform._store.engine.begin() as connection:
        connection.execute(text(f"delete from audit_events {where}"))


def test_init_makes_the_signing_key_0600_and_signs_what_it_wrote(settings: Settings, platform: Platform) -> None:
    assert (settings.audit_signing_key_file.stat().st_mode & 0o777) == 0o600
    assert "BEGIN PUBLIC KEY" in settings.audit_public_key_file.read_text()
    assert platform.audit.public_key() == settings.audit_public_key_file.read_text()
    found = platform.audit.checkpoints()
    assert found and found[-1].seq == found[-1].count == platform.audit.count() > 0
    verdict = platform.audit.verify_signed()
    assert verdict.verified and verdict.problems == () and verdict.signed_through == found[-1].seq


def test_a_cut_tail_fails_naming_the_checkpoint_and_the_missing_range(settings: Settings,
                                                                       platform: Platform) -> None:
    _events(platform, 6)
    signed = platform.audit.checkpoint()
    assert (signed.seq, signed.count) == (platform.audit.count(), platform.audit.count())
    _delete(platform, f"where seq > {signed.seq - 3}")
    platform.audit._shared.tail = None  # the tail is read again from the database, as after a restart
    assert platform.audit.verify() is None  # the HMAC links alone still meet: the weakness
    verdict = platform.audit.verify_signed()
    assert not verdict.verified
    assert verdict.missing == (signed.seq - 2, signed.seq)
    assert verdict.checkpoint is not None and verdict.checkpoint.id == signed.id
    cut = [p for p in verdict.problems if "tail was cut" in p]
    assert cut and signed.id in cut[0] and f"{signed.seq - 2}..{signed.seq}" in cut[0]
    with pytest.raises(Conflict):  # nothing is signed over a chain that lost a checkpoint's head
        platform.audit.checkpoint()
    _events(platform, 5)  # automatic checkpoints stop too, without failing the writes
    assert platform.audit.checkpoints()[-1] == signed
    # A deliberate cut (a restored backup): the old checkpoints are set aside, a new file starts.
    settings.audit_checkpoints_file.rename(settings.audit_dir / "checkpoints-before-restore.jsonl")
    restarted = platform.audit.checkpoint()
    assert restarted.prev is None and platform.audit.verify_signed().verified


def test_a_replaced_tail_is_caught_by_the_head_hash(platform: Platform) -> None:
    _events(platform, 3)
    signed = platform.audit.checkpoint()
    _delete(platform, f"where seq = {signed.seq}")
    # Whoever lacks the audit key appends an event of their own where the signed one was.
    with platform._store.engine.begin() as connection:
        connection.execute(text(
            "insert into audit_events (seq, id, occurred_at, actor, action, object, before, after, prev_hash, hash) "
            "select seq + 1, 'forged', occurred_at, 'mallory', 'test.event', 'x', before, after, hash, "
            f"'{'f' * 64}' from audit_events where seq = {signed.seq - 1}"))
    verdict = platform.audit.verify_signed()
    assert not verdict.verified
    assert any(f"head hash of checkpoint {signed.id} is no longer at seq {signed.seq}" in p for p in verdict.problems)


def test_all_events_deleted_is_caught(platform: Platform) -> None:
    _events(platform, 4)
    signed = platform.audit.checkpoint()
    _delete(platform, "")
    assert platform.audit.count() == 0 and platform.audit.verify() is None
    verdict = platform.audit.verify_signed()
    assert not verdict.verified and verdict.missing == (1, signed.seq)
    assert any("all events were deleted" in p and signed.id in p for p in verdict.problems)


def test_a_forged_checkpoint_line_is_caught(settings: Settings, platform: Platform) -> None:
    _events(platform, 2)
    platform.audit.checkpoint()
    lines = settings.audit_checkpoints_file.read_text().splitlines()
    forged = json.loads(lines[-1])
    forged["seq"], forged["count"] = forged["seq"] - 1, forged["count"] - 1  # "the chain was shorter"
    settings.audit_checkpoints_file.write_text("\n".join([*lines[:-1], json.dumps(forged)]) + "\n")
    verdict = platform.audit.verify_signed()
    assert not verdict.verified
    assert any(f"checkpoint {forged['id']}" in p and "bad signature" in p for p in verdict.problems)


def test_a_checkpoint_signed_by_another_key_and_a_removed_one_are_caught(settings: Settings,
                                                                         platform: Platform) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _events(platform, 2)
    first = platform.audit.checkpoint()
    _events(platform, 2)
    platform.audit.checkpoint()
    _events(platform, 1)
    platform.audit.checkpoint()
    lines = settings.audit_checkpoints_file.read_text().splitlines()
    # A checkpoint from the middle removed: the next one no longer follows the one before.
    settings.audit_checkpoints_file.write_text("\n".join(line for line in lines
                                                         if json.loads(line)["id"] != first.id) + "\n")
    assert any("does not follow" in p for p in platform.audit.verify_signed().problems)
    # A checkpoint made with a key of one's own over a shortened chain.
    settings.audit_checkpoints_file.write_text("\n".join(lines) + "\n")
    last = platform.audit.checkpoints()[-1]
    other = sign(Ed25519PrivateKey.generate(), seq=1, head="0" * 64, count=1, at=last.at, digest=last.digest,
                 prev=None)
    with settings.audit_checkpoints_file.open("a") as out:
        out.write(json.dumps(to_line(other)) + "\n")
    verdict = platform.audit.verify_signed()
    assert not verdict.verified and any(other.id in p and "bad signature" in p for p in verdict.problems)


def test_an_export_verifies_with_the_public_key_alone(tmp_path: Path, settings: Settings,
                                                      platform: Platform) -> None:
    _events(platform, 3)
    earlier = platform.audit.checkpoint()
    _events(platform, 2)
    signed = platform.audit.checkpoint()
    _events(platform, 2)  # after the last checkpoint: linked, not yet signed
    events = platform.audit.export()
    public = read_public_key(platform.audit.public_key())
    checkpoints = parse_lines(settings.audit_checkpoints_file.read_text()).checkpoints
    verdict = check(events, checkpoints, public, whole_chain=True)
    assert verdict.verified and verdict.signed_through == signed.seq and verdict.events == signed.seq + 2

    # An event edited in the export (its stored link kept: without the key it cannot be redone).
    edited = [dict(e) for e in events]
    edited[2]["actor"] = "mallory"
    bad = check(edited, checkpoints, public, whole_chain=True)
    assert not bad.verified and bad.signed_through < signed.seq
    assert any("not the ones checkpoint" in p for p in bad.problems)
    # The export cut short, or emptied.
    assert check(events[:signed.seq - 2], checkpoints, public, whole_chain=True).missing == (signed.seq - 1,
                                                                                           signed.seq)
    assert check([], checkpoints, public, whole_chain=True).missing == (1, signed.seq)
    # The first events dropped from an export that claims to be whole.
    assert not check(events[2:], checkpoints, public, whole_chain=True).verified
    # A --since export: its events after the first checkpoint it reaches are proven.
    partial = check(events[earlier.seq - 2:], checkpoints, public, whole_chain=False)
    assert partial.verified and partial.signed_through == signed.seq
    assert check(events[signed.seq:], checkpoints, public, whole_chain=False).signed_through == 0

    # The same through the CLI, offline: no home, no audit key, only the three files.
    export, cps, pem = tmp_path / "export.jsonl", tmp_path / "checkpoints.jsonl", tmp_path / "public.pem"
    export.write_text("".join(json.dumps(e) + "\n" for e in events))
    shutil.copy(settings.audit_checkpoints_file, cps)
    pem.write_text(platform.audit.public_key())
    result = _cli("audit", "verify", "--file", str(export), "--public-key", str(pem), "--checkpoints", str(cps),
                  home=tmp_path / "no-home")
    assert result.exit_code == 0, result.output
    assert f"signs seq 1..{signed.seq}" in result.output and not (tmp_path / "no-home").exists()
    export.write_text("".join(json.dumps(e) + "\n" for e in edited))
    result = _cli("audit", "verify", "--file", str(export), "--public-key", str(pem), "--checkpoints", str(cps),
                  home=tmp_path / "no-home")
    assert result.exit_code == 1 and "does NOT verify" in result.output
    # Without --public-key, off the host: no audit key to check links with, and none is made.
    refused = _cli("audit", "verify", "--file", str(export), "--checkpoints", str(cps), home=tmp_path / "no-home")
    assert isinstance(refused.exception, InvalidInput) and refused.exception.field == "public_key"
    assert not (tmp_path / "no-home").exists()


def _cli(*args: str, home: Path) -> Any:
    from mlops_lite.cli import app

    return CliRunner().invoke(app, list(args), env={"MLOPS_LITE_HOME": str(home), "COLUMNS": "200"})


def test_the_cli_reports_a_cut_tail_and_makes_checkpoints(settings: Settings) -> None:
    with open_local(settings) as platform:
        _events(platform, 3)
    made = _cli("audit", "checkpoint", home=settings.home)
    assert made.exit_code == 0 and "checkpoint " in made.output
    assert _cli("audit", "verify", home=settings.home).exit_code == 0
    with open_local(settings) as platform:
        last = platform.audit.checkpoints()[-1]
        _delete(platform, f"where seq = {last.seq}")
    result = _cli("audit", "verify", home=settings.home)
    assert result.exit_code == 1
    assert f"checkpoint {last.id}" in result.output and f"{last.seq}..{last.seq} are missing" in result.output
    key = _cli("audit", "public-key", home=settings.home)
    assert key.exit_code == 0 and key.output == settings.audit_public_key_file.read_text()


def test_checkpoints_come_every_n_events_and_after_the_interval(tmp_path: Path) -> None:
    settings = _home(tmp_path, audit_checkpoint_events=5, audit_checkpoint_interval_s=3600)
    with open_local(settings) as platform:
        before = len(platform.audit.checkpoints())
        _events(platform, 12)
        found = platform.audit.checkpoints()
        assert len(found) - before == 2 and found[-1].seq % 5 == found[-2].seq % 5
        assert platform.audit.checkpoint_if_moved() is not None
        assert platform.audit.checkpoint_if_moved() is None  # nothing new: nothing written
        assert platform.audit.verify_signed().verified
    timed = load_settings(home=settings.home, audit_checkpoint_events=1000, audit_checkpoint_interval_s=0.001)
    with open_local(timed) as platform:
        before = len(platform.audit.checkpoints())
        _events(platform, 2)
        assert len(platform.audit.checkpoints()) == before + 2


def test_concurrent_appends_and_checkpoints_keep_the_chain_signed(tmp_path: Path) -> None:
    settings = _home(tmp_path, audit_checkpoint_events=7)
    with open_local(settings) as platform:
        def write() -> None:
            _events(platform, 20)

        threads = [threading.Thread(target=write) for _ in range(3)]
        for thread in threads:
            thread.start()
        for _ in range(5):
            platform.audit.checkpoint()
        for thread in threads:
            thread.join()
        platform.audit.checkpoint()
        verdict = platform.audit.verify_signed()
        assert verdict.verified, verdict.problems
        assert verdict.signed_through == platform.audit.count()


def test_a_lost_checkpoint_file_is_reported_and_not_silently_restarted(settings: Settings) -> None:
    with open_local(settings) as platform:
        _events(platform, 2)
        platform.audit.checkpoint()
    settings.audit_checkpoints_file.unlink()
    small = load_settings(home=settings.home, audit_checkpoint_events=1)
    with open_local(small) as platform:
        _events(platform, 3)  # automatic checkpoints wait: a new first one would hide the loss
        assert platform.audit.checkpoints() == []
        verdict = platform.audit.verify_signed()
        assert not verdict.verified and any("no checkpoint with a good signature" in p for p in verdict.problems)
        platform.audit.checkpoint()  # the operator's decision, after looking
        assert platform.audit.verify_signed().verified


def test_failed_logins_are_counted_per_client_and_window_not_one_event_each(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    before = platform.audit.count()
    for _ in range(500):
        platform.audit.failed_login("10.0.0.1", "token")
    for _ in range(3):
        platform.audit.failed_login("10.0.0.2", "access-key")
    assert platform.audit.count() == before  # counted in memory until the window closes
    assert platform.audit.flush_failed_logins() == 2
    events = {e.object: e.after for e in platform.audit.events(limit=2)}
    assert events["client:10.0.0.1"]["count"] == 500 and events["client:10.0.0.1"]["credential"] == "token"
    assert events["client:10.0.0.2"]["count"] == 3
    # Many clients in one window: the first hundred apart, the rest together.
    for i in range(audit_module.FAILED_LOGIN_CLIENTS + 50):
        platform.audit.failed_login(f"10.1.{i // 250}.{i % 250}", "none")
    assert platform.audit.flush_failed_logins() == audit_module.FAILED_LOGIN_CLIENTS + 1
    assert platform.audit.about("client:*")[-1].after["count"] == 50
    # A closed window is written by the next failure.
    monkeypatch.setattr(audit_module, "FAILED_LOGIN_WINDOW_S", 0.0)
    count = platform.audit.count()
    platform.audit.failed_login("10.0.0.3", "jwt")
    platform.audit.failed_login("10.0.0.3", "jwt")
    assert platform.audit.count() == count + 1


def test_a_home_made_before_checkpoints_gets_its_key_and_a_first_checkpoint(tmp_path: Path) -> None:
    """The home is made by the code of the commit before checkpoints, in a subprocess."""
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", BEFORE_CHECKPOINTS],
                                                     capture_output=True).returncode != 0:
        pytest.skip(f"needs git and commit {BEFORE_CHECKPOINTS} (the code before checkpoints) in the checkout")
    old_code = tmp_path / "old-code"
    old_code.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_CHECKPOINTS, "mlops_lite"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
    home = tmp_path / "old-home"
    made = subprocess.run(
        [sys.executable, "-c",
         "import sys; from mlops_lite.config import load_settings; from mlops_lite.home import init_home; "
         "from mlops_lite.platform import open_local; s = load_settings(home=sys.argv[1]); init_home(s); "
         "p = open_local(s); p.tokens.create('old', 'viewer'); p.close()", str(home)],
        cwd=old_code, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(old_code), "HOME": str(tmp_path),
                           # With --postgres, the old code writes the same database the new one reads.
                           **({"MLOPS_LITE_DATABASE_URL": os.environ["MLOPS_LITE_DATABASE_URL"]}
                              if "MLOPS_LITE_DATABASE_URL" in os.environ else {})},
        capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    settings = load_settings(home=home)
    assert not settings.audit_signing_key_file.exists() and not settings.audit_dir.exists()

    with open_local(settings) as platform:
        count = platform.audit.count()
        assert count >= 2
        found = platform.audit.checkpoints()
        assert [(c.seq, c.count, c.prev) for c in found] == [(count, count, None)]
        assert platform.audit.verify_signed().verified
        _delete(platform, f"where seq = {count}")
        verdict = platform.audit.verify_signed()
        assert not verdict.verified and verdict.missing == (count, count)
    assert (settings.audit_signing_key_file.stat().st_mode & 0o777) == 0o600


def test_a_checkpoint_does_not_sign_a_chain_whose_links_fail(platform: Platform) -> None:
    _events(platform, 3)
    with platform._store.engine.begin() as connection:
        connection.execute(text("update audit_events set actor = 'mallory' where seq = 2"))
    lines_before = len(platform.audit.checkpoints())
    with pytest.raises(Conflict):
        platform.audit.checkpoint()
    assert len(platform.audit.checkpoints()) == lines_before
    verdict = platform.audit.verify_signed()
    assert not verdict.verified and verdict.problems[0].startswith("event seq 2 ")


def test_statement_summary_keeps_no_literal() -> None:
    statement = "  SELECT * FROM runs WHERE tags->>'email' = 'ann@example.com'"
    summary = audit_module.statement_summary(statement)
    assert summary == {"keyword": "select", "length": len(statement),
                       "sha256": hashlib.sha256(statement.encode()).hexdigest()}
    assert "ann@example.com" not in json.dumps(summary)
    assert audit_module.statement_summary("")["keyword"] == ""


def test_the_newest_checkpoint_is_read_from_the_end_of_a_long_file(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mlops_lite.security.checkpoints import CheckpointFile

    key, file = Ed25519PrivateKey.generate(), CheckpointFile(tmp_path / "audit" / "checkpoints.jsonl")
    assert file.last() is None
    written = [sign(key, seq=i, head="a" * 64, count=i, at=datetime.now(UTC), digest="b" * 64, prev=None)
               for i in range(300)]
    for one in written:
        file.append(one)
    assert file.path.stat().st_size > 20 * 4096
    assert file.last() == written[-1] == file.read().checkpoints[-1]
    with file.path.open("a") as out:
        out.write('{"id": "torn", "seq": 30\n')  # a damaged last line
    assert file.last() == written[-1] and file.read().unreadable == (301,)


def test_a_checkpoint_does_not_sign_a_chain_that_lost_events_before_the_last_checkpoint(platform: Platform) -> None:
    _events(platform, 4)
    signed = platform.audit.checkpoint()
    _events(platform, 2)
    _delete(platform, f"where seq = {signed.seq - 1}")  # behind the signed head: the links after it still meet
    with pytest.raises(Conflict, match="events were removed"):
        platform.audit.checkpoint()
    verdict = platform.audit.verify_signed()
    assert not verdict.verified and verdict.problems[0].startswith(f"event seq {signed.seq} ")
