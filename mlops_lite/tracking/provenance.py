"""What a run records about where it ran: the code version, the environment, the process
and its host (``Provenance``, computed by ``collect``).

A run started over HTTP records its caller's provenance: the client computes it where
the user's code runs (``collect(code_dir)``) and sends it; the server checks it
(``Provenance.from_json``: the same fields, types and sizes as a local one) and records
it instead of its own."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from mlops_lite.errors import InvalidInput

GIT_TIMEOUT_S = 2.0
HOST = socket.gethostname()
"""This process's host, as runs record it (and ``mark_crashed`` compares it)."""

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


# Bounds a caller-provided provenance must keep (a local one always does).
PID_MAX = 2**31 - 1  # runs.pid is a 32-bit INTEGER column
HOST_MAX = 255  # a host name's longest form
TEXT_MAX = 256  # python, implementation, platform
PACKAGES_MAX = 64
PACKAGE_TEXT_MAX = 100  # a package's name or version
ENVIRONMENT_KEYS = ("python", "implementation", "platform", "packages")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # a SHA-1 or SHA-256 object name, as rev-parse prints it
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Provenance:
    """Where a run ran: the code version of its code directory (``git_commit``/``git_dirty``,
    both None outside a git checkout), the environment (``environment()``), and the process
    (``pid``) and ``host`` that started it."""

    git_commit: str | None
    git_dirty: bool | None
    environment: dict[str, Any]
    pid: int
    host: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Provenance:
        """A provenance sent by a client, checked (``validate``); InvalidInput names the field."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise InvalidInput(f"bad provenance: {got}", field="provenance",
                               expected="an object with " + ", ".join(names))
        made = cls(**data)
        made.validate()
        return made

    def validate(self) -> None:
        """The same fields, types and sizes as ``collect`` makes; InvalidInput otherwise."""
        if self.git_commit is not None and not (isinstance(self.git_commit, str) and _COMMIT.match(self.git_commit)):
            raise InvalidInput(f"bad git commit {self.git_commit!r}", field="provenance.git_commit",
                               expected="null or a commit id (40 or 64 lowercase hex digits)")
        if self.git_dirty is not None and (not isinstance(self.git_dirty, bool) or self.git_commit is None):
            raise InvalidInput(f"bad git_dirty {self.git_dirty!r}", field="provenance.git_dirty",
                               expected="null, or true/false with a git commit")
        if isinstance(self.pid, bool) or not isinstance(self.pid, int) or not 1 <= self.pid <= PID_MAX:
            raise InvalidInput(f"bad pid {self.pid!r}", field="provenance.pid", expected=f"an integer 1 to {PID_MAX}")
        if not _text(self.host, HOST_MAX) or not self.host:
            raise InvalidInput(f"bad host {str(self.host)[:HOST_MAX]!r}", field="provenance.host",
                               expected=f"a host name of 1 to {HOST_MAX} characters, no control characters")
        _check_environment(self.environment)


def _text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and not _CONTROL.search(value)


def _check_environment(env: Any) -> None:
    if not isinstance(env, dict) or sorted(env) != sorted(ENVIRONMENT_KEYS):
        raise InvalidInput("bad environment", field="provenance.environment",
                           expected="an object with " + ", ".join(ENVIRONMENT_KEYS))
    for key in ENVIRONMENT_KEYS[:3]:
        if not _text(env[key], TEXT_MAX):
            raise InvalidInput(f"bad environment {key} {str(env[key])[:TEXT_MAX]!r}",
                               field=f"provenance.environment.{key}",
                               expected=f"text of at most {TEXT_MAX} characters")
    packages = env["packages"]
    if not isinstance(packages, dict) or len(packages) > PACKAGES_MAX:
        raise InvalidInput("bad environment packages", field="provenance.environment.packages",
                           expected=f"an object of at most {PACKAGES_MAX} package names to versions")
    for name, version in packages.items():
        if not _text(name, PACKAGE_TEXT_MAX) or not name or (
                version is not None and not _text(version, PACKAGE_TEXT_MAX)):
            raise InvalidInput(f"bad package {str(name)[:PACKAGE_TEXT_MAX]!r}",
                               field="provenance.environment.packages",
                               expected=f"names and versions (or null) of at most {PACKAGE_TEXT_MAX} characters")


def collect(code_dir: str | os.PathLike[str] | None = None) -> Provenance:
    """This process's provenance: the code version of ``code_dir`` (default: the working
    directory), the environment, the pid and the host. A local run records it as it
    starts; a client sends it with a run it starts on a server."""
    code = code_version(code_dir)
    return Provenance(git_commit=code.commit, git_dirty=code.dirty, environment=environment(), pid=os.getpid(),
                      host=HOST)
