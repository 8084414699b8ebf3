"""The daemon file: which process owns the embedded stores, and where it listens."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    url: str
    prefect_url: str | None
    started_at: str


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_daemon(path: Path) -> DaemonInfo | None:
    """The running daemon, or None. A file left by a dead process counts as none."""
    try:
        info = DaemonInfo(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None
    return info if pid_alive(info.pid) else None


def write_daemon(path: Path, info: DaemonInfo) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(asdict(info), indent=2))
    os.replace(tmp, path)


def clear_daemon(path: Path, pid: int) -> None:
    """Remove the file if it still names ``pid``."""
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass
