"""``platform.tokens`` over HTTP (role admin). The server records the caller's token as
the actor of each change; ``actor=`` is accepted for the local signature and not sent."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING
from urllib.parse import quote

import msgspec

from mlops_lite.records import Identity, TokenRecord

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform


class RemoteTokens:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def create(self, name: str, role: str, *, actor: str | None = None) -> tuple[Identity, str]:
        body = self._remote.request("POST", "/v1/tokens", json={"name": name, "role": role})
        return Identity(name=body["name"], role=body["role"], token_id=body["id"]), str(body["token"])

    def create_access_key(self, name: str, role: str, *, actor: str | None = None) -> tuple[Identity, str, str]:
        body = self._remote.request("POST", "/v1/access-keys", json={"name": name, "role": role})
        identity = Identity(name=body["name"], role=body["role"], token_id=body["id"])
        return identity, str(body["access_key_id"]), str(body["secret_access_key"])

    def list(self) -> builtins.list[TokenRecord]:
        return msgspec.convert(self._remote.request("GET", "/v1/tokens"), type=builtins.list[TokenRecord],
                               strict=False)

    def revoke(self, token_id: str, *, actor: str | None = None) -> TokenRecord:
        # Quoted: an id is the caller's text, and a '/' or '?' in it must reach the server as text.
        body = self._remote.request("POST", f"/v1/tokens/{quote(str(token_id), safe='')}/revoke")
        return msgspec.convert(body, type=TokenRecord, strict=False)

    def count(self) -> int:
        return int(self._remote.request("GET", "/v1/tokens/count")["count"])
