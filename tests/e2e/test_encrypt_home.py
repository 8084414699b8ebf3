"""``mlops-lite keys encrypt-home``: a plaintext home (the layout every release before
encryption made) is encrypted in place, keeps every committed thing readable, and a crash
part-way loses nothing: the home refuses to open until a second run finishes the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_lite.config import load_settings
from mlops_lite.errors import Conflict
from tests.conftest import build_loop, holdout_rows

MARK = b"credit_score,debt_to_income"  # a header of the loans data: plaintext in an old home's objects


def _files_with(home: Path, needle: bytes) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _plaintext_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("MLOPS_LITE_ENCRYPTION", "false")
    platform, _, spec = build_loop(home)
    try:
        platform.deployments.predict("loans", holdout_rows(spec, 5))
        platform.monitoring.flush()
        state = {"commit": platform.data.repo("loans").ref("main").resolve(),
                 "table": platform.data.repo("loans").ref("main").read_table("loans/train.csv").table,
                 "versions": [v.version for v in platform.registry.list_versions()],
                 "logged": platform.monitoring.query("select count(*) as n from predictions").column("n")[0].as_py(),
                 "events": platform.audit.count(), "rows": holdout_rows(spec, 5)}
    finally:
        platform.close()
    monkeypatch.delenv("MLOPS_LITE_ENCRYPTION")
    return state


def _check_readable(home: Path, state: dict[str, Any]) -> None:
    from mlops_lite.platform import open_local

    with open_local(load_settings(home=home)) as platform:
        assert platform.keys.status().encrypted and platform.keys.status().metadata_encrypted
        ref = platform.data.repo("loans").ref("main")
        assert ref.resolve() == state["commit"]
        assert ref.read_table("loans/train.csv").table.equals(state["table"])
        assert [v.version for v in platform.registry.list_versions()] == state["versions"]
        assert platform.data.fsck().clean
        assert platform.monitoring.query("select count(*) as n from predictions").column("n")[0].as_py() \
            == state["logged"]
        assert platform.deployments.predict("loans", state["rows"]).predictions
        assert platform.audit.verify() is None
        assert any(e.action == "keys.encrypt-home" for e in platform.audit.events(limit=10))


def test_a_plaintext_home_is_encrypted_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_lite.privacy.migrate import encrypt_home

    home = tmp_path / "home"
    state = _plaintext_home(home, monkeypatch)
    assert _files_with(home, MARK), "the old home holds its data in plaintext"
    report = encrypt_home(load_settings(home=home))
    assert report.objects_encrypted > 0 and report.metadata == "encrypted" and not report.objects_unsound
    assert _files_with(home, MARK) == []
    assert _files_with(home, b"loan-default") == []  # the model's name, in the metadata and the log
    _check_readable(home, state)
    with pytest.raises(Conflict, match="encrypted already"):
        encrypt_home(load_settings(home=home))


def test_a_crash_part_way_loses_nothing_and_a_second_run_finishes(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_lite.objects import ObjectStore
    from mlops_lite.platform import open_local
    from mlops_lite.privacy.migrate import encrypt_home

    home = tmp_path / "home"
    state = _plaintext_home(home, monkeypatch)
    real = ObjectStore.put_stream
    calls = {"n": 0}

    def crashing(self: ObjectStore, stream: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("the power went out")
        return real(self, stream, **kwargs)

    monkeypatch.setattr(ObjectStore, "put_stream", crashing)
    with pytest.raises(OSError, match="power"):
        encrypt_home(load_settings(home=home))
    monkeypatch.setattr(ObjectStore, "put_stream", real)
    with pytest.raises(Conflict, match="part-way"):
        open_local(load_settings(home=home))
    report = encrypt_home(load_settings(home=home))
    assert report.resumed and report.objects_already >= 3
    assert _files_with(home, MARK) == []
    _check_readable(home, state)


def test_the_cli_encrypts_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mlops_lite.cli import app

    home = tmp_path / "home"
    _plaintext_home(home, monkeypatch)
    monkeypatch.setenv("MLOPS_LITE_HOME", str(home))
    runner = CliRunner()
    before = runner.invoke(app, ["keys", "status"])
    assert before.exit_code == 0 and "NOT encrypted" in before.output
    done = runner.invoke(app, ["keys", "encrypt-home", "--yes"])
    assert done.exit_code == 0, done.output
    assert "metadata encrypted" in done.output and "back it up apart from the home" in done.output
    after = runner.invoke(app, ["keys", "status"])
    assert after.exit_code == 0 and "encrypted at rest; kms keyfile" in after.output
