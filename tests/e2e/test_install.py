"""install.sh in a temporary copy of the repository, as a new user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import REPO


def _copy_repo(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _run(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",) and not k.startswith("PREFECT_")}
    env["MLOPS_LITE_HOME"] = str(home)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_too_old_python_is_refused_clearly(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path / "repo")
    old = tmp_path / "python3.9"
    old.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Python 3.9.18"; exit 0; fi\nexit 1\n')
    old.chmod(0o755)
    done = _run(["./install.sh", "--python", str(old)], repo, tmp_path / "home")
    assert done.returncode != 0
    assert "3.11 or newer" in done.stderr and "3.9.18" in done.stderr
    assert not (repo / ".venv").exists()
    bad = _run(["./install.sh", "--frobnicate"], repo, tmp_path / "home")
    assert bad.returncode == 2 and "unknown option" in bad.stderr


@pytest.mark.slow
def test_install_then_again_is_quick_and_harmless(tmp_path: Path) -> None:
    repo = _copy_repo(tmp_path / "repo")
    home = tmp_path / "home"
    first = _run(["./install.sh", "--no-gpu"], repo, home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "admin token (shown once" in first.stdout and "mlops-lite demo" in first.stdout
    token = (home / "admin.token").read_text()
    assert oct((home / "admin.token").stat().st_mode & 0o777) == "0o600"
    second = _run(["./install.sh", "--no-gpu"], repo, home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "dependencies up to date" in second.stdout and "admin token kept" in second.stdout
    assert (home / "admin.token").read_text() == token
    version = _run([str(repo / ".venv" / "bin" / "mlops-lite"), "--help"], repo, home)
    assert version.returncode == 0 and "demo" in version.stdout
