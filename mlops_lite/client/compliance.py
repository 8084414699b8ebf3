"""``platform.compliance`` over HTTP: the same records the server's platform answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from mlops_lite.records import ComplianceReport, ResidencyEntry

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform


class RemoteCompliance:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def residency(self) -> list[ResidencyEntry]:
        return msgspec.convert(self._remote.request("GET", "/v1/compliance/residency"),
                               type=list[ResidencyEntry], strict=False)

    def check_transfer(self, repository: str, region: str, *, actor: str | None = None) -> None:
        self._remote.request("POST", "/v1/compliance/transfers", json={"repository": repository, "region": region})

    def report(self) -> ComplianceReport:
        return msgspec.convert(self._remote.request("GET", "/v1/compliance/report"), type=ComplianceReport,
                               strict=False)
