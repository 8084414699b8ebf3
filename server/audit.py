"""Audit routes: the hash chain of every change of state, read, exported and verified on
the server (the audit key never leaves it). Mounted under /v1 with its bearer guard.

Roles, and why:
- ``GET /audit/count``: viewer; the count is already in ``GET /status``.
- ``GET /audit/events`` and ``GET /audit/about``: operator. Events name who changed what,
  with the values before and after: an operator's evidence, more than a viewer (who reads
  models and predicts) needs.
- ``GET /audit/verify``: operator. It answers whether the chain holds and, if not, the
  first bad event, which an operator can read anyway; checking it is routine operations
  work (after a restore, before a release), so it should not need the admin token.
- ``GET /audit/export``: admin. The whole chain at once, to be taken off the host and
  verified there: the bulk copy of the compliance record is an administrator's act.

There is no route that writes: events are appended by the change they record, in its
transaction (``mlops_lite/api/audit.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import Parameter

from mlops_lite.clock import parse_time
from mlops_lite.records import AuditRecord
from server.context import platform as _platform

MAX_EVENTS = 10_000  # the most rows one list answers, as elsewhere in the API




@get("/audit/events", opt={"permission": "operator"}, sync_to_thread=True)
def audit_events(request: Request[Any, Any, Any],
                 limit: Annotated[int, Parameter(ge=0, le=MAX_EVENTS, description="events to answer, newest "
                                                 "first")] = 100) -> list[AuditRecord]:
    """The newest events, newest first."""
    return _platform(request).audit.events(limit)


@get("/audit/about", opt={"permission": "operator"}, sync_to_thread=True)
def audit_about(request: Request[Any, Any, Any],
                object_: Annotated[str, Parameter(query="object", min_length=1, description="the object, e.g. "
                                                  "deployment:loans or token:<id>")],
                action_prefix: Annotated[str, Parameter(description="only actions starting with this, e.g. "
                                                        "deployment.")] = "") -> list[AuditRecord]:
    """The events about one object, oldest first."""
    return _platform(request).audit.about(object_, action_prefix=action_prefix)


@get("/audit/count", opt={"permission": "viewer"}, sync_to_thread=True)
def audit_count(request: Request[Any, Any, Any]) -> dict[str, int]:
    return {"count": _platform(request).audit.count()}


@get("/audit/export", opt={"permission": "admin"}, sync_to_thread=True)
def audit_export(request: Request[Any, Any, Any],
                 since: Annotated[str | None, Parameter(description="only events at or after this ISO 8601 time "
                                                        "(UTC if no offset)", schema_extra={"format": "date-time"})
                                  ] = None) -> list[dict[str, Any]]:
    """Events, oldest first, as JSON objects with their links (``prev_hash``, ``hash``):
    what ``mlops-lite audit verify --file`` checks offline with the audit key."""
    moment = None if since is None else parse_time(since, "since")
    return _platform(request).audit.export(since=moment)


@get("/audit/verify", opt={"permission": "operator"}, sync_to_thread=True)
def audit_verify(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Walk the whole chain: ``{"verified": true, "first_bad": null}``, or the first event
    that does not verify."""
    first_bad = _platform(request).audit.verify()
    return {"verified": first_bad is None, "first_bad": first_bad}


AUDIT_ROUTES = [audit_events, audit_about, audit_count, audit_export, audit_verify]
