"""The audit chain: every change of state, each event hashed with the one before.

Each link is an HMAC-SHA256 keyed with the installation's audit key (a 0600 file in
the home, never in the database), so whoever can edit the database but not read
the key cannot write a chain that verifies: an edited, deleted, inserted or
reordered event breaks it at the first bad link, in the table and in an export.

A cut tail (the newest events deleted, or all) leaves links that still meet: signed
checkpoints kept outside the database (``checkpoints.py``) catch it, and
``verify_signed`` checks both. Failed logins are counted per client and kind of
credential and written as one ``auth.failed`` event per window, so a flood of them
cannot grow the chain without bound.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func
from sqlmodel import Session, col, select

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.config import Settings
from mlops_lite.errors import BackendUnavailable, Conflict, IntegrityError, InvalidInput
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import AuditEvent
from mlops_lite.records import AuditCheckpoint, AuditRecord, AuditVerdict
from mlops_lite.security import checkpoints

log = logging.getLogger("mlops_lite.audit")

GENESIS = "0" * 64
FAILED_LOGIN_WINDOW_S = 60.0
FAILED_LOGIN_CLIENTS = 100  # clients counted apart per window; the rest are counted together as "*"


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
        # The hash is a MAC under the audit key: compared in constant time.
        if (event["seq"] != expected_seq or event["prev_hash"] != prev_hash
                or not hmac.compare_digest(str(event["hash"]).encode(), recomputed.encode())):
            return event
        prev_hash, expected_seq = event["hash"], event["seq"] + 1
    return None


@dataclass
class Signing:
    """What signs checkpoints of a chain: the Ed25519 key, the file they are appended to,
    and how often. ``fresh_key``: the key was made by this open, so the chain as it stands
    (a home made before checkpoints existed) gets its first checkpoint now."""

    key: Ed25519PrivateKey
    file: checkpoints.CheckpointFile
    every_events: int = 100
    every_seconds: float = 60.0
    fresh_key: bool = False


def open_signing(settings: Settings) -> Signing:
    """The home's checkpoint signing, the key made (0600) when missing."""
    settings.audit_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key, created = checkpoints.load_or_create_signing_key(settings.audit_signing_key_file,
                                                          settings.audit_public_key_file)
    return Signing(key=key, file=checkpoints.CheckpointFile(settings.audit_checkpoints_file),
                   every_events=settings.audit_checkpoint_events,
                   every_seconds=settings.audit_checkpoint_interval_s, fresh_key=created)


