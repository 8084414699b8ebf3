"""Every path of a home is private to its owner (folders 0700, files 0600 or stricter),
whoever creates it: ``init``, ``connect()`` on a new home, the daemon, a flow run.

How, and why not by the umask alone:
- Every file and folder mlops-lite's own code creates in a home is created with an
  explicit mode (``mkdir(mode=0o700)``, ``os.open(..., 0o600)``, ``write_private``),
  so its privacy depends on no process setting.
- A library call (``connect()`` in a user's script or notebook) does not change the
  process's umask: that would make every file the script writes later, anywhere, 0600.
  The same holds for the CLI's outputs outside the home (``data get``, exports).
- The processes that own a home while they run (``up``, ``serve``, ``demo``: the
  commands that open the stores for their whole life) set the umask 077 with
  ``private_umask()``: the libraries they run write files of their own in the home
  (DuckDB's write-ahead log, which DuckDB deletes and recreates at every checkpoint;
  the Prefect server's SQLite database and logs) whose modes no call of ours sets.
- A home made by a release before this rule is tightened once, as a migration
  (``tighten``: folders 0700, files lose their group and other bits), and then
  carries the marker ``.private`` so that later opens cost one ``stat``.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from mlops_lite.crypto.keys import write_private

log = logging.getLogger(__name__)

MARKER = ".private"
"""Present in a home whose every path was made private (by this release or its migration)."""


def make_private_home(home: Path) -> None:
    """Create the home (0700) if it is missing; tighten a home made by an earlier release
    (once: the ``.private`` marker says it is done)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if home.stat().st_mode & 0o077:
        os.chmod(home, 0o700)
    if not (home / MARKER).exists():
        if tighten(home) == 0:
            write_private(home / MARKER, b"every path of this home is 0700 (folders) or 0600 (files) or stricter\n")


def tighten(home: Path) -> int:
    """Remove the group and other bits of every path under ``home`` (links are left
    alone: their targets are not the home's). Answers how many paths could not be changed
    (owned by another user), each logged."""
    failed = 0
    for root, folders, files in os.walk(home):
        for name in (*folders, *files):
            path = os.path.join(root, name)
            try:
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode) or not mode & 0o077:
                    continue
                os.chmod(path, 0o700 if stat.S_ISDIR(mode) else stat.S_IMODE(mode) & 0o700)
            except FileNotFoundError:
                continue  # removed meanwhile (a temporary file, a checkpointed WAL)
            except OSError as exc:
                failed += 1
                log.warning("could not make %s private: %s", path, exc)
    return failed


def private_umask() -> None:
    """New files 0600 and folders 0700 (the umask 077) in this process and the processes it
    starts. Only for a process that owns a home and writes nothing for its user elsewhere."""
    current = os.umask(0o077)
    os.umask(current | 0o077)
