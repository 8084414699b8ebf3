"""The audit chain: every change of state, each event hashed with the one before.

Each link is an HMAC-SHA256 keyed with the installation's audit key (a 0600 file in
the home, never in the database), so whoever can edit the database but not read
the key cannot write a chain that verifies: an edited, deleted, inserted or
reordered event breaks it at the first bad link, in the table and in an export.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.errors import IntegrityError, InvalidInput
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import AuditEvent
from mlops_lite.records import AuditRecord

GENESIS = "0" * 64


def _event_hash(key: bytes, prev_hash: str, seq: int, event_id: str, at: datetime | str, actor: str,
                action: str, obj: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    moment = at if isinstance(at, str) else as_utc(at).isoformat()
    payload = json.dumps(
        {"prev": prev_hash, "seq": seq, "id": event_id, "at": moment, "actor": actor,
         "action": action, "object": obj, "before": before, "after": after},
        sort_keys=True, separators=(",", ":"), default=str,
    )
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def load_or_create_key(path: Path) -> bytes:
    """The secret key at ``path`` (the audit chain's, the anonymizer's), created (random,
    mode 0600) when missing."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return bytes.fromhex(path.read_text().strip())
        with os.fdopen(fd, "w") as out:
            out.write(key.hex() + "\n")
        return key
    except ValueError as exc:
        raise IntegrityError(f"the key file {path} does not hold a hex key") from exc


def verify_events(key: bytes, events: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The first event (as exported) that breaks the chain, or None. An export that
    starts mid-chain is checked from its first event's link on."""
    prev_hash: str | None = None
    expected_seq: int | None = None
    for event in events:
        try:
            recomputed = _event_hash(key, event["prev_hash"], event["seq"], event["id"], event["at"],
                                     event["actor"], event["action"], event["object"], event["before"],
                                     event["after"])
        except (KeyError, TypeError):
            return event
        if prev_hash is None:
            prev_hash = GENESIS if event["seq"] == 1 else event["prev_hash"]
            expected_seq = event["seq"]
        if event["seq"] != expected_seq or event["prev_hash"] != prev_hash or event["hash"] != recomputed:
            return event
        prev_hash, expected_seq = event["hash"], event["seq"] + 1
    return None


class _ChainTail:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tail: tuple[int, str] | None = None


_SHARED: dict[str, _ChainTail] = {}


class AuditLog:
    """Append-only, hash-linked. Appends join the caller's transaction, so an event
    exists exactly when the change it records was committed."""

    def __init__(self, store: MetadataStore, key: bytes) -> None:
        self._store = store
        self._key = key
        # One lock and one tail per database, shared by every AuditLog over it in this process.
        self._shared = _SHARED.setdefault(store.url, _ChainTail())
        with self._shared.lock:
            self._shared.tail = None  # re-read from the database at the next append

    def record(self, *, actor: str, action: str, object: str, before: dict[str, Any] | None = None,
               after: dict[str, Any] | None = None) -> None:
        """Append one event in a transaction of its own."""
        with self._store.session() as session:
            self.append(session, actor=actor, action=action, object=object, before=before, after=after)

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
        event_hash = _event_hash(self._key, prev_hash, seq, event_id, at, actor, action, object, before, after)
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
                last = fresh.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
            self._shared.tail = (last.seq, last.hash) if last else (0, GENESIS)
        return self._shared.tail

    def events(self, limit: int = 100) -> list[AuditRecord]:
        """The newest ``limit`` events, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInput(f"limit must be a whole number >= 0, got {limit!r}", field="limit",
                               expected="a whole number >= 0")
        with self._store.session() as session:
            rows = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(limit)).all()
        return [_record(row) for row in rows]

    def about(self, object: str, *, action_prefix: str = "") -> list[AuditRecord]:
        """The events about one object (e.g. ``deployment:loans``), oldest first; only the
        actions starting with ``action_prefix`` when given."""
        with self._store.session() as session:
            query = select(AuditEvent).where(col(AuditEvent.object) == object)
            if action_prefix:
                query = query.where(col(AuditEvent.action).startswith(action_prefix))
            rows = session.exec(query.order_by(col(AuditEvent.seq))).all()
        return [_record(row) for row in rows]

    def count(self) -> int:
        with self._store.session() as session:
            return int(session.exec(select(func.count()).select_from(AuditEvent)).one())

    def export(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Events (oldest first) as JSON-ready dicts, from ``since`` on when given."""
        with self._store.session() as session:
            query = select(AuditEvent).order_by(col(AuditEvent.seq))
            if since is not None:
                query = query.where(AuditEvent.occurred_at >= since)
            rows = session.exec(query).all()
        return [_exported(row) for row in rows]

    def verify(self) -> AuditRecord | None:
        """Walk the whole chain; return the first event that does not verify, or None."""
        with self._store.session() as session:
            rows = {row.seq: row for row in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()}
        events = [_exported(row) for row in rows.values()]
        if events and events[0]["seq"] != 1:
            return _record(next(iter(rows.values())))
        bad = verify_events(self._key, events)
        return None if bad is None else _record(rows[bad["seq"]])


def _exported(row: AuditEvent) -> dict[str, Any]:
    return {"seq": row.seq, "id": row.id, "at": as_utc(row.occurred_at).isoformat(), "actor": row.actor,
            "action": row.action, "object": row.object, "before": row.before, "after": row.after,
            "prev_hash": row.prev_hash, "hash": row.hash}


def _record(row: AuditEvent) -> AuditRecord:
    return AuditRecord(seq=row.seq, id=row.id, at=row.occurred_at, actor=row.actor, action=row.action,
                       object=row.object, before=row.before, after=row.after,
                       prev_hash=row.prev_hash, hash=row.hash)