@dataclass
class _FailedLogins:
    """Failed logins of the current window: (client, kind of credential) -> [count, first, last]."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float | None = None
    counts: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def take(self) -> list[tuple[str, str, list[float]]]:
        taken = [(client, kind, entry) for (client, kind), entry in self.counts.items()]
        self.counts, self.started = {}, None
        return taken


class _ChainTail:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tail: tuple[int, str] | None = None
        self.checkpoint: AuditCheckpoint | None = None  # the newest this process wrote or found
        self.orphaned = False  # the key is old but no checkpoint is found: automatic ones wait
        self.failed_logins = _FailedLogins()


_SHARED: dict[str, _ChainTail] = {}


class AuditLog:
    """Append-only, hash-linked. Appends join the caller's transaction, so an event
    exists exactly when the change it records was committed."""

    def __init__(self, store: MetadataStore, key: bytes, signing: Signing | None = None) -> None:
        self._store = store
        self._key = key
        self._signing = signing
        # One lock and one tail per database, shared by every AuditLog over it in this process.
        self._shared = _SHARED.setdefault(store.url, _ChainTail())
        with self._shared.lock:
            self._shared.tail = None  # re-read from the database at the next append
            if signing is not None:
                self._open_checkpoints(signing)

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
            self._store.after_commit(session, lambda: self._committed(session.info["audit_tail"]))
        session.info["audit_tail"] = (seq, event_hash)

    def _committed(self, tail: tuple[int, str]) -> None:
        """After a commit, with the chain's lock still held: the new tail, and a checkpoint
        when ``every_events`` events or ``every_seconds`` have passed since the last."""
        self._shared.tail = tail
        signing, last = self._signing, self._shared.checkpoint
        if signing is None or self._shared.orphaned:
            return
        since = tail[0] - (last.seq if last else 0)
        if since >= signing.every_events or (
                since > 0 and last is not None
                and (utcnow() - as_utc(last.at)).total_seconds() >= signing.every_seconds):
            try:
                self._write_checkpoint(signing, only_if_moved=True, automatic=True)
            except Conflict as exc:  # the chain lost what was signed: stop trying at every commit
                self._shared.orphaned = True
                log.error("automatic audit checkpoints stop: %s", exc.message)
            except Exception:  # the change is committed; a checkpoint that failed is retried later
                log.exception("the audit checkpoint after seq %s failed", tail[0])

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
        bad = self._first_bad([_exported(row) for row in rows.values()])
        return None if bad is None else _record(rows[bad["seq"]])

    def _first_bad(self, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        if events and events[0]["seq"] != 1:
            return events[0]
        return verify_events(self._key, events)

    # ---- signed checkpoints -------------------------------------------------------------

    def checkpoint(self) -> AuditCheckpoint:
        """Sign the chain's head now (failed logins counted so far are written first) and
        append the checkpoint to the checkpoint file. Conflict, and nothing written, when
        the chain no longer holds the last checkpoint's head or a link does not verify."""
        signing = self._require_signing()
        self.flush_failed_logins()
        with self._shared.lock:
            written = self._write_checkpoint(signing, only_if_moved=False, automatic=False)
        assert written is not None
        return written

    def checkpoint_if_moved(self) -> AuditCheckpoint | None:
        """A checkpoint when events came since the last one (the schedule's, and at stop)."""
        signing = self._require_signing()
        self.flush_failed_logins()
        with self._shared.lock:
            if self._shared.orphaned:
                return None
            try:
                return self._write_checkpoint(signing, only_if_moved=True, automatic=True)
            except Conflict:
                self._shared.orphaned = True  # said once; an operator decides (docs/audit.md)
                raise

    def close(self) -> None:
        """Write the failed logins counted so far and sign the head when it moved: what the
        Platform does as it closes (a daemon's stop, a command's end). Failures are logged."""
        if self._signing is None:
            return
        try:
            self.checkpoint_if_moved()
        except Conflict as exc:
            log.error("the audit chain was not signed at close: %s", exc.message)
        except Exception:
            log.exception("the audit checkpoint at close failed")

    def checkpoints(self) -> list[AuditCheckpoint]:
        """Every checkpoint in the file, oldest first (unreadable lines left out)."""
        return list(self._require_signing().file.read().checkpoints)

    def public_key(self) -> str:
        """The checkpoints' Ed25519 public key, PEM: what an auditor verifies with."""
        return checkpoints.public_pem(self._require_signing().key.public_key())

    def verify_signed(self) -> AuditVerdict:
        """Every link (with the audit key), then the chain against the signed checkpoints
        (with the public key): a cut tail, an emptied chain and a forged checkpoint fail."""
        signing = self._require_signing()
        events = self.export()
        lines = signing.file.read()
        verdict = checkpoints.check(events, lines.checkpoints, signing.key.public_key(), whole_chain=True,
                                    unreadable_lines=lines.unreadable, links_checked=True)
        bad = self._first_bad(events)
        if bad is None:
            return verdict
        problem = (f"event seq {bad.get('seq')} ({bad.get('action')} on {bad.get('object')}) does not verify "
                   "with the audit key: the first bad link")
        return AuditVerdict(verified=False, events=verdict.events, checkpoint=verdict.checkpoint,
                            signed_through=verdict.signed_through, missing=verdict.missing,
                            problems=(problem, *verdict.problems))

    def _require_signing(self) -> Signing:
        if self._signing is None:
            raise BackendUnavailable("this audit chain has no checkpoint signing key (open it through the Platform)")
        return self._signing

    def _open_checkpoints(self, signing: Signing) -> None:
        """The newest checkpoint in the file; a first one for a home whose key is new (the
        migration of a home made before checkpoints, and of a new home)."""
        last = signing.file.last()
        if last is not None:
            valid = checkpoints.signature_holds(signing.key.public_key(), last)
            self._shared.checkpoint, self._shared.orphaned = (last if valid else None), False
            return
        if signing.fresh_key:
            try:
                first = self._write_checkpoint(signing, only_if_moved=False, automatic=False)
                if first is not None and first.seq > 0:
                    log.warning("made an audit signing key and a first checkpoint (%s) over the %d events "
                                "the chain already held", signing.file.path, first.seq)
            except Conflict:
                log.exception("the audit chain does not verify; its first checkpoint was not signed")
            return
        # An older key and no checkpoint: the file was lost or emptied. Signing the chain as
        # it stands would vouch for whatever it now holds; an operator decides (`audit checkpoint`).
        self._shared.orphaned = self.count() > 0
        if self._shared.orphaned:
            log.error("the audit checkpoint file %s holds no checkpoint although the signing key is not new; "
                      "automatic checkpoints wait for `mlops-lite audit checkpoint`", signing.file.path)

    def _write_checkpoint(self, signing: Signing, *, only_if_moved: bool, automatic: bool) -> AuditCheckpoint | None:
        """Called with the chain's lock held, so no event is appended meanwhile."""
        last = signing.file.last()
        public = signing.key.public_key()
        if last is not None and not checkpoints.signature_holds(public, last):
            raise Conflict(f"the newest checkpoint in {signing.file.path} ({last.id}) has a bad signature; "
                           "not signing after it (see `mlops-lite audit verify`)")
        known = self._shared.checkpoint
        if automatic and known is not None and (last is None or last.seq < known.seq):
            self._shared.orphaned = True  # stop trying at every commit; an operator decides
            raise Conflict(f"checkpoint {known.id} (seq {known.seq}) is gone from {signing.file.path}; automatic "
                           "checkpoints wait for `mlops-lite audit verify` and `mlops-lite audit checkpoint`")
        start = last.seq if last is not None else 0
        with self._store.session() as session:
            rows = session.exec(select(AuditEvent).where(col(AuditEvent.seq) >= max(start, 1))
                                .order_by(col(AuditEvent.seq))).all()
            count = int(session.exec(select(func.count()).select_from(AuditEvent)).one())
        events = [_exported(row) for row in rows]
        if last is not None and last.seq > 0:
            if not events or events[0]["seq"] != last.seq or events[0]["hash"] != last.head:
                raise Conflict(f"the chain no longer holds the head of checkpoint {last.id} at seq {last.seq}; "
                               "not signing it (see `mlops-lite audit verify`)")
            new = events[1:]
        else:
            new = events
            if new and new[0]["seq"] != 1:
                raise Conflict(f"the chain starts at seq {new[0]['seq']}, not 1; not signing it")
        bad = verify_events(self._key, events)
        if bad is not None:
            raise Conflict(f"event seq {bad['seq']} does not verify; not signing the chain "
                           "(see `mlops-lite audit verify`)")
        if only_if_moved and last is not None and not new and count == last.count:
            return None
        head_seq, head = ((new[-1]["seq"], new[-1]["hash"]) if new
                          else (last.seq, last.head) if last is not None else (0, GENESIS))
        if count != head_seq:
            raise Conflict(f"the chain holds {count} events up to seq {head_seq}: events were removed; not signing "
                           "it (see `mlops-lite audit verify`)")
        signed = checkpoints.sign(
            signing.key, seq=head_seq, head=head, count=count, at=utcnow(),
            digest=checkpoints.extend_digest(last.digest if last is not None else GENESIS, new),
            prev=checkpoints.checkpoint_hash(last) if last is not None else None)
        signing.file.append(signed)
        self._shared.checkpoint, self._shared.orphaned = signed, False
        return signed

    # ---- failed logins ----------------------------------------------------------------

    def failed_login(self, client: str, credential: str) -> None:
        """Count one refused credential from ``client`` (an address) of kind ``credential``
        (``token``, ``jwt``, ``access-key``, ``none``...; never the secret). Counts are
        written as one ``auth.failed`` event per client and kind when the window of
        ``FAILED_LOGIN_WINDOW_S`` closes: at the next failure after it, or at a flush."""
        failures, now = self._shared.failed_logins, time.time()
        closed: list[tuple[str, str, list[float]]] = []
        with failures.lock:
            if failures.started is not None and now - failures.started >= FAILED_LOGIN_WINDOW_S:
                closed = failures.take()
            if failures.started is None:
                failures.started = now
            key = (client, credential)
            if key not in failures.counts and len(failures.counts) >= FAILED_LOGIN_CLIENTS:
                key = ("*", credential)
            entry = failures.counts.setdefault(key, [0, now, now])
            entry[0] += 1
            entry[2] = now
        if closed:
            self._write_failed_logins(closed)

    def flush_failed_logins(self) -> int:
        """Write the failed logins counted so far (the window closes); answers the events written."""
        failures = self._shared.failed_logins
        with failures.lock:
            closed = failures.take()
        self._write_failed_logins(closed)
        return len(closed)

    def _write_failed_logins(self, closed: list[tuple[str, str, list[float]]]) -> None:
        if not closed:
            return
        with self._store.session() as session:
            for client, credential, (count, first, last) in closed:
                self.append(session, actor="unauthenticated", action="auth.failed", object=f"client:{client}",
                            after={"credential": credential, "count": int(count),
                                   "first": datetime.fromtimestamp(first, UTC).isoformat(),
                                   "last": datetime.fromtimestamp(last, UTC).isoformat()})


def _exported(row: AuditEvent) -> dict[str, Any]:
    return {"seq": row.seq, "id": row.id, "at": as_utc(row.occurred_at).isoformat(), "actor": row.actor,
            "action": row.action, "object": row.object, "before": row.before, "after": row.after,
            "prev_hash": row.prev_hash, "hash": row.hash}


def _record(row: AuditEvent) -> AuditRecord:
    return AuditRecord(seq=row.seq, id=row.id, at=row.occurred_at, actor=row.actor, action=row.action,
                       object=row.object, before=row.before, after=row.after,
                       prev_hash=row.prev_hash, hash=row.hash)


def statement_summary(sql: str) -> dict[str, Any]:
    """What the chain keeps of an SQL statement: its SHA-256, its length and its first
    keyword, not its text (a literal in it may be personal data, and the chain cannot
    forget); whoever holds the text can match it to the digest."""
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    keyword = words[0].rstrip(";(").lower()[:16] if words else ""
    return {"sha256": hashlib.sha256(sql.encode()).hexdigest(), "length": len(sql),
            "keyword": keyword if keyword.isalpha() or not keyword else "?"}
