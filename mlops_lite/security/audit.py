"""The audit chain: every change of state, each event hashed with the one before."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import AuditEvent
from mlops_lite.records import AuditRecord

GENESIS = "0" * 64


def _event_hash(prev_hash: str, seq: int, event_id: str, at: datetime, actor: str, action: str,
                obj: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    payload = json.dumps(
        {"prev": prev_hash, "seq": seq, "id": event_id, "at": as_utc(at).isoformat(), "actor": actor,
         "action": action, "object": obj, "before": before, "after": after},
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class _ChainTail:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tail: tuple[int, str] | None = None


_SHARED: dict[str, _ChainTail] = {}


class AuditLog:
    """Append-only, hash-linked. Appends join the caller's transaction, so an event
    exists exactly when the change it records was committed."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        # One lock and one tail per database, shared by every AuditLog over it in this process.
        self._shared = _SHARED.setdefault(store.url, _ChainTail())
        with self._shared.lock:
            self._shared.tail = None  # re-read from the database at the next append

    def append(self, session: Session, *, actor: str, action: str, object: str,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
        # Held until the caller's transaction ends, and the tail kept here rather than
        # read in the caller's transaction: its snapshot may predate the last commit.
        self._store.hold_until_end(session, self._shared.lock)
        seq, prev_hash = session.info.get("audit_tail") or self._committed_tail()
        seq += 1
        at = utcnow()
        event_id = uuid.uuid4().hex
        before = json.loads(json.dumps(before or {}, default=str))
        after = json.loads(json.dumps(after or {}, default=str))
        event_hash = _event_hash(prev_hash, seq, event_id, at, actor, action, object, before, after)
        session.add(AuditEvent(seq=seq, id=event_id, occurred_at=at, actor=actor, action=action, object=object,
                               before=before, after=after, prev_hash=prev_hash, hash=event_hash))
        session.flush()
        if "audit_tail" not in session.info:
            self._store.after_commit(session, lambda: self._set_tail(session.info["audit_tail"]))
        session.info["audit_tail"] = (seq, event_hash)

    def _set_tail(self, tail: tuple[int, str]) -> None:
        self._shared.tail = tail

    def _committed_tail(self) -> tuple[int, str]:
        """(seq, hash) of the last committed event, read once in a fresh transaction."""
        if self._shared.tail is None:
            with self._store.session() as fresh:
                last = fresh.exec(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).first()  # type: ignore[union-attr]
            self._shared.tail = (last.seq, last.hash) if last else (0, GENESIS)
        return self._shared.tail

    def events(self, limit: int = 100) -> list[AuditRecord]:
        with self._store.session() as session:
            rows = session.exec(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)).all()  # type: ignore[union-attr]
        return [_record(row) for row in rows]

    def count(self) -> int:
        with self._store.session() as session:
            return int(session.exec(select(func.count()).select_from(AuditEvent)).one())

    def verify(self) -> AuditRecord | None:
        """Walk the chain; return the first event that does not verify, or None."""
        prev_hash, expected_seq = GENESIS, 1
        with self._store.session() as session:
            rows = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()  # type: ignore[arg-type]
        for row in rows:
            recomputed = _event_hash(row.prev_hash, row.seq, row.id, row.occurred_at, row.actor, row.action,
                                     row.object, row.before, row.after)
            if row.seq != expected_seq or row.prev_hash != prev_hash or row.hash != recomputed:
                return _record(row)
            prev_hash, expected_seq = row.hash, expected_seq + 1
        return None


def _record(row: AuditEvent) -> AuditRecord:
    return AuditRecord(seq=row.seq, id=row.id, at=row.occurred_at, actor=row.actor, action=row.action,
                       object=row.object, before=row.before, after=row.after,
                       prev_hash=row.prev_hash, hash=row.hash)
