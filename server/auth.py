"""Who is calling: one place that turns a request's credentials into an Identity and
checks it against the role (and resource) a route declares.

- ``Authorization: Bearer <secret>``: a token of this installation (``mll_...``) or a
  JWT from a configured OIDC issuer (``platform.identities`` decides which).
- ``Authorization: Basic ...``: a lakeFS-style access key (the /api/v1 routes only).

Routes declare ``opt={"permission": ROLE}`` (/v1, /v2) or ``opt={"lakefs": ROLE}``
(/api/v1), and say what a grant can cover:

- ``"model_param"`` / ``"repository_param"``: the path parameter naming the model or data
  repository acted on;
- ``"deployment_param"``: the path parameter naming a deployment; it acts on the models
  the deployment serves (primary and candidate), looked up only for a caller with grants
  whose global role is not enough;
- ``"resource": "body"``: the body names the model or repository, and the handler (or the
  core, given the Identity) checks it with ``require`` before acting; ``"resource": "any"``:
  what the route acts on belongs to no model or repository (experiments, runs), so the
  role held through any grant is enough.

Anything else (SQL, audit, tokens, status, alerts, lists) needs the global role: a grant
never lifts a route that names no resource. The guard lets an identity through when its
global role, or a grant on every resource the route acts on, is high enough."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler

from mlops_lite import PermissionDenied, Platform, Unauthenticated
from mlops_lite.records import Identity
from mlops_lite.security.roles import highest_role, require, role_rank
from server.audit import record_failed_login
from server.hardening import failed_logins, failure_keys, proxies_of


def bearer_secret(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme, _, secret = connection.headers.get("authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
    return secret


def basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise Unauthenticated("an access key is required (HTTP Basic: access key id, secret access key)")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthenticated("the Basic credentials are not valid base64") from exc
    key_id, _, secret = decoded.partition(":")
    return key_id, secret


async def authenticate_bearer(platform: Platform, secret: str) -> Identity:
    """The identity of a bearer secret. A secret seen before is answered from memory on
    the event loop; a new one is looked up (a store or network read) off it. A JWT goes to
    the OIDC verifier when issuers are configured (a serving replica has none: its tokens
    facet asks the control plane, which verifies the JWT)."""
    identities = getattr(platform, "identities", None)
    if identities is not None and identities.accepts(secret):
        federated = identities.cached(secret)
        if federated is None:
            federated = await anyio.to_thread.run_sync(identities.authenticate, secret)
        return federated
    identity = platform.tokens.cached(secret)
    if identity is None:
        identity = await anyio.to_thread.run_sync(platform.tokens.authenticate, secret)
    return identity


async def failed_authentication(connection: ASGIConnection[Any, Any, Any, Any], exc: Unauthenticated) -> None:
    """Every refused credential passes here once, before its 401 is sent: the place to
    count failures (rate limiting) and to record them (the audit chain)."""
    failed_logins(connection.app).record(_failure_keys(connection))
    await record_failed_login(connection)  # counted per client and minute: see server/audit.py


def _failure_keys(connection: ASGIConnection[Any, Any, Any, Any]) -> list[str]:
    client = connection.client.host if connection.client else None
    return failure_keys(client, connection.headers.get("authorization", ""), proxies=proxies_of(connection.app),
                        forwarded_for=connection.headers.get("x-forwarded-for", ""))


def refuse_while_throttled(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """429 (TooManyFailures, with Retry-After) while this client, or the identity its
    credential claims, is past its failed authentications; the credential is not checked."""
    failed_logins(connection.app).check(_failure_keys(connection))


def resource_of(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> dict[str, str]:
    """The model or repository a route acts on, from the path parameter it names."""
    found: dict[str, str] = {}
    for kind, option in (("model", "model_param"), ("repository", "repository_param")):
        param = handler.opt.get(option)
        if param is not None and param in connection.path_params:
            found[kind] = str(connection.path_params[param])
    return found


RESOURCE_SCOPES = ("body", "any")


def served_models(platform: Platform, deployment: str) -> list[str]:
    """The models a deployment serves (primary, then candidate); none when it does not exist."""
    for record in platform.deployments.list():
        if record.name == deployment:
            return list(dict.fromkeys(m for m in (record.model, record.candidate_model) if m))
    return []


async def resources_of(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler,
                       identity: Identity, needed: str) -> list[dict[str, str]]:
    """Every resource the route acts on: its path's model or repository, and the models of
    the deployment it names (read only for an identity with grants whose global role is not
    enough on its own: no one else can be let in by them)."""
    found = resource_of(connection, handler)
    resources = [found] if found else []
    param = handler.opt.get("deployment_param")
    if (param is not None and param in connection.path_params and identity.grants
            and role_rank(identity.role) < role_rank(needed)):
        platform: Platform = connection.app.state.platform
        models = await anyio.to_thread.run_sync(served_models, platform, str(connection.path_params[param]))
        resources += [{"model": model} for model in models]
    return resources


def check(identity: Identity, needed: str, resource: dict[str, str] | Sequence[dict[str, str]],
          scope: str | None = None) -> None:
    """The route's role, globally or through grants covering every resource it acts on.
    With none: a ``scope`` of "body" or "any" lets through an identity holding the role
    through any grant (the body's resource is checked where it is read); otherwise only
    the global role counts."""
    if role_rank(identity.role) >= role_rank(needed):
        return
    resources = [r for r in ([resource] if isinstance(resource, dict) else resource) if r]
    # Without grants only the global role counts, and the refusal says so without a resource.
    if resources and identity.grants:
        for one in resources:
            require(identity, needed, **one)
    elif scope in RESOURCE_SCOPES and role_rank(highest_role(identity)) >= role_rank(needed):
        return
    else:
        require(identity, needed)


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The /v1 and /v2 guard: a bearer token, and the route's declared permission.

    Async on purpose: Litestar runs a sync guard on a worker thread, which costs more
    than the check."""
    scope = connection.scope
    if "permission" not in handler.opt and scope["type"] == ScopeType.HTTP and scope["method"] == "OPTIONS":
        # Litestar's automatic OPTIONS handler declares no role: it answers only the Allow
        # header (the methods the OpenAPI already shows), so it needs no token. Any other
        # route without a role still fails closed below.
        return
    refuse_while_throttled(connection)
    platform: Platform = connection.app.state.platform
    try:
        identity = await authenticate_bearer(platform, bearer_secret(connection))
    except Unauthenticated as exc:
        await failed_authentication(connection, exc)
        raise
    needed = handler.opt.get("permission")
    if needed is None:
        # Fail closed, and as a refusal rather than a server error: a route that declares
        # no role is open to no one (tests/e2e/test_route_matrix.py finds it first).
        raise PermissionDenied(f"{connection.scope['path']} declares no role; nobody may call it",
                               details={"needed": None})
    check(identity, needed, await resources_of(connection, handler, identity, needed), handler.opt.get("resource"))
    connection.state.identity = identity


async def authorize_lakefs(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The /api/v1 guard: an access key (HTTP Basic) or a bearer token, and the route's role."""
    needed = handler.opt.get("lakefs")
    if needed is None:
        return
    refuse_while_throttled(connection)
    platform: Platform = connection.app.state.platform
    header = connection.headers.get("authorization", "")
    scheme, _, bearer = header.partition(" ")
    try:
        if scheme.lower() == "bearer":
            # lakeFS also takes bearer tokens; ours are the API tokens (RemotePlatform.data uses them).
            identity = await authenticate_bearer(platform, bearer.strip())
        else:
            key_id, secret = basic_credentials(header)
            identity = await anyio.to_thread.run_sync(platform.tokens.authenticate_access_key, key_id, secret)
    except Unauthenticated as exc:
        await failed_authentication(connection, exc)
        raise
    check(identity, needed, await resources_of(connection, handler, identity, needed), handler.opt.get("resource"))
    connection.state.identity = identity
