"""``platform.alerts`` over HTTP: alerts (list, open, get, acknowledge), the rules in
force, and silences (create, list, lift). Reads need a viewer, writes an operator; the
actor of a write is the caller's token. Mounted under /v1 with its bearer guard."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import Parameter

from mlops_lite import InvalidInput
from mlops_lite.alerts import AlertRecord, AlertRule, SilenceRecord
from mlops_lite.clock import parse_time
from server.context import actor as _actor
from server.context import platform as _platform


@get("/alerts", opt={"permission": "viewer"}, sync_to_thread=True)
def list_alerts(request: Request[Any, Any, Any],
                alert_state: Annotated[str | None, Parameter(query="state")] = None,
                subject: str | None = None,
                limit: Annotated[int, Parameter(ge=1, le=10_000, description="alerts to answer, newest first")] = 100,
                ) -> list[AlertRecord]:
    """Alerts, newest first, with their evidence (window, figures); ``?state=firing`` filters."""
    return _platform(request).alerts.list(state=alert_state, subject=subject, limit=limit)


@get("/alerts/open", opt={"permission": "viewer"}, sync_to_thread=True)
def open_alerts(request: Request[Any, Any, Any]) -> list[AlertRecord]:
    """Pending and firing alerts, newest first (all of them)."""
    return _platform(request).alerts.open_alerts()


@get("/alerts/rules", opt={"permission": "viewer"}, sync_to_thread=True)
def alert_rules(request: Request[Any, Any, Any]) -> list[AlertRule]:
    """The rules in force, in the order they are applied."""
    return _platform(request).alerts.rules()


@get("/alerts/{alert_id:str}", opt={"permission": "viewer"}, sync_to_thread=True)
def get_alert(request: Request[Any, Any, Any], alert_id: str) -> AlertRecord:
    return _platform(request).alerts.get(alert_id)


@post("/alerts/{alert_id:str}/acknowledge", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def acknowledge(request: Request[Any, Any, Any], alert_id: str) -> AlertRecord:
    return _platform(request).alerts.acknowledge(alert_id, _actor(request))


class SilenceRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``rule`` and/or ``subject`` (fnmatch patterns), ``until`` (ISO 8601; UTC if no
    offset) or ``duration_s`` (seconds from now), and a ``reason``."""

    reason: str
    rule: str | None = None
    subject: str | None = None
    until: str | None = None
    duration_s: float | None = None


def silence_end(data: SilenceRequest) -> datetime | timedelta:
    """The request's ``until`` or ``duration_s``: exactly one of them."""
    if (data.until is None) == (data.duration_s is None):
        raise InvalidInput("a silence lasts until a time or for a duration: give one of until and duration_s",
                           field="until", expected="until (an ISO 8601 time) or duration_s (seconds), not both")
    if data.until is not None:
        return parse_time(data.until, "until")
    assert data.duration_s is not None
    try:
        return timedelta(seconds=data.duration_s)
    except (OverflowError, ValueError) as exc:  # inf, nan, or more days than a timedelta holds
        raise InvalidInput(f"duration_s {data.duration_s!r} is not a usable number of seconds", field="duration_s",
                           expected="a number of seconds > 0") from exc


@post("/silences", opt={"permission": "operator"}, status_code=201, sync_to_thread=True)
def silence(request: Request[Any, Any, Any], data: SilenceRequest) -> SilenceRecord:
    """Hold back the notifications of matching alerts until a time or for a while."""
    return _platform(request).alerts.silence(data.rule, data.subject, until=silence_end(data), reason=data.reason,
                                             actor=_actor(request))


@get("/silences", opt={"permission": "viewer"}, sync_to_thread=True)
def list_silences(request: Request[Any, Any, Any], active: bool = True) -> list[SilenceRecord]:
    """Silences, newest first: those in force now, or all of them with ``?active=false``."""
    return _platform(request).alerts.silences(active)


@post("/silences/{silence_id:str}/lift", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def lift_silence(request: Request[Any, Any, Any], silence_id: str) -> SilenceRecord:
    return _platform(request).alerts.lift_silence(silence_id, _actor(request))


ALERT_ROUTES = [list_alerts, open_alerts, alert_rules, get_alert, acknowledge, silence, list_silences, lift_silence]
