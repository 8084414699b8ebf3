"""``platform.tokens`` over HTTP (role admin). The server records the caller's token as
the actor of each change; ``actor=`` is accepted for the local signature and not sent."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from mlops_lite.records import Grant, Identity, TokenRecord
from mlops_lite.security.roles import parse_grant

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform


class RemoteTokens:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def create(self, name: str, role: str, *, grants: Iterable[Grant | str] = (),
               expires_in: timedelta | None = None, service: str | None = None,
               actor: str | None = None) -> tuple[Identity, str]:
        request = _request(name, role, grants, expires_in)
        if service is not None:
            request["service"] = service
        body = self._remote.request("POST", "/v1/tokens", json=request)
        return _identity(body, str(body.get("kind") or "token")), str(body["token"])

    def create_access_key(self, name: str, role: str, *, grants: Iterable[Grant | str] = (),
                          expires_in: timedelta | None = None,
                          actor: str | None = None) -> tuple[Identity, str, str]:
        body = self._remote.request("POST", "/v1/access-keys", json=_request(name, role, grants, expires_in))
        return _identity(body, "access_key"), str(body["access_key_id"]), str(body["secret_access_key"])

    def list(self) -> builtins.list[TokenRecord]:
        return msgspec.convert(self._remote.request("GET", "/v1/tokens"), type=builtins.list[TokenRecord],
                               strict=False)

    def revoke(self, token_id: str, *, actor: str | None = None) -> TokenRecord:
        # Quoted: an id is the caller's text, and a '/' or '?' in it must reach the server as text.
        body = self._remote.request("POST", f"/v1/tokens/{quote(str(token_id), safe='')}/revoke")
        return msgspec.convert(body, type=TokenRecord, strict=False)

    def count(self) -> int:
        return int(self._remote.request("GET", "/v1/tokens/count")["count"])


def _request(name: str, role: str, grants: Iterable[Grant | str], expires_in: timedelta | None) -> dict[str, Any]:
    # Grant text is parsed here (a bad one is refused before anything is sent); the server checks the rest.
    parsed = [parse_grant(g) if isinstance(g, str) else g for g in grants]
    body: dict[str, Any] = {"name": name, "role": role,
                            "grants": [{"role": g.role, "models": g.models, "repositories": g.repositories}
                                       for g in parsed]}
    if expires_in is not None:
        body["expires_in"] = expires_in.total_seconds()
    return body


def _identity(body: dict[str, Any], kind: str) -> Identity:
    grants = tuple(Grant(role=g["role"], models=g.get("models"), repositories=g.get("repositories"))
                   for g in body.get("grants") or ())
    return Identity(name=body["name"], role=body["role"], token_id=body["id"], kind=kind, grants=grants)
