"""The README's commands beside a running ``mlops-lite up``: each is a client of the daemon
that owns the stores (exit 0, and ``-v`` says it ran against the daemon), and a gated
alias does not move without a passing policy decision, through the daemon as in-process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlops_lite.policy.document import policy_dir

from ..conftest import build_loop
from .test_daemon import Daemon, cli, free_port, stop_group

# (command, a text its output must hold)
READS = [
    (("models", "list"), "loan-default"),
    (("models", "lineage", "loan-default@1.0.0"), "is version 1.0.0"),
    (("models", "alias", "history", "loan-default"), "when"),
    (("data", "repo", "list"), "loans"),
    (("data", "log", "loans"), "commit"),
    (("audit", "verify"), "verifies"),
    (("sql", "select action, count(*) as n from audit_events group by action order by action"), "token.create"),
    (("deploy", "status", "loans"), "loans: loan-default@1.0.0"),
    (("alerts", "list"), "no alerts"),
    (("status",), "holds"),
]


def _ok(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = cli(home, "-v", *args)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow  # 30-50 s: a model trained, a daemon started, some twenty-five commands as processes
def test_the_readme_commands_run_through_the_daemon(tmp_path: Path, daemons: list[Daemon]) -> None:
    home = tmp_path / "home"
    built, _, _ = build_loop(home)
    built.close()
    # A policy that loan-default@1.0.0 fails: production may not move to it.
    policy_dir(home).mkdir(parents=True, exist_ok=True)
    (policy_dir(home) / "loan-default.toml").write_text("[thresholds]\nroc_auc = 0.999\n")

    daemon = Daemon(home, free_port(), "--no-prefect")
    daemons.append(daemon)
    try:
        daemon.wait_until(daemon.healthy, 60, "GET /v1/health answered 200")
        said = f"ran against the daemon at {daemon.url} (pid {daemon.pid})"

        for args, expected in READS:
            done = _ok(home, *args)
            assert expected in done.stdout, f"{args}\n{done.stdout}"
            assert said in done.stderr, f"{args}\n{done.stderr}"

        # The data commands past the data Protocol answer through the daemon too.
        assert _ok(home, "data", "get", "loans", "main", "loans/train.csv").stdout.startswith("name,")
        assert "1 row(s)" in _ok(home, "data", "query", "loans", "select count(*) as n from t", "--table",
                                 "t=main:loans/train.csv").stdout
        assert "protected         main" in _ok(home, "data", "repo", "config", "loans").stdout

        # What must own the stores itself refuses, naming the daemon.
        again = cli(home, "init")
        assert again.returncode == 1 and f"pid {daemon.pid}" in again.stderr and "stop it first" in again.stderr

        silenced = json.loads(_ok(home, "alerts", "silence", "--rule", "drift-*", "--for", "1h30m", "--reason",
                                  "maintenance", "--json").stdout)
        assert silenced["rule"] == "drift-*" and silenced["reason"] == "maintenance"
        assert silenced["id"] in _ok(home, "alerts", "silences").stdout
        assert "lifted silence" in _ok(home, "alerts", "unsilence", silenced["id"]).stdout
        assert "no silences in force" in _ok(home, "alerts", "silences").stdout
        bad = cli(home, "alerts", "silence", "--rule", "x", "--for", "soon", "--reason", "r")
        assert bad.returncode == 1 and bad.stderr.startswith("error: bad --for 'soon'"), bad.stderr

        moved = cli(home, "-v", "models", "alias", "set", "loan-default", "production", "1.0.0", "--reason", "x")
        assert moved.returncode == 1, moved.stdout
        assert moved.stderr.splitlines() == [said, moved.stderr.splitlines()[-1]], moved.stderr
        assert moved.stderr.splitlines()[-1].startswith("error: ") and "roc_auc" in moved.stderr, moved.stderr
        models = json.loads(_ok(home, "models", "list", "--json").stdout)
        assert [m["aliases"] for m in models if m["name"] == "loan-default"] == [{}]
        never = cli(home, "models", "alias", "history", "loan-default", "production")
        assert never.returncode == 1 and "has no alias 'production'" in never.stderr, never.stderr
    finally:
        stop_group(daemon.proc)
    assert daemon.proc.returncode == 0, daemon.output()
    assert not (home / "daemon.json").exists()
