"""`mlops-lite deploy retrain`: a person's retrain request from the shell, recorded as
them; without the daemon it waits for the daemon's next monitoring pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import build_loop

CLI = str(Path(sys.executable).with_name("mlops-lite"))


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env={**os.environ, "MLOPS_LITE_HOME": str(home)}, capture_output=True,
                          text=True, timeout=120)


def test_a_retrain_request_from_the_shell(tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform, _, _ = build_loop(home)
    platform.close()  # type: ignore[attr-defined]
    done = _run(home, "deploy", "retrain", "loans", "--reason", "drift on income")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("recorded: the next monitoring pass of `mlops-lite up` starts the retrain")
    answer = json.loads(_run(home, "deploy", "retrain", "loans", "--json").stdout)
    assert answer["pending"] is True and answer["started"] is False
    events = json.loads(_run(home, "audit", "export").stdout.splitlines()[-1])
    assert events["action"] == "loop.retrain_requested" and events["object"] == "deployment:loans"
    unknown = _run(home, "deploy", "retrain", "nope")
    assert unknown.returncode == 1 and "nope" in unknown.stderr
