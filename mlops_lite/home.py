"""``mlops-lite init``: the home folder, its config file, database and admin token."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlops_lite.config import DEFAULT_TOML, Settings


@dataclass(frozen=True)
class InitResult:
    home: Path
    config_file: Path
    database: str
    token_file: Path
    token: str | None
    """The admin token when this call created it; None when the home already had one."""


def init_home(settings: Settings) -> InitResult:
    """Create what is missing and keep what exists: running it twice changes nothing."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    if not settings.config_file.exists():
        settings.config_file.write_text(DEFAULT_TOML)
    from mlops_lite.platform import Platform  # the stores' libraries: only when a home is made
    from mlops_lite.security.service import ensure_prefect_auth

    ensure_prefect_auth(settings)
    settings.inbox.mkdir(mode=0o700, exist_ok=True)
    token: str | None = None
    with Platform(settings, actor="system:init") as platform:
        if not settings.token_file.exists():
            _, token = platform.tokens.create("admin", "admin", actor="system:init")
            fd = os.open(settings.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(token + "\n")
    return InitResult(home=settings.home, config_file=settings.config_file, database=settings.sql_url,
                      token_file=settings.token_file, token=token)


def read_admin_token(settings: Settings) -> str | None:
    try:
        return settings.token_file.read_text().strip() or None
    except FileNotFoundError:
        return None
