"""``platform.audit``: the hash-chained record of every change of state (who, what, on
which object, before and after), read, exported and verified.

Seams off the Protocol, each for a reason:
- ``AuditLog.append`` and ``AuditLog.record``: events are written by the change they
  record, in its own transaction, so an event exists exactly when its change was
  committed. A caller that could write events directly could write history that never
  happened; over HTTP there is no route for it.
- ``AuditLog.failed_login``, ``flush_failed_logins`` and ``checkpoint_if_moved``: the
  server's guard and the daemon's schedule call them; they record what the server saw.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from mlops_lite.records import AuditCheckpoint, AuditRecord, AuditVerdict


class AuditAPI(Protocol):
    def events(self, limit: int = 100) -> list[AuditRecord]:
        """The newest ``limit`` events, newest first."""

    def about(self, object: str, *, action_prefix: str = "") -> list[AuditRecord]:
        """The events about one object (e.g. ``deployment:loans``), oldest first; only the
        actions starting with ``action_prefix`` when given."""

    def count(self) -> int:
        """How many events the chain holds."""

    def export(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Events (oldest first) as JSON-ready dicts with their links (``prev_hash``,
        ``hash``), from ``since`` on when given; verifiable offline with the audit key."""

    def verify(self) -> AuditRecord | None:
        """Walk the whole chain; the first event that does not verify, or None."""

    def verify_signed(self) -> AuditVerdict:
        """Every link (with the audit key), then the chain against its signed checkpoints:
        a cut tail (``missing`` names the range), an emptied chain, a forged or removed
        checkpoint each fail it, named in ``problems``."""

    def checkpoint(self) -> AuditCheckpoint:
        """Sign the chain's head now and append the checkpoint to the file outside the
        database. Conflict, and nothing written, when the chain no longer verifies."""

    def checkpoints(self) -> list[AuditCheckpoint]:
        """Every signed checkpoint, oldest first: what an auditor keeps beside an export."""

    def public_key(self) -> str:
        """The Ed25519 public key (PEM) that verifies the checkpoints."""
