"""The alert state machine: one alert per (rule, subject) goes pending -> firing -> resolved.

For each observation and each rule whose metric (and subject, when the rule names one)
matches it:

    condition holds, nothing open   -> a new alert: ``pending``, or ``firing`` at once
                                       when the rule's ``for_s`` is 0
    condition holds, alert pending  -> ``firing`` once it has held for ``for_s`` seconds
    condition holds, alert firing   -> stays firing: the figures are refreshed, nobody
                                       is told again (de-duplication)
    condition clears                -> the open alert is ``resolved``; a later breach
                                       opens a new alert

At most one alert per (rule, subject) is open (pending or firing). Going ``firing``
and resolving a fired alert are audit events (``alert.fire``, ``alert.resolve``) and
are announced to the sinks; an alert that resolves while still pending was never
announced, so it is neither. A non-finite value (NaN: no figure this window) changes
nothing. A silenced alert changes state all the same and is announced to nobody; a
fired alert that was silenced is not announced as resolved either.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from mlops_lite.alerts.rules import AlertRule, Observation
from mlops_lite.alerts.silences import SilenceRecord, covering
from mlops_lite.clock import as_utc
from mlops_lite.errors import InvalidInput
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.tables.alerts import OPEN_STATES, AlertRow
from mlops_lite.records import AlertRecord as AlertRecord

Announce = Callable[[AlertRow, str], bool]
"""Hands an alert's change (``alert.fire`` or ``alert.resolve``) to the sinks once the
transaction commits; answers whether anyone is to be told (False: no sinks)."""


@dataclass(frozen=True)
class Transition:
    """An alert changed state: ``previous`` (None for a new alert) -> ``state``.
    ``notified``: the change was handed to the sinks (firing and resolved, unsilenced)."""

    alert: AlertRecord
    previous: str | None
    state: str
    notified: bool

    @property
    def event(self) -> str:
        return {"firing": "alert.fire", "resolved": "alert.resolve"}.get(self.state, "alert.pending")


class AlertMachine:
    """Applies rules to observations inside one transaction; ``actor`` is who the audit
    chain names for fires and resolves (the monitor)."""

    def __init__(self, audit: AuditTrail, actor: str) -> None:
        self._audit = audit
        self._actor = actor

    def run(self, db: Session, rules: Sequence[AlertRule], observations: Iterable[Observation], moment: datetime,
            silences: list[SilenceRecord], announce: Announce) -> list[Transition]:
        """Every matching rule on each observation, in order; the changes, as transitions."""
        open_rows = {(row.rule, row.subject): row for row in db.exec(
            select(AlertRow).where(col(AlertRow.state).in_(OPEN_STATES))).all()}
        transitions: list[Transition] = []
        for observation in observations:
            if not math.isfinite(observation.value):
                continue
            for rule in rules:
                if rule.matches(observation):
                    change = self._step(db, rule, observation, moment, open_rows, silences, announce)
                    if change is not None:
                        transitions.append(change)
        return transitions

    def _step(self, db: Session, rule: AlertRule, observation: Observation, moment: datetime,
              open_rows: dict[tuple[str, str], AlertRow], silences: list[SilenceRecord],
              announce: Announce) -> Transition | None:
        key = (rule.name, observation.subject)
        row = open_rows.get(key)
        if rule.holds(observation.value):
            if row is None:
                row = AlertRow(id=uuid.uuid4().hex, rule=rule.name, metric=rule.metric, subject=observation.subject,
                               op=rule.op, state="pending", severity=rule.severity, value=observation.value,
                               threshold=rule.threshold, description=rule.description, started_at=moment,
                               last_seen_at=moment, evidence=_dumps(observation.evidence))
                open_rows[key] = row
                if rule.for_s > 0:
                    db.add(row)
                    db.flush()
                    return Transition(alert_record(row), None, "pending", notified=False)
                return self._fire(db, row, None, moment, silences, announce)
            row.value = observation.value
            row.evidence = _dumps(observation.evidence)
            row.last_seen_at = moment
            row.op, row.threshold, row.severity = rule.op, rule.threshold, rule.severity
            row.description = rule.description
            if row.state == "pending" and (moment - as_utc(row.started_at)).total_seconds() >= rule.for_s:
                return self._fire(db, row, "pending", moment, silences, announce)
            db.add(row)  # still pending, or firing and already announced: no one is told again
            return None
        if row is None:
            return None
        del open_rows[key]
        previous = row.state
        row.value = observation.value
        row.evidence = _dumps(observation.evidence)
        row.last_seen_at = moment
        row.state = "resolved"
        row.resolved_at = moment
        notified = False
        if previous == "firing":
            silence = covering(silences, row.rule, row.subject)
            if silence is not None:
                row.silenced, row.silence_id, row.delivery = True, silence.id, "silenced"
            elif not row.silenced:
                notified = announce(row, "alert.resolve")
            db.add(row)
            self._audit.append(db, actor=self._actor, action="alert.resolve", object=alert_object(row),
                               before={"state": previous}, after=_audited(row))
        db.add(row)
        db.flush()
        return Transition(alert_record(row), previous, "resolved", notified=notified)

    def _fire(self, db: Session, row: AlertRow, previous: str | None, moment: datetime,
              silences: list[SilenceRecord], announce: Announce) -> Transition:
        row.state = "firing"
        row.fired_at = moment
        silence = covering(silences, row.rule, row.subject)
        notified = False
        if silence is not None:
            row.silenced, row.silence_id, row.delivery = True, silence.id, "silenced"
        else:
            notified = announce(row, "alert.fire")
        db.add(row)
        self._audit.append(db, actor=self._actor, action="alert.fire", object=alert_object(row),
                           before={"state": previous}, after=_audited(row))
        db.flush()
        return Transition(alert_record(row), previous, "firing", notified=notified)


def check_observation(observation: Any) -> Observation:
    """``observation`` if it is a well-formed Observation; InvalidInput naming the field if not."""
    if not isinstance(observation, Observation):
        raise InvalidInput(f"not an Observation: {observation!r}", field="observations")
    if not isinstance(observation.metric, str) or not observation.metric:
        raise InvalidInput(f"observation metric must be a name, got {observation.metric!r}", field="metric")
    if not isinstance(observation.subject, str):
        raise InvalidInput(f"observation subject must be a string, got {observation.subject!r}", field="subject",
                           expected='a deployment name, or "" for platform-wide figures')
    if not isinstance(observation.value, int | float) or isinstance(observation.value, bool):
        raise InvalidInput(f"observation value must be a number, got {observation.value!r}", field="value")
    if not isinstance(observation.evidence, dict):
        raise InvalidInput(f"observation evidence must be a dict, got {observation.evidence!r}", field="evidence")
    return observation


def alert_object(row: AlertRow) -> str:
    """The audit chain's name for an alert: ``alert:<rule>@<subject>``."""
    return f"alert:{row.rule}@{row.subject}"


def alert_record(row: AlertRow) -> AlertRecord:
    def maybe(value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    return AlertRecord(id=row.id, rule=row.rule, metric=row.metric, subject=row.subject, state=row.state,
                       severity=row.severity, value=row.value, op=row.op, threshold=row.threshold,
                       description=row.description, started_at=as_utc(row.started_at),
                       last_seen_at=as_utc(row.last_seen_at), fired_at=maybe(row.fired_at),
                       resolved_at=maybe(row.resolved_at), acknowledged_by=row.acknowledged_by,
                       acknowledged_at=maybe(row.acknowledged_at), evidence=json.loads(row.evidence),
                       silenced=row.silenced, delivery=row.delivery, attempts=row.attempts,
                       last_error=row.last_error)


def _dumps(evidence: dict[str, Any]) -> str:
    return json.dumps(evidence, sort_keys=True, default=str)


def _audited(row: AlertRow) -> dict[str, Any]:
    return {"id": row.id, "state": row.state, "metric": row.metric, "value": row.value, "op": row.op,
            "threshold": row.threshold, "severity": row.severity, "silenced": row.silenced,
            "evidence": json.loads(row.evidence)}
