"""``mlops-lite init``: the home folder, its config file, database and admin token."""

from __future__ import annotations

import os
import re
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


def init_home(settings: Settings, *, encryption: bool | None = None) -> InitResult:
    """Create what is missing and keep what exists: running it twice changes nothing.
    ``encryption=False``: a new home is made plaintext (``encryption = false`` is written
    to its config); refused for a home that exists already, whose state stays as it is."""
    from mlops_lite.crypto.keys import write_private
    from mlops_lite.privacy.home import make_private_home
    from mlops_lite.privacy.protection import is_new_home

    make_private_home(settings.home)
    if encryption is False:
        if not is_new_home(settings) or settings.keyring_file.exists():
            from mlops_lite.errors import Conflict

            raise Conflict(f"the home {settings.home} exists already: --no-encryption is only for a new home "
                           "(an encrypted home stays encrypted)")
        settings = settings.model_copy(update={"encryption": False})
    if not settings.config_file.exists():
        # 0600: a database_url in it may carry a password
        write_private(settings.config_file,
                      (DEFAULT_TOML + ("\nencryption = false\n" if encryption is False else "")).encode())
    elif encryption is False and not re.search(r"^\s*encryption\s*=", settings.config_file.read_text(), re.M):
        with open(settings.config_file, "a") as out:
            out.write("\n# `mlops-lite init --no-encryption`: this home is plaintext at rest\nencryption = false\n")
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
