"""``platform.flows`` over HTTP: the daemon reads its Prefect server for the caller
(``server/flows.py`` names the role each read needs)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from mlops_lite.records import FlowLogRecord, FlowRunRecord

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform


class RemoteFlows:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def runs(self, *, limit: int = 50, flow: str | None = None) -> list[FlowRunRecord]:
        params: dict[str, str | int] = {"limit": limit}
        if flow is not None:
            params["flow"] = flow
        body = self._remote.request("GET", "/v1/flows/runs", params=params)
        return msgspec.convert(body, type=list[FlowRunRecord], strict=False)

    def logs(self, flow_run_id: str, *, after: datetime | None = None, limit: int = 500) -> list[FlowLogRecord]:
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after.isoformat()
        body = self._remote.request("GET", f"/v1/flows/runs/{flow_run_id}/logs", params=params)
        return msgspec.convert(body, type=list[FlowLogRecord], strict=False)
