"""``platform.monitoring`` over HTTP: the prediction log and feedback of the server that
serves the deployments.

A query's answer travels as JSON (``server/monitoring.py``): the column names, their
Arrow types, the Arrow schema itself (base64 of its IPC form) and the rows as JSON
values; the client rebuilds the same pyarrow Table from them. JSON has no NaN or
infinity, so those arrive as nulls.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from mlops_lite.records import PredictionTrace

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops_lite.client.remote import RemotePlatform

QUERY_MAX_ROWS = 10_000  # rows one answer brings unless asked for more (the server allows up to 100,000)


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

    def query(self, sql: str, *, max_rows: int = QUERY_MAX_ROWS) -> pa.Table:
        """The same query, answered by the server as a pyarrow Table of at most ``max_rows``
        rows (a warning says when rows were left out). Over HTTP only one SELECT or WITH
        over the views ``predictions`` and ``feedback`` runs (see ``server/monitoring.py``)."""
        body = self._remote.request("POST", "/v1/monitoring/query", json={"sql": sql, "max_rows": max_rows})
        if body.get("truncated"):
            warnings.warn(f"the monitoring query's answer was cut at max_rows={max_rows} rows; add a LIMIT or "
                          "an aggregate, or ask for more rows", stacklevel=2)
        return table_from_json(body)


def table_from_json(body: dict[str, Any]) -> pa.Table:
    """The pyarrow Table of a query answer: its schema from ``schema``, its values from
    ``rows`` (times, dates, decimals and bytes converted back from their JSON text)."""
    import pyarrow as pa

    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(body["schema"])))
    rows = body["rows"]
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = [pa.array(_python_values(list(values), field.type), type=field.type)
              for values, field in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _python_values(values: list[Any], kind: pa.DataType) -> list[Any]:
    import pyarrow as pa

    python: type | None = None
    if pa.types.is_timestamp(kind):
        python = datetime
    elif pa.types.is_date(kind):
        python = date
    elif pa.types.is_time(kind):
        python = time
    elif pa.types.is_duration(kind):
        python = timedelta
    elif pa.types.is_decimal(kind):
        python = Decimal
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        python = bytes
    if python is None:
        return values
    converted: list[Any] = msgspec.convert(values, type=list[python | None], strict=False)  # type: ignore[valid-type]
    return converted
