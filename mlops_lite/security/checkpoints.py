"""Signed checkpoints of the audit chain, kept outside the metadata database.

The HMAC chain (``audit.py``) catches an edited, inserted or reordered event, but not a
cut tail: the events left after deleting the newest ones (or all) still link. A
checkpoint is an Ed25519 signature over (seq of the last event, its link ``head``, the
event count, the time, an id, a keyless digest of every event up to it, the previous
checkpoint's digest), appended as one JSON line to ``<home>/audit/checkpoints.jsonl``
and fsync'd. The chain must reach every checkpoint's seq with the same head; the
latest checkpoint bounds how much of the tail can go unnoticed.

The digest is a plain SHA-256 chain over the events as exported, so whoever holds the
public key alone (an auditor, without the HMAC secret that could also forge) can check
an export: what ``check`` proves, and what it does not, is written in docs/audit.md.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlops_lite.clock import as_utc, parse_time
from mlops_lite.errors import IntegrityError, InvalidInput
from mlops_lite.records import AuditCheckpoint, AuditVerdict

GENESIS = "0" * 64
_CONTEXT = b"mlops-lite audit checkpoint v1\n"  # signatures over checkpoints mean nothing else
_TAIL_BLOCK = 4096


# ---- keys ----------------------------------------------------------------------------


def load_or_create_signing_key(private_file: Path, public_file: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The signing key at ``private_file`` (PEM, mode 0600), created when missing, with its
    public key written beside it for export; and whether this call created it."""
    created = False
    try:
        data = private_file.read_bytes()
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        try:
            fd = os.open(private_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            data = private_file.read_bytes()
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            created = True
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise IntegrityError(f"the key file {private_file} does not hold a PEM private key") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise IntegrityError(f"the key file {private_file} does not hold an Ed25519 key")
    pem = public_pem(loaded.public_key())
    if not public_file.exists() or public_file.read_text() != pem:
        public_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with os.fdopen(os.open(public_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(pem)
    return loaded, created


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def read_public_key(pem: str | bytes, *, source: str = "public_key") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM text; InvalidInput naming ``source`` otherwise."""
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{source} is not a PEM public key: {exc}", field=source,
                           expected="the PEM file `mlops-lite audit public-key` writes") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{source} is not an Ed25519 public key", field=source,
                           expected="the PEM file `mlops-lite audit public-key` writes")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 16 hex digits of its raw bytes' SHA-256."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# ---- digests and signatures ---------------------------------------------------------------


def extend_digest(digest: str, events: Iterable[dict[str, Any]]) -> str:
    """The keyless chain one event further per event: sha256(previous digest || the
    event's canonical JSON). Anyone can recompute it from an export."""
    for event in events:
        digest = hashlib.sha256(bytes.fromhex(digest) + _canonical(event)).hexdigest()
    return digest


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _body(checkpoint: AuditCheckpoint) -> bytes:
    """What is signed: every field but the signature, in canonical JSON, after a context line."""
    return _CONTEXT + _canonical({"id": checkpoint.id, "seq": checkpoint.seq, "head": checkpoint.head,
                                  "count": checkpoint.count, "at": as_utc(checkpoint.at).isoformat(),
                                  "digest": checkpoint.digest, "prev": checkpoint.prev,
                                  "key_id": checkpoint.key_id})


def sign(key: Ed25519PrivateKey, *, seq: int, head: str, count: int, at: datetime, digest: str,
         prev: str | None) -> AuditCheckpoint:
    unsigned = AuditCheckpoint(id=uuid.uuid4().hex, seq=seq, head=head, count=count, at=as_utc(at), digest=digest,
                               prev=prev, key_id=key_id(key.public_key()), signature="")
    signature = base64.b64encode(key.sign(_body(unsigned))).decode()
    return AuditCheckpoint(**{**unsigned.__dict__, "signature": signature})


def signature_holds(key: Ed25519PublicKey, checkpoint: AuditCheckpoint) -> bool:
    try:
        key.verify(base64.b64decode(checkpoint.signature, validate=True), _body(checkpoint))
    except (InvalidSignature, ValueError):
        return False
    return True


def checkpoint_hash(checkpoint: AuditCheckpoint) -> str:
    """What the next checkpoint names as ``prev``: a digest of this one, signature included."""
    return hashlib.sha256(_body(checkpoint) + checkpoint.signature.encode()).hexdigest()


# ---- the file ----------------------------------------------------------------------


def to_line(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {"id": checkpoint.id, "seq": checkpoint.seq, "head": checkpoint.head, "count": checkpoint.count,
            "at": as_utc(checkpoint.at).isoformat(), "digest": checkpoint.digest, "prev": checkpoint.prev,
            "key_id": checkpoint.key_id, "signature": checkpoint.signature}


def from_line(line: dict[str, Any]) -> AuditCheckpoint:
    """A checkpoint from its JSON line; ValueError when a field is missing or of the wrong type."""
    try:
        return AuditCheckpoint(id=str(line["id"]), seq=_whole(line["seq"]), head=str(line["head"]),
                               count=_whole(line["count"]), at=parse_time(str(line["at"]), "at"),
                               digest=str(line["digest"]),
                               prev=None if line.get("prev") is None else str(line["prev"]),
                               key_id=str(line["key_id"]), signature=str(line["signature"]))
    except (KeyError, TypeError, InvalidInput) as exc:
        raise ValueError(f"not a checkpoint: {exc}") from exc


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not a whole number")
    return value


@dataclass(frozen=True)
class CheckpointLines:
    """A checkpoint file as read: its checkpoints, and the lines that are none."""

    checkpoints: tuple[AuditCheckpoint, ...]
    unreadable: tuple[int, ...]  # line numbers, from 1


def parse_lines(text: str) -> CheckpointLines:
    found: list[AuditCheckpoint] = []
    bad: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            found.append(from_line(json.loads(raw)))
        except ValueError:
            bad.append(number)
    return CheckpointLines(tuple(found), tuple(bad))


class CheckpointFile:
    """The append-only JSONL file of checkpoints. Appends take an exclusive lock on the
    file and are fsync'd before they return."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> CheckpointLines:
        try:
            return parse_lines(self.path.read_text())
        except FileNotFoundError:
            return CheckpointLines((), ())

    def last(self) -> AuditCheckpoint | None:
        """The newest checkpoint, read from the file's end (the file only grows)."""
        try:
            stream = self.path.open("rb")
        except FileNotFoundError:
            return None
        with stream:
            position = stream.seek(0, os.SEEK_END)
            tail = b""
            while position > 0 and tail.rstrip(b"\n").count(b"\n") < 1:
                step = min(_TAIL_BLOCK, position)
                position -= step
                stream.seek(position)
                tail = stream.read(step) + tail
        lines = [line for line in tail.split(b"\n") if line.strip()]
        if not lines:
            return None
        try:
            return from_line(json.loads(lines[-1]))
        except ValueError:  # a damaged last line: the newest readable one before it
            found = self.read().checkpoints
            return found[-1] if found else None

    def append(self, checkpoint: AuditCheckpoint) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, (json.dumps(to_line(checkpoint), sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


# ---- checking a chain against its checkpoints -------------------------------------------


def check(events: Sequence[dict[str, Any]], checkpoints: Sequence[AuditCheckpoint], key: Ed25519PublicKey, *,
          whole_chain: bool, unreadable_lines: Sequence[int] = (), links_checked: bool = False) -> AuditVerdict:
    """``events`` (as exported, oldest first) against ``checkpoints`` with the public key alone.

    ``whole_chain``: the events claim to be the whole chain (the database, or an export
    without ``--since``), so they must start at seq 1 and hold at least the latest
    checkpoint's count. ``links_checked``: the caller verified every link with the HMAC key;
    otherwise the seqs and ``prev_hash`` links are checked here (structure only)."""
    problems: list[str] = [f"line {n} of the checkpoint file is not a checkpoint" for n in unreadable_lines]
    valid: list[AuditCheckpoint] = []
    for checkpoint in checkpoints:
        if not signature_holds(key, checkpoint):
            problems.append(f"checkpoint {checkpoint.id} (seq {checkpoint.seq}, {_when(checkpoint)}) has a bad "
                            f"signature: forged, edited, or signed by another key than {key_id(key)}")
            continue
        expected_prev = checkpoint_hash(valid[-1]) if valid else None
        if checkpoint.prev != expected_prev and (valid or checkpoint.prev is not None):
            after = f"checkpoint {valid[-1].id}" if valid else "the start of the file"
            problems.append(f"checkpoint {checkpoint.id} does not follow {after}: checkpoints between them were "
                            "removed, or the file was reordered")
        elif valid and (checkpoint.seq < valid[-1].seq or checkpoint.count < valid[-1].count):
            problems.append(f"checkpoint {checkpoint.id} covers less (seq {checkpoint.seq}) than checkpoint "
                            f"{valid[-1].id} before it (seq {valid[-1].seq})")
        valid.append(checkpoint)
    if not links_checked:
        problems.extend(_structure(events, whole_chain))
    if not valid:
        problems.append("no checkpoint with a good signature: nothing tells how long the chain was, so a cut tail "
                        "(or an emptied chain) cannot be ruled out")
        return AuditVerdict(verified=False, events=len(events), checkpoint=None, signed_through=0, missing=None,
                            problems=tuple(problems))
    latest = valid[-1]
    missing = _cut_tail(events, latest, whole_chain, problems)
    signed_through = _compare(events, valid, problems)
    return AuditVerdict(verified=not problems, events=len(events), checkpoint=latest, signed_through=signed_through,
                        missing=missing, problems=tuple(problems))


def _when(checkpoint: AuditCheckpoint) -> str:
    return as_utc(checkpoint.at).isoformat(timespec="seconds")


def _structure(events: Sequence[dict[str, Any]], whole_chain: bool) -> list[str]:
    """Seqs that follow each other and links that meet, without the key (which alone
    proves an event's content: here a signature's digest does, up to its seq)."""
    problems: list[str] = []
    if whole_chain and events and events[0].get("seq") != 1:
        problems.append(f"the chain starts at seq {events[0].get('seq')}, not 1: events before it were deleted")
    for before, event in pairwise(events):
        if event.get("seq") != before.get("seq", 0) + 1 or event.get("prev_hash") != before.get("hash"):
            problems.append(f"the chain breaks between seq {before.get('seq')} and seq {event.get('seq')}: "
                            "events were removed or reordered there")
            break
    if whole_chain and events and events[0].get("seq") == 1 and events[0].get("prev_hash") != GENESIS:
        problems.append("the first event does not start the chain (its prev_hash is not the genesis link)")
    return problems


def _cut_tail(events: Sequence[dict[str, Any]], latest: AuditCheckpoint, whole_chain: bool,
              problems: list[str]) -> tuple[int, int] | None:
    last_seq = int(events[-1].get("seq", 0)) if events else 0
    signed = f"checkpoint {latest.id} ({_when(latest)}) covers {latest.count} events up to seq {latest.seq}"
    if not events and latest.seq > 0:
        problems.append(f"the chain is empty but {signed}: all events were deleted (seq 1..{latest.seq} missing)")
        return (1, latest.seq)
    if last_seq < latest.seq:
        problems.append(f"the chain ends at seq {last_seq} but {signed}: the tail was cut, events "
                        f"{last_seq + 1}..{latest.seq} are missing")
        return (last_seq + 1, latest.seq)
    if whole_chain and len(events) < latest.count:
        problems.append(f"the chain holds {len(events)} events but {signed}: {latest.count - len(events)} were "
                        "removed")
    return None


def _compare(events: Sequence[dict[str, Any]], valid: Sequence[AuditCheckpoint], problems: list[str]) -> int:
    """Each checkpoint's head and digest against the events; the last seq a signature proves."""
    position = {event.get("seq"): i for i, event in enumerate(events)}
    for checkpoint in valid:
        found = position.get(checkpoint.seq)
        if checkpoint.seq > 0 and found is not None and events[found].get("hash") != checkpoint.head:
            problems.append(f"the head hash of checkpoint {checkpoint.id} is no longer at seq {checkpoint.seq}: "
                            "the events up to it were replaced")
    if not events:
        return 0
    first = events[0].get("seq")
    if first == 1:
        seq, digest = 0, GENESIS
    else:
        # An export from the middle: the digest restarts at the first checkpoint it reaches.
        anchor = next((cp for cp in valid if isinstance(first, int) and cp.seq >= first - 1), None)
        if anchor is None:
            return 0
        seq, digest = anchor.seq, anchor.digest
    start, proven = (seq if first != 1 else -1), 0
    for checkpoint in valid:
        if checkpoint.seq < seq:
            continue
        if checkpoint.seq > seq:
            begin, end = position.get(seq + 1), position.get(checkpoint.seq)
            if begin is None or end is None:
                break  # the chain ends before this checkpoint: reported as a cut tail
            digest = extend_digest(digest, events[begin:end + 1])
            seq = checkpoint.seq
        if digest != checkpoint.digest:
            problems.append(f"the events up to seq {checkpoint.seq} are not the ones checkpoint {checkpoint.id} "
                            f"signed: an event at or before seq {checkpoint.seq} was edited, added or removed")
            return proven
        if checkpoint.seq > start:  # the anchor itself proves no event of this export
            proven = checkpoint.seq
    return proven
