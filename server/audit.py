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
- ``GET /audit/public-key``: viewer. It is public by design: it only verifies.
- ``GET /audit/checkpoints``: operator, as the events (they say how long the chain was
  and when). ``POST /audit/checkpoints``: operator; signing the head as it stands only
  adds evidence, and it refuses (409) when the chain no longer verifies.

There is no route that writes events: they are appended by the change (or the read) they
record (``mlops_lite/api/audit.py``). ``record_read`` and ``record_failed_login`` are what
the data routes and the guard call.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, get, post
from litestar.connection import ASGIConnection
from litestar.params import Parameter

from mlops_lite import Platform
from mlops_lite.clock import parse_time
from mlops_lite.records import AuditCheckpoint, AuditRecord
from server.context import actor as _actor
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
    """Walk the whole chain and check it against the signed checkpoints:
    ``{"verified": true, "first_bad": null, "signed": {...}}``; ``first_bad`` is the first
    event that does not verify, ``signed`` the verdict against the checkpoints (a cut tail,
    an emptied chain, a forged checkpoint), and ``verified`` needs both."""
    audit = _platform(request).audit
    first_bad = audit.verify()
    signed = audit.verify_signed()
    return {"verified": first_bad is None and signed.verified, "first_bad": first_bad, "signed": signed}


@get("/audit/checkpoints", opt={"permission": "operator"}, sync_to_thread=True)
def audit_checkpoints(request: Request[Any, Any, Any]) -> list[AuditCheckpoint]:
    """Every signed checkpoint, oldest first."""
    return _platform(request).audit.checkpoints()


@post("/audit/checkpoints", opt={"permission": "operator"}, status_code=201, sync_to_thread=True)
def audit_checkpoint(request: Request[Any, Any, Any]) -> AuditCheckpoint:
    """Sign the chain's head now; 409 when the chain no longer verifies."""
    return _platform(request).audit.checkpoint()


@get("/audit/public-key", opt={"permission": "viewer"}, sync_to_thread=True)
def audit_public_key(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The Ed25519 public key (PEM) that verifies the checkpoints."""
    return {"public_key": _platform(request).audit.public_key()}


AUDIT_ROUTES = [audit_events, audit_about, audit_count, audit_export, audit_verify, audit_checkpoints,
                audit_checkpoint, audit_public_key]


def record_read(request: Request[Any, Any, Any], action: str, object: str, after: dict[str, Any]) -> None:
    """One audited read (or upload, query, gc) by the caller, in a transaction of its own:
    these routes change nothing in the metadata store, so there is no transaction to join."""
    _platform(request).audit.record(actor=_actor(request), action=action, object=object, after=after)


def credential_kind(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The kind of credential a request offered, never the secret itself."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if not scheme:
        return "none"
    if scheme == "basic":
        return "access-key"
    if scheme == "bearer":
        return "jwt" if value.count(".") == 2 else "token"
    return "other"


async def record_failed_login(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Count a refused credential for the audit chain (aggregated per client and minute).
    A serving replica keeps no chain: its control plane records the refusal when the
    replica asks it about the token (/v1/whoami)."""
    platform: Platform = connection.app.state.platform
    if getattr(platform, "audit", None) is None:
        return
    client = connection.client.host if connection.client is not None else "unknown"
    await anyio.to_thread.run_sync(platform.audit.failed_login, client, credential_kind(connection))


def gc_summary(report: Any, retention_days: float) -> dict[str, Any]:
    """A data gc run (a ``GcReport``) as its audit event records it."""
    return {**dataclasses.asdict(report), "retention_days": retention_days}
