"""``platform.alerts``: rules evaluated over monitoring figures, the alerts they keep,
silences, and notifications to the sinks.

The monitor (mlops_lite/monitoring/loop.py) computes figures and hands them to
``Alerts.evaluate`` as observations; the state machine (machine.py) turns them into
alerts, and the sinks hear of fires and resolves (notices.py). ``evaluate`` never
waits on the network; ``drain``/``close`` wait for queued deliveries.

Operators' verbs (``acknowledge``, ``silence``, ``lift_silence``) are done by
``actor``, or by the platform's actor (``caller``) when they name none.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from mlops_lite.alerts.machine import (
    AlertMachine,
    AlertRecord,
    Transition,
    alert_object,
    alert_record,
    check_observation,
)
from mlops_lite.alerts.notices import Notice, Notifier
from mlops_lite.alerts.rules import AlertRule, Observation, check_rules, default_rules
from mlops_lite.alerts.silences import SilenceRecord, Silences, in_force
from mlops_lite.alerts.sinks import Sink
from mlops_lite.clock import as_utc, utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables.alerts import ALERT_STATES, OPEN_STATES, AlertRow

MAX_LIMIT = 10_000

# One lock per database, shared by every Alerts over it in this process: it keeps one
# open alert per (rule, subject) and serialises writes to alert rows.
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_LOCK = threading.Lock()


class Alerts:
    """Evaluates rules, keeps alerts and silences, notifies sinks.

    ``actor`` is who the audit chain names for fires and resolves (the monitor);
    ``caller`` acknowledges, silences and lifts when those verbs name no actor.
    ``rules`` defaults to ``default_rules()``; ``set_rules`` swaps them.
    """

    def __init__(self, store: MetadataStore, audit: AuditTrail, actor: str, *, sinks: Sequence[Sink] = (),
                 clock: Callable[[], datetime] = utcnow, rules: Iterable[AlertRule] | None = None,
                 caller: str | None = None) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._caller = caller
        self._rules: tuple[AlertRule, ...] = ()
        self.set_rules(default_rules() if rules is None else rules)
        with _LOCKS_LOCK:
            self._lock = _LOCKS.setdefault(store.url, threading.RLock())
        self._machine = AlertMachine(audit, _actor(actor))
        self._notifier = Notifier(store, self._lock, sinks)
        self._silences = Silences(store, audit, clock)

    # ---- rules and sinks

    def rules(self) -> builtins.list[AlertRule]:
        """The rules in force, in the order they are applied."""
        return builtins.list(self._rules)

    def set_rules(self, rules: Iterable[AlertRule]) -> None:
        """Replace the rules (validated first: AlertRules with unique names)."""
        self._rules = check_rules(rules)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return self._notifier.sinks

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for every sink's queued deliveries (and their status writes)."""
        return self._notifier.drain(timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Drain the sinks (up to ``timeout``) and close them."""
        self._notifier.close(timeout)

    # ---- the state machine

    def evaluate(self, observations: Iterable[Observation], now: datetime | None = None) -> builtins.list[Transition]:
        """Apply every matching rule to each observation (in order); return the changes.
        Notifications go out after the changes are committed."""
        moment = as_utc(now if now is not None else self._clock())
        checked = [check_observation(o) for o in observations]
        notices: builtins.list[Notice] = []

        def announce(row: AlertRow, action: str) -> bool:
            return self._notifier.queue(row, action, notices)

        with self._lock:
            with self._store.session() as db:
                transitions = self._machine.run(db, self._rules, checked, moment, in_force(db, moment), announce)
            for notice in notices:
                self._notifier.dispatch(notice)
        return transitions

    # ---- operators

    def get(self, id: str) -> AlertRecord:
        with self._store.session() as db:
            row = db.get(AlertRow, id)
            if row is None:
                raise NotFound(f"no alert {id!r}", details={"alert": id})
            return alert_record(row)

    def open_alerts(self) -> builtins.list[AlertRecord]:
        """Pending and firing alerts, newest first."""
        with self._store.session() as db:
            rows = db.exec(select(AlertRow).where(col(AlertRow.state).in_(OPEN_STATES))
                           .order_by(col(AlertRow.started_at).desc(), col(AlertRow.id))).all()
            return [alert_record(row) for row in rows]

    def list(self, state: str | None = None, subject: str | None = None,
             limit: int = 100) -> builtins.list[AlertRecord]:
        """Alerts, newest first, optionally of one state and/or subject."""
        if state is not None and state not in ALERT_STATES:
            raise InvalidInput(f"unknown alert state {state!r}", field="state", expected=" | ".join(ALERT_STATES))
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be from 1 to {MAX_LIMIT}, got {limit!r}", field="limit",
                               expected=f"a whole number from 1 to {MAX_LIMIT}")
        query = select(AlertRow)
        if state is not None:
            query = query.where(AlertRow.state == state)
        if subject is not None:
            query = query.where(AlertRow.subject == subject)
        query = query.order_by(col(AlertRow.started_at).desc(), col(AlertRow.id)).limit(limit)
        with self._store.session() as db:
            return [alert_record(row) for row in db.exec(query).all()]

    def acknowledge(self, id: str, actor: str | None = None) -> AlertRecord:
        """Record that ``actor`` has seen the alert (any state); Conflict if already done."""
        actor = self._acting(actor)
        with self._lock, self._store.session() as db:
            row = db.get(AlertRow, id)
            if row is None:
                raise NotFound(f"no alert {id!r}", details={"alert": id})
            if row.acknowledged_by is not None:
                raise Conflict(f"alert {id} was already acknowledged by {row.acknowledged_by} "
                               f"at {as_utc(row.acknowledged_at or row.started_at).isoformat()}",
                               details={"alert": id, "acknowledged_by": row.acknowledged_by})
            row.acknowledged_by = actor
            row.acknowledged_at = as_utc(self._clock())
            db.add(row)
            self._audit.append(db, actor=actor, action="alert.acknowledge", object=alert_object(row),
                               before={"acknowledged_by": None},
                               after={"id": row.id, "state": row.state, "acknowledged_by": actor})
            return alert_record(row)

    # ---- silences

    def silence(self, rule: str | None = None, subject: str | None = None, *, until: datetime | timedelta,
                reason: str, actor: str | None = None) -> SilenceRecord:
        """Hold back notifications of alerts whose rule and subject match these fnmatch
        patterns (None: any; name at least one, "*" for everything) until ``until``
        (a time, or a duration from now)."""
        return self._silences.create(rule, subject, until=until, reason=reason, actor=self._acting(actor))

    def silences(self, active: bool = True) -> builtins.list[SilenceRecord]:
        """Silences, newest first: only those in force now unless ``active`` is False."""
        return self._silences.list(active)

    def lift_silence(self, id: str, actor: str | None = None) -> SilenceRecord:
        """End a silence now; Conflict if it was lifted already."""
        return self._silences.lift(id, self._acting(actor))

    def _acting(self, actor: str | None) -> str:
        return _actor(self._caller if actor is None else actor)


def _actor(actor: Any) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidInput(f"actor must be a non-empty name, got {actor!r}", field="actor",
                           expected="who acts, e.g. token:alice")
    return actor
