"""Every path of a home is private to its owner (folders 0700, files 0600), whoever
creates it: ``init``, ``connect()`` on a new home, the daemon, a flow run."""

from __future__ import annotations

import os
from pathlib import Path


def make_private_home(home: Path) -> None:
    """Create the home (0700) if it is missing, and make it 0700 if it is not; files
    created under it get 0600 through the umask of this process."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if home.stat().st_mode & 0o077:
        os.chmod(home, 0o700)
    private_umask()


def private_umask() -> None:
    """New files 0600 and folders 0700 (the umask 077) in this process."""
    current = os.umask(0o077)
    os.umask(current | 0o077)
