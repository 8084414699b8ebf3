"""Silences: hold back the notifications of matching alerts for a while.

A silence names a rule and/or a subject as fnmatch patterns (None: any; at least one,
``"*"`` for everything) and lasts until a time, or until it is lifted. Silences hold
back notifications, never state: a silenced alert still fires and resolves (and is
audited), is marked ``silenced``, and is sent to no sink. Creating and lifting a
silence are audit events (``alert.silence``, ``alert.unsilence``).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from mlops_lite.alerts.rules import check_until
from mlops_lite.clock import as_utc
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables.alerts import AlertSilenceRow
from mlops_lite.records import SilenceRecord as SilenceRecord


def covering(silences: Iterable[SilenceRecord], rule: str, subject: str) -> SilenceRecord | None:
    """The first of ``silences`` that covers an alert of ``rule`` on ``subject``."""
    return next((s for s in silences if s.covers(rule, subject)), None)


class Silences:
    """The silences in the metadata store; every change is an audit event."""

    def __init__(self, store: MetadataStore, audit: AuditTrail, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    def create(self, rule: str | None, subject: str | None, *, until: datetime | timedelta, reason: str,
               actor: str) -> SilenceRecord:
        """A silence of alerts whose rule and subject match these patterns, until ``until``
        (a time, or a duration from now)."""
        now = as_utc(self._clock())
        for name, pattern in (("rule", rule), ("subject", subject)):
            if pattern is not None and (not isinstance(pattern, str) or not pattern.strip()):
                raise InvalidInput(f"{name} must be a non-empty pattern, got {pattern!r}", field=name,
                                   expected="a name or an fnmatch pattern such as 'latency-*'")
        if rule is None and subject is None:
            raise InvalidInput("a silence names a rule or a subject (use rule='*' to silence everything)",
                               field="rule", expected="a rule name or pattern")
        until = check_until(until)
        try:
            end = now + until if isinstance(until, timedelta) else as_utc(until)
        except OverflowError as exc:  # beyond year 9999
            raise InvalidInput(f"until {until!r} is beyond the last time a store keeps", field="until",
                               expected="a time before year 10000") from exc
        if end <= now:
            raise InvalidInput(f"until {end.isoformat()} is not in the future", field="until",
                               expected="a later time")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("a silence needs a reason", field="reason", expected="a sentence")
        row = AlertSilenceRow(id=uuid.uuid4().hex, rule_pattern=rule, subject_pattern=subject, until=end,
                              reason=reason.strip(), created_by=actor, created_at=now)
        with self._store.session() as db:
            db.add(row)
            self._audit.append(db, actor=actor, action="alert.silence", object=f"silence:{row.id}",
                               after={"rule": rule, "subject": subject, "until": end.isoformat(),
                                      "reason": row.reason})
        return _record(row)

    def lift(self, id: str, actor: str) -> SilenceRecord:
        """End a silence now; Conflict if it was lifted already."""
        with self._store.session() as db:
            row = db.get(AlertSilenceRow, id)
            if row is None:
                raise NotFound(f"no silence {id!r}", details={"silence": id})
            if row.lifted_at is not None:
                raise Conflict(f"silence {id} was already lifted by {row.lifted_by}", details={"silence": id})
            row.lifted_at, row.lifted_by = as_utc(self._clock()), actor
            db.add(row)
            self._audit.append(db, actor=actor, action="alert.unsilence", object=f"silence:{row.id}",
                               before={"until": as_utc(row.until).isoformat()},
                               after={"lifted_at": row.lifted_at.isoformat()})
            return _record(row)

    def list(self, active: bool = True) -> builtins.list[SilenceRecord]:
        """Silences, newest first: only those in force now unless ``active`` is False."""
        with self._store.session() as db:
            if active:
                return in_force(db, as_utc(self._clock()))
            rows = db.exec(select(AlertSilenceRow).order_by(col(AlertSilenceRow.created_at).desc(),
                                                            col(AlertSilenceRow.id))).all()
            return [_record(row) for row in rows]


def in_force(db: Session, moment: datetime) -> list[SilenceRecord]:
    """The silences in force at ``moment``, newest first, read in ``db``'s transaction."""
    rows = db.exec(select(AlertSilenceRow).where(col(AlertSilenceRow.until) > moment)
                   .where(col(AlertSilenceRow.lifted_at).is_(None))
                   .order_by(col(AlertSilenceRow.created_at).desc(), col(AlertSilenceRow.id))).all()
    return [_record(row) for row in rows]


def _record(row: AlertSilenceRow) -> SilenceRecord:
    return SilenceRecord(id=row.id, rule=row.rule_pattern, subject=row.subject_pattern, until=as_utc(row.until),
                         reason=row.reason, created_by=row.created_by, created_at=as_utc(row.created_at),
                         lifted_at=None if row.lifted_at is None else as_utc(row.lifted_at), lifted_by=row.lifted_by)
