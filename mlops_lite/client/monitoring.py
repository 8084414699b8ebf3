"""``platform.monitoring`` over HTTP: the prediction log and feedback of the server that
serves the deployments. A query's answer comes as an Arrow IPC stream, so the table has
the server's types and values exactly (``server/monitoring.py`` also answers JSON)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from mlops_lite.client.tracking import ARROW_STREAM
from mlops_lite.records import PredictionTrace, TrafficWindow

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops_lite.client.remote import RemotePlatform

QUERY_MAX_ROWS = 10_000  # rows one answer brings unless asked for more (the server allows up to 100,000)
TRUNCATED = b"mlops_lite.truncated"  # in the answer's schema metadata when rows were left out


class RemoteMonitoring:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def trace(self, request_id: str) -> PredictionTrace:
        # Quoted: an id is the caller's text, and a '/' or '?' in it must reach the server as text.
        path = f"/v1/predictions/{quote(str(request_id), safe='')}/trace"
        return msgspec.convert(self._remote.request("GET", path), type=PredictionTrace, strict=False)

    def stats(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._remote.request("GET", "/v1/monitoring/stats").items()}

    def record_feedback(self, deployment: str, labels: Sequence[tuple[str, int | str]]) -> int:
        # Pairs go as JSON arrays, unchecked: the server checks them as the local facet does,
        # so a bad pair is refused with the same field and message.
        items = [list(item) if isinstance(item, tuple) else item for item in labels] \
            if isinstance(labels, list | tuple) else None
        body = self._remote.request("POST", f"/v1/deployments/{quote(str(deployment), safe='')}/feedback",
                                    json={"labels": items})
        return int(body["recorded"])

    def windows(self, *, count: int = 12, width_s: int = 300, until: datetime | str | None = None,
                deployment: str | None = None) -> list[TrafficWindow]:
        params: dict[str, Any] = {"count": count, "width_s": width_s}
        if until is not None:
            params["until"] = until.isoformat() if isinstance(until, datetime) else until
        if deployment is not None:
            params["deployment"] = deployment
        body = self._remote.request("GET", "/v1/monitoring/windows", params=params)
        return msgspec.convert(body, type=list[TrafficWindow], strict=False)

    def query(self, sql: str, *, max_rows: int = QUERY_MAX_ROWS) -> pa.Table:
        """The same query, answered by the server as a pyarrow Table of at most ``max_rows``
        rows (a warning says when rows were left out). Over HTTP only one SELECT or WITH
        over the views ``predictions`` and ``feedback`` runs (see ``server/monitoring.py``)."""
        import pyarrow as pa

        raw = self._remote.request_bytes("POST", "/v1/monitoring/query", json={"sql": sql, "max_rows": max_rows},
                                         headers={"Accept": ARROW_STREAM})
        table = pa.ipc.open_stream(raw).read_all()
        metadata = dict(table.schema.metadata or {})
        if metadata.pop(TRUNCATED, None) is not None:
            warnings.warn(f"the monitoring query's answer was cut at max_rows={max_rows} rows; add a LIMIT or "
                          "an aggregate, or ask for more rows", stacklevel=2)
            table = table.replace_schema_metadata(metadata or None)
        return table
