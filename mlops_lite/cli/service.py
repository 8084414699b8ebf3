"""The credentials ``mlops-lite worker`` and ``mlops-lite serve --workers N`` run with: a
service identity of their own, never the admin token (docs/zero-trust.md).

Which token, in order: the one the environment names (``$MLOPS_LITE_TOKEN``; for a
replica ``$MLOPS_LITE_SERVE_TOKEN`` first); the one enrolled on this host
(``<home>/services/<service>.token``); else, on the daemon's host (the home's admin token
is readable there), one enrolled now: the admin token asks the daemon for a ``service``
token with the service's role, kept 0600 for the next start, and is not used again. A token
whose role is admin is refused unless ``--allow-admin-token``: a worker runs whatever flow
run anyone who reaches Prefect starts, and a replica needs no more than ``predictor``."""

from __future__ import annotations

import base64
import logging
import os
import socket
from typing import Any

from mlops_lite.cli.common import err, read_admin_token
from mlops_lite.config import Settings, prefect_auth
from mlops_lite.errors import BackendUnavailable, InvalidInput, PermissionDenied, Unauthenticated

log = logging.getLogger("mlops_lite.service")


def service_token(settings: Settings, service: str, url: str, *, explicit: str | None,
                  allow_admin_token: bool) -> tuple[str, dict[str, Any]]:
    """The token ``service`` (``worker`` or ``replica``) runs with against the API at ``url``,
    and who it is (``/v1/whoami``). Fails now, clearly, rather than in every flow run or
    request: Unauthenticated for a refused token, PermissionDenied for an admin token
    without ``allow_admin_token``, InvalidInput when there is none at all."""
    from mlops_lite.client import RemotePlatform
    from mlops_lite.security.service import keep_service_token, read_service_token, service_role

    role = service_role(service)
    token, source = explicit, "the environment"
    if token is None:
        token, source = read_service_token(settings, service), f"{settings.services_dir}/{service}.token"
    if token is None:
        admin = read_admin_token(settings)
        if admin is None:
            raise InvalidInput(
                f"no token for this {service}: set $MLOPS_LITE_TOKEN to a token made with `mlops-lite token "
                f"create --name NAME --service {service}` on the daemon's host", field="token",
                expected=f"a {service} service token (role {role})")
        name = f"{service}@{socket.gethostname()}"
        with RemotePlatform(url, admin) as remote:
            identity, token = remote.tokens.create(name, role, service=service)
        path = keep_service_token(settings, service, token)
        source = str(path)
        err.print(f"enrolled the {service} service identity {identity.name} (role {role}, token "
                  f"{identity.token_id}); kept in {path}, mode 0600", highlight=False)
    with RemotePlatform(url, token) as remote:
        try:
            who: dict[str, Any] = remote.request("GET", "/v1/whoami")
        except Unauthenticated as exc:
            raise Unauthenticated(f"the token from {source} was refused by {url} ({exc.message}); enroll again: "
                                  f"remove {settings.services_dir}/{service}.token, or create another with "
                                  f"`mlops-lite token create --service {service}`") from exc
    if who.get("role") == "admin":
        if not allow_admin_token:
            raise PermissionDenied(
                f"this {service} was given an admin token (from {source}); it needs only {role!r}: use a service "
                f"identity (`mlops-lite token create --name NAME --service {service}`), or pass "
                "--allow-admin-token to run with full rights anyway", details={"needed": role, "role": "admin"})
        message = (f"WARNING: the {service} runs with an admin token (--allow-admin-token): whoever starts a flow "
                   "run or reaches it acts with full rights")
        log.warning(message)
        err.print(f"[bold red]{message}[/]", highlight=False)
    return token, who


def prefect_client_environment(settings: Settings, prefect_api: str) -> dict[str, str]:
    """What a worker's Prefect client sends to the daemon's Prefect server: its auth string
    (``$PREFECT_API_AUTH_STRING``, else this home's ``prefect.auth``), checked now against
    an authenticated route, so a missing or wrong one fails here, naming the fix."""
    import httpx

    auth = os.environ.get("PREFECT_API_AUTH_STRING") or prefect_auth(settings)
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        answer = httpx.get(f"{prefect_api.rstrip('/')}/admin/version", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"the Prefect server at {prefect_api} cannot be reached: {exc}") from exc
    if answer.status_code == 401:
        raise Unauthenticated(
            f"the Prefect server at {prefect_api} asks for its auth string and "
            f"{'refused the one given' if auth else 'none was given'}: set $PREFECT_API_AUTH_STRING to the "
            "content of prefect.auth in the daemon's home (mode 0600; copy it over a secure channel)")
    return {"PREFECT_API_AUTH_STRING": auth} if auth else {}
