"""Who is calling: one place that turns a request's credentials into an Identity and
checks it against the role (and resource) a route declares.

- ``Authorization: Bearer <secret>``: a token of this installation (``mll_...``) or a
  JWT from a configured OIDC issuer (``platform.identities`` decides which).
- ``Authorization: Basic ...``: a lakeFS-style access key (the /api/v1 routes only).

Routes declare ``opt={"permission": ROLE}`` (/v1, /v2) or ``opt={"lakefs": ROLE}``
(/api/v1), and may name the path parameter that holds the resource a grant can cover:
``opt={"model_param": "model"}`` or ``opt={"repository_param": "repository"}``. The guard
lets an identity through when its role, or a grant on that resource, is high enough;
a route whose resource is in the body checks it in the core."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler

from mlops_lite import Platform, Unauthenticated
from mlops_lite.records import Identity
from mlops_lite.security.roles import highest_role, require, role_rank


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


def resource_of(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> dict[str, str]:
    """The model or repository a route acts on, from the path parameter it names."""
    found: dict[str, str] = {}
    for kind, option in (("model", "model_param"), ("repository", "repository_param")):
        param = handler.opt.get(option)
        if param is not None and param in connection.path_params:
            found[kind] = str(connection.path_params[param])
    return found


def check(identity: Identity, needed: str, resource: dict[str, str]) -> None:
    """The route's role, globally or through a grant on the route's resource. A route with
    no resource in its path lets through an identity that holds the role through any grant
    (the core checks the resource named in the body)."""
    if resource:
        require(identity, needed, **resource)
    elif role_rank(highest_role(identity)) >= role_rank(needed) and identity.grants:
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
    platform: Platform = connection.app.state.platform
    try:
        identity = await authenticate_bearer(platform, bearer_secret(connection))
    except Unauthenticated as exc:
        await failed_authentication(connection, exc)
        raise
    check(identity, handler.opt["permission"], resource_of(connection, handler))
    connection.state.identity = identity


async def authorize_lakefs(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The /api/v1 guard: an access key (HTTP Basic) or a bearer token, and the route's role."""
    needed = handler.opt.get("lakefs")
    if needed is None:
        return
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
    check(identity, needed, resource_of(connection, handler))
    connection.state.identity = identity
