"""``platform.keys`` over HTTP (role admin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mlops_lite.records import KeyRotation, KeysStatus

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform


class RemoteKeys:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def status(self) -> KeysStatus:
        return msgspec.convert(self._remote.request("GET", "/v1/keys"), type=KeysStatus, strict=False)

    def rotate(self, *, actor: str | None = None) -> KeyRotation:
        return msgspec.convert(self._remote.request("POST", "/v1/keys/rotate"), type=KeyRotation, strict=False)
