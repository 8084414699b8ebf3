"""Token routes: bearer tokens and access keys, created (the secret in that answer only),
listed (never a secret), counted and revoked. Every route needs the admin role; the
caller's token is recorded as the actor of each change. Mounted under /v1 with its
bearer guard."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post

from mlops_lite.records import TokenRecord
from server.context import actor as _actor
from server.context import platform as _platform


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: str






@get("/tokens", opt={"permission": "admin"}, sync_to_thread=True)
def list_tokens(request: Request[Any, Any, Any]) -> list[TokenRecord]:
    """Every token and access key, oldest first, never a secret."""
    return _platform(request).tokens.list()


@get("/tokens/count", opt={"permission": "admin"}, sync_to_thread=True)
def count_tokens(request: Request[Any, Any, Any]) -> dict[str, int]:
    """How many tokens and access keys exist (revoked ones too)."""
    return {"count": _platform(request).tokens.count()}


@post("/tokens", opt={"permission": "admin"}, status_code=201, sync_to_thread=True)
def create_token(request: Request[Any, Any, Any], data: TokenRequest) -> dict[str, Any]:
    """A bearer token; its secret is in this answer only."""
    identity, secret = _platform(request).tokens.create(data.name, data.role, actor=_actor(request))
    return {"id": identity.token_id, "name": identity.name, "role": identity.role, "token": secret}


@post("/access-keys", opt={"permission": "admin"}, status_code=201, sync_to_thread=True)
def create_access_key(request: Request[Any, Any, Any], data: TokenRequest) -> dict[str, Any]:
    """An access key for lakeFS clients (HTTP Basic on /api/v1); its secret is in this
    answer only."""
    identity, key_id, secret = _platform(request).tokens.create_access_key(data.name, data.role,
                                                                           actor=_actor(request))
    return {"id": identity.token_id, "name": identity.name, "role": identity.role, "access_key_id": key_id,
            "secret_access_key": secret}


@post("/tokens/{token_id:str}/revoke", opt={"permission": "admin"}, status_code=200, sync_to_thread=True)
def revoke_token(request: Request[Any, Any, Any], token_id: str) -> TokenRecord:
    """Revoke a token or access key: refused here at once, by serving workers within 30 s."""
    return _platform(request).tokens.revoke(token_id, actor=_actor(request))


TOKEN_ROUTES = [list_tokens, count_tokens, create_token, create_access_key, revoke_token]
