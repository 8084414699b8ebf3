"""``platform.audit`` over HTTP: the server's chain, read, exported and verified there
(with the installation's audit key, which never leaves the server). The roles each read
needs are in ``server/audit.py``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from mlops_lite.records import AuditCheckpoint, AuditRecord, AuditVerdict

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform


class RemoteAudit:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def events(self, limit: int = 100) -> list[AuditRecord]:
        body = self._remote.request("GET", "/v1/audit/events", params={"limit": limit})
        return msgspec.convert(body, type=list[AuditRecord], strict=False)

    def about(self, object: str, *, action_prefix: str = "") -> list[AuditRecord]:
        body = self._remote.request("GET", "/v1/audit/about", params={"object": object,
                                                                      "action_prefix": action_prefix})
        return msgspec.convert(body, type=list[AuditRecord], strict=False)

    def count(self) -> int:
        return int(self._remote.request("GET", "/v1/audit/count")["count"])

    def export(self, since: datetime | None = None) -> list[dict[str, Any]]:
        params = None if since is None else {"since": since.isoformat()}
        return list(self._remote.request("GET", "/v1/audit/export", params=params))

    def verify(self) -> AuditRecord | None:
        first_bad = self._remote.request("GET", "/v1/audit/verify")["first_bad"]
        return None if first_bad is None else msgspec.convert(first_bad, type=AuditRecord, strict=False)

    def verify_signed(self) -> AuditVerdict:
        signed = self._remote.request("GET", "/v1/audit/verify")["signed"]
        return msgspec.convert(signed, type=AuditVerdict, strict=False)

    def checkpoint(self) -> AuditCheckpoint:
        return msgspec.convert(self._remote.request("POST", "/v1/audit/checkpoints"), type=AuditCheckpoint,
                               strict=False)

    def checkpoints(self) -> list[AuditCheckpoint]:
        return msgspec.convert(self._remote.request("GET", "/v1/audit/checkpoints"), type=list[AuditCheckpoint],
                               strict=False)

    def public_key(self) -> str:
        return str(self._remote.request("GET", "/v1/audit/public-key")["public_key"])
