"""`mlops-lite demo` as a new user runs it: a fresh home, a subprocess, twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("mlops-lite"))


@pytest.mark.slow
def test_demo_runs_the_whole_loop_twice_on_a_fresh_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"MLOPS_LITE_HOME": str(tmp_path / "home"), "COLUMNS": "200"})
    for _ in range(2):
        done = subprocess.run([CLI, "demo", "--requests", "40", "--no-loop"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "loan-default 1.0.0" in out, out
        assert "40 held-out rows" in out and "accuracy" in out
        assert "leaked" not in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "home" / "prefect").is_dir()

    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local

    with open_local(load_settings(home=tmp_path / "home")) as platform:
        # beside it, the feature store part's model (tests/e2e/test_demo_features.py)
        assert [m.versions for m in platform.registry.list_models() if m.name == "loan-default"] == [("1.0.0",)]
        assert platform.deployments.get("loans").revision == 2
        assert [r.status for r in platform.tracking.list_runs()
                if "feature_service" not in r.tags] == ["finished", "finished"]
        assert platform.audit.verify() is None


@pytest.mark.slow
def test_the_demo_second_act_closes_the_loop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"MLOPS_LITE_HOME": str(tmp_path / "home"), "COLUMNS": "200"})
    done = subprocess.run([CLI, "demo", "--requests", "20"], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "act two: the closed loop" in out, out
    assert "alert drift-feature firing" in out and "retraining triggered" in out
    assert "gates passed; canary at 30%" in out and "promote:" in out, out
    assert "loans now serves loan-default@1.1.0" in out
    # Quiet: log records go to the home's log file, not between the progress bars; one line says so.
    log = tmp_path / "home" / "logs" / "mlops-lite.log"
    for stream in (done.stdout, done.stderr):
        printed = "\n".join(line for line in stream.splitlines() if not line.startswith("log: "))
        assert "| WARNING" not in printed and "| ERROR" not in printed and "alert.fire" not in printed, stream
    assert "alert.fire drift-feature" in log.read_text()
    assert (log.stat().st_mode & 0o777) == 0o600
    assert f"log: 1 warning in {log}" in " ".join(out.split()), out

    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local

    with open_local(load_settings(home=tmp_path / "home")) as platform:
        served = platform.deployments.get("loans")
        assert (served.strategy, served.version) == ("single", "1.1.0")
        assert [r.action for r in platform.deployments.revisions("loans")] == ["promote", "canary", "deploy"]
        assert platform.audit.verify() is None
