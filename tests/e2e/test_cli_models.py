"""`mlops-lite models ...`: aliases, rollback and lineage from the shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import DATA, FEATURE_EXCLUDE, build_loop

CLI = str(Path(sys.executable).with_name("mlops-lite"))


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env={**os.environ, "MLOPS_LITE_HOME": str(home)}, capture_output=True,
                          text=True, timeout=120)


def test_aliases_rollback_and_lineage_from_the_cli(tmp_path: Path) -> None:
    from mlops_lite import TrainingSpec

    home = tmp_path / "home"
    platform, _, _ = build_loop(home)
    try:
        platform.data.repo("loans").create(classification="internal", exist_ok=True)
        platform.data.ingest("loans", DATA / "loans_drifted.csv", "loans/train.csv")
        table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
        spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender")
        run = platform.training.train("loans", "main", "loans/train.csv", spec).run
        second = platform.registry.register_from_run("loan-default", run.id)
        data_commit = second.data_commits[0]
    finally:
        platform.close()
    assert second.version == "1.1.0"
    assert _run(home, "models", "alias", "set", "loan-default", "production", "1.0.0", "--reason", "first").returncode == 0
    moved = _run(home, "models", "alias", "set", "loan-default", "production", "1.1.0", "--reason", "fresher data")
    assert moved.returncode == 0 and "1.1.0" in moved.stdout
    lineage = _run(home, "models", "lineage", "loan-default@production", "--json")
    assert lineage.returncode == 0, lineage.stderr
    body = json.loads(lineage.stdout)
    assert body["version"]["version"] == "1.1.0" and body["data_commits"] == [data_commit]
    assert body["run_id"] == run.id
    text = _run(home, "models", "lineage", "loan-default@production")
    assert data_commit in text.stdout and "fresher data" in text.stdout
    back = _run(home, "models", "alias", "rollback", "loan-default", "production", "--reason", "regression")
    assert back.returncode == 0 and "1.0.0" in back.stdout
    history = json.loads(_run(home, "models", "alias", "history", "loan-default", "production", "--json").stdout)
    assert [(e["kind"], e["to_version"]) for e in history] == [("move", "1.0.0"), ("move", "1.1.0"),
                                                                ("rollback", "1.0.0")]
    listed = _run(home, "models", "list")
    assert "production=1.0.0" in listed.stdout
    bad = _run(home, "models", "lineage", "loan-default")
    assert bad.returncode == 1 and "NAME@VERSION" in bad.stderr
    unknown = _run(home, "models", "lineage", "loan-default@canary")
    assert unknown.returncode == 1 and "canary" in unknown.stderr
    compare = _run(home, "models", "compare", "loan-default", "1.0.0", "1.1.0", "--json")
    assert json.loads(compare.stdout)["data_changed"] is True


def test_sql_is_read_only_from_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _run(home, "init").returncode == 0
    done = _run(home, "sql", "select action, count(*) as n from audit_events group by action", "--csv")
    assert done.returncode == 0 and "token.create" in done.stdout
    refused = _run(home, "sql", "delete from audit_events")
    assert refused.returncode == 1 and "error:" in refused.stderr
