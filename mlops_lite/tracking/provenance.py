"""What a run records about where it ran: the code version and the environment."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 2.0

# Distribution names whose versions every run records. A value is None when the
# package is not installed; onnxruntime also answers for onnxruntime-gpu.
KEY_PACKAGES: tuple[str, ...] = ("mlops-lite", "scikit-learn", "onnxruntime", "skl2onnx", "numpy", "pyarrow",
                                 "duckdb")
_ALTERNATIVES = {"onnxruntime": ("onnxruntime-gpu",)}

_environment: dict[str, Any] | None = None


@dataclass(frozen=True)
class CodeVersion:
    """The git commit checked out in a directory and whether tracked files differ from it.
    Both None when the directory is not a git checkout (or git is missing or too slow)."""

    commit: str | None = None
    dirty: bool | None = None


def code_version(directory: str | os.PathLike[str] | None = None) -> CodeVersion:
    """``git rev-parse HEAD`` and ``git status --porcelain --untracked-files=no`` in
    ``directory`` (default: the working directory), each bounded by a short timeout.

    Untracked files do not make a checkout dirty (as in GitPython's ``is_dirty()``):
    otherwise every run that writes outputs, a virtualenv or an mlops-lite home beside
    the code would count as dirty. Modified, staged and deleted tracked files do."""
    where = Path(directory) if directory is not None else Path.cwd()
    if not where.is_dir():
        return CodeVersion()
    head = _git(where, "rev-parse", "--verify", "HEAD")
    if head is None or len(head) < 40:
        return CodeVersion()  # not a checkout, no commit yet, or git failed
    status = _git(where, "status", "--porcelain", "--untracked-files=no")
    return CodeVersion(commit=head, dirty=None if status is None else bool(status))


def _git(where: Path, *args: str) -> str | None:
    # GIT_OPTIONAL_LOCKS=0: status must not take the index lock (a concurrent git
    # command in that checkout would fail on it).
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                              env=env, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def environment() -> dict[str, Any]:
    """Python version, platform and the key packages' versions (computed once per process)."""
    global _environment
    if _environment is None:
        packages: dict[str, str | None] = {}
        for name in KEY_PACKAGES:
            packages[name] = None
            for candidate in (name, *_ALTERNATIVES.get(name, ())):
                try:
                    packages[name] = metadata.version(candidate)
                    break
                except metadata.PackageNotFoundError:
                    continue
        _environment = {"python": platform.python_version(), "implementation": sys.implementation.name,
                        "platform": platform.platform(), "packages": packages}
    return {**_environment, "packages": dict(_environment["packages"])}
