"""``platform.alerts`` over HTTP (``server/alerts.py``): the same verbs, records and
errors as the local facet; acknowledging, silencing and lifting are done by the
caller's token. Rules are evaluated where the figures are, on the server."""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import msgspec

from mlops_lite.alerts.rules import AlertRule, check_until
from mlops_lite.records import AlertRecord, SilenceRecord

if TYPE_CHECKING:
    from mlops_lite.client.remote import RemotePlatform

T = TypeVar("T")


def _convert(data: Any, type_: type[T]) -> T:
    return msgspec.convert(data, type=type_, strict=False)


def _id(value: str) -> str:
    # Quoted: an id is the caller's text, and a '/' or '?' in it must reach the server as text.
    return quote(str(value), safe="")


class RemoteAlerts:
    def __init__(self, remote: RemotePlatform) -> None:
        self._remote = remote

    def list(self, state: str | None = None, subject: str | None = None, limit: int = 100) -> list[AlertRecord]:
        params = {k: v for k, v in {"state": state, "subject": subject, "limit": limit}.items() if v is not None}
        return _convert(self._remote.request("GET", "/v1/alerts", params=params), list[AlertRecord])

    def open_alerts(self) -> builtins.list[AlertRecord]:
        return _convert(self._remote.request("GET", "/v1/alerts/open"), builtins.list[AlertRecord])

    def get(self, id: str) -> AlertRecord:
        return _convert(self._remote.request("GET", f"/v1/alerts/{_id(id)}"), AlertRecord)

    def acknowledge(self, id: str) -> AlertRecord:
        return _convert(self._remote.request("POST", f"/v1/alerts/{_id(id)}/acknowledge"), AlertRecord)

    def rules(self) -> builtins.list[AlertRule]:
        return _convert(self._remote.request("GET", "/v1/alerts/rules"), builtins.list[AlertRule])

    def silence(self, rule: str | None = None, subject: str | None = None, *, until: datetime | timedelta,
                reason: str) -> SilenceRecord:
        until = check_until(until)
        body: dict[str, Any] = {"rule": rule, "subject": subject, "reason": reason}
        if isinstance(until, timedelta):
            body["duration_s"] = until.total_seconds()
        else:
            body["until"] = until.isoformat()
        return _convert(self._remote.request("POST", "/v1/silences", json=body), SilenceRecord)

    def silences(self, active: bool = True) -> builtins.list[SilenceRecord]:
        params = {"active": "true" if active else "false"}
        return _convert(self._remote.request("GET", "/v1/silences", params=params), builtins.list[SilenceRecord])

    def lift_silence(self, id: str) -> SilenceRecord:
        return _convert(self._remote.request("POST", f"/v1/silences/{_id(id)}/lift"), SilenceRecord)
