"""Token routes: bearer tokens and access keys, created (the secret in that answer only),
listed (never a secret), counted and revoked. Every route needs the admin role; the
caller's token is recorded as the actor of each change. Mounted under /v1 with its
bearer guard."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post

from mlops_lite.records import Grant, Identity, TokenRecord
from server.context import actor as _actor
from server.context import platform as _platform


class GrantIn(msgspec.Struct, forbid_unknown_fields=True):
    """A role on the models matching ``models`` or the repositories matching ``repositories``
    (a glob; one of the two)."""

    role: str
    models: str | None = None
    repositories: str | None = None


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    role: str
    grants: list[GrantIn | str] = []
    # Seconds from now until it is refused (as OAuth says expires_in); absent: never expires.
    expires_in: Annotated[float, msgspec.Meta(gt=0)] | None = None

    def options(self) -> dict[str, Any]:
        return {"grants": [g if isinstance(g, str) else Grant(g.role, g.models, g.repositories) for g in self.grants],
                "expires_in": None if self.expires_in is None else timedelta(seconds=self.expires_in)}


class BearerTokenRequest(TokenRequest, forbid_unknown_fields=True):
    # "worker" or "replica": a service identity's token, with that service's role.
    service: str | None = None


def _answer(identity: Identity) -> dict[str, Any]:
    return {"id": identity.token_id, "name": identity.name, "role": identity.role, "kind": identity.kind,
            "grants": [{"role": g.role, "models": g.models, "repositories": g.repositories}
                       for g in identity.grants]}






@get("/tokens", opt={"permission": "admin"}, sync_to_thread=True)
def list_tokens(request: Request[Any, Any, Any]) -> list[TokenRecord]:
    """Every token and access key, oldest first, never a secret."""
    return _platform(request).tokens.list()


@get("/tokens/count", opt={"permission": "admin"}, sync_to_thread=True)
def count_tokens(request: Request[Any, Any, Any]) -> dict[str, int]:
    """How many tokens and access keys exist (revoked ones too)."""
    return {"count": _platform(request).tokens.count()}


@post("/tokens", opt={"permission": "admin"}, status_code=201, sync_to_thread=True)
def create_token(request: Request[Any, Any, Any], data: BearerTokenRequest) -> dict[str, Any]:
    """A bearer token (a service identity's with ``service``); its secret is in this answer only."""
    identity, secret = _platform(request).tokens.create(data.name, data.role, **data.options(), service=data.service,
                                                        actor=_actor(request))
    return {**_answer(identity), "token": secret}


@post("/access-keys", opt={"permission": "admin"}, status_code=201, sync_to_thread=True)
def create_access_key(request: Request[Any, Any, Any], data: TokenRequest) -> dict[str, Any]:
    """An access key for lakeFS clients (HTTP Basic on /api/v1); its secret is in this
    answer only."""
    identity, key_id, secret = _platform(request).tokens.create_access_key(data.name, data.role, **data.options(),
                                                                           actor=_actor(request))
    return {**_answer(identity), "access_key_id": key_id, "secret_access_key": secret}


@post("/tokens/{token_id:str}/revoke", opt={"permission": "admin"}, status_code=200, sync_to_thread=True)
def revoke_token(request: Request[Any, Any, Any], token_id: str) -> TokenRecord:
    """Revoke a token or access key: refused here at once, by serving workers within 30 s."""
    return _platform(request).tokens.revoke(token_id, actor=_actor(request))


TOKEN_ROUTES = [list_tokens, count_tokens, create_token, create_access_key, revoke_token]
