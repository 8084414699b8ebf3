"""The credentials the node's own parts hold to reach each other (docs/zero-trust.md).

- The Prefect server's auth string (``<home>/prefect.auth``, mode 0600, ``user:password``):
  ``mlops-lite up`` starts Prefect with it (``PREFECT_SERVER_API_AUTH_STRING``) and every
  Prefect client of ours sends it (``PREFECT_API_AUTH_STRING``, set by
  ``config.prefect_environment``): the daemon's jobs, ``mlops-lite worker`` and its flow
  runs, the demo. A request without it is answered 401.
- Service identities: a Prefect worker and a serving replica each hold a bearer token of
  kind ``service`` with the narrowest role it needs (``SERVICES``), never the admin token.
  One enrolled on the daemon's host is kept in ``<home>/services/<service>.token`` (0600).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from mlops_lite.config import Settings, prefect_auth
from mlops_lite.errors import InvalidInput

# What each service does with the API, and so the role it gets: a worker records runs and
# reads the data repositories it trains on; a replica polls routes and checks its callers'
# tokens, and can neither read data nor change anything.
SERVICES: dict[str, str] = {"worker": "operator", "replica": "predictor"}


def service_role(service: str) -> str:
    """The role a service identity is issued. InvalidInput (``service``) for another name."""
    try:
        return SERVICES[service]
    except (KeyError, TypeError):
        raise InvalidInput(f"unknown service {service!r}", field="service",
                           expected=" | ".join(SERVICES)) from None


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from the first byte),
    replacing what was there in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_prefect_auth(settings: Settings) -> str:
    """The home's Prefect auth string, made now (random, 0600) when the home has none:
    homes made before it get one on their next ``init`` or ``up``."""
    existing = prefect_auth(settings)
    if existing is not None:
        return existing
    auth = f"mlops-lite:{secrets.token_urlsafe(32)}"
    write_secret(settings.prefect_auth_file, auth)
    return auth


def service_token_file(settings: Settings, service: str) -> Path:
    service_role(service)
    return settings.services_dir / f"{service}.token"


def read_service_token(settings: Settings, service: str) -> str | None:
    """The token enrolled for ``service`` on this host, or None."""
    try:
        return service_token_file(settings, service).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


def keep_service_token(settings: Settings, service: str, secret: str) -> Path:
    path = service_token_file(settings, service)
    write_secret(path, secret)
    return path
