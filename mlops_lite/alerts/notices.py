"""Alert notifications: an alert's fire or resolve, out to every sink, and the outcome
written back on the alert row.

The row records ``delivery`` (pending | delivered | undelivered | silenced) with
``attempts`` and ``last_error``. A notification is queued inside the transaction that
changes the alert and sent once it commits; sinks report from any thread, and the
status is written when the last one has. ``notice_seq`` numbers an alert's
notifications, so a late report of an older one never overwrites a newer one's status.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mlops_lite.alerts.sinks import Delivery, Report, Sink, send_to
from mlops_lite.clock import as_utc
from mlops_lite.errors import Conflict
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables.alerts import AlertRow

log = logging.getLogger("mlops_lite.alerts")


class Notice:
    """One notification of one alert, out to every sink; written back once all reported."""

    def __init__(self, owner: Notifier, alert_id: str, seq: int, event: dict[str, Any], sinks: int) -> None:
        self.owner = owner
        self.alert_id = alert_id
        self.seq = seq
        self.event = event
        self.remaining = sinks
        self.results: list[Delivery] = []
        self.lock = threading.Lock()

    def callback(self) -> Report:
        """A ``done`` for one sink: the first call counts, later ones are ignored."""
        called = threading.Event()

        def done(result: Delivery) -> None:
            with self.lock:
                if called.is_set():
                    return
                called.set()
                self.results.append(result)
                self.remaining -= 1
                last = self.remaining == 0
            if last:
                self.owner.record_delivery(self)

        return done


class Notifier:
    """Sends alert notifications to ``sinks``; ``lock`` serialises writes to alert rows."""

    def __init__(self, store: MetadataStore, lock: threading.RLock, sinks: Sequence[Sink]) -> None:
        self._store = store
        self._lock = lock
        self.sinks = tuple(sinks)

    def queue(self, row: AlertRow, action: str, notices: list[Notice]) -> bool:
        """Mark ``row``'s delivery pending and add its notification to ``notices`` (sent
        after the commit); False, with nothing queued, when there are no sinks."""
        if not self.sinks:
            row.delivery = None
            return False
        row.notice_seq += 1
        row.delivery, row.attempts, row.last_error = "pending", 0, None
        notices.append(Notice(self, row.id, row.notice_seq, alert_event(action, row), len(self.sinks)))
        return True

    def dispatch(self, notice: Notice) -> None:
        for sink in self.sinks:
            send_to(sink, dict(notice.event), notice.callback())

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for every sink's queued deliveries (and their status writes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for sink in self.sinks:
            drain = getattr(sink, "drain", None)
            if drain is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ok = bool(drain(left)) and ok
        return ok

    def close(self, timeout: float | None = 5.0) -> None:
        """Drain the sinks (up to ``timeout``) and close them."""
        self.drain(timeout)
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close(0.5)

    def record_delivery(self, notice: Notice) -> None:
        """Write the outcome of a notification (called once every sink reported)."""
        failed = [r for r in notice.results if not r.ok]
        status = "undelivered" if failed else "delivered"
        attempts = max((r.attempts for r in notice.results), default=0)
        error = failed[-1].error if failed else None
        for attempt in range(3):
            try:
                with self._lock, self._store.session() as db:
                    row = db.get(AlertRow, notice.alert_id)
                    if row is None or row.notice_seq != notice.seq:
                        return  # a newer notification owns the status now
                    row.delivery, row.attempts, row.last_error = status, attempts, error
                    db.add(row)
                return
            except Conflict:
                time.sleep(0.05 * (attempt + 1))
            except Exception as exc:  # the store closed under a late delivery, for one
                log.warning("could not record the delivery of alert %s: %s", notice.alert_id, exc)
                return
        log.warning("could not record the delivery of alert %s: kept conflicting", notice.alert_id)


def alert_event(action: str, row: AlertRow) -> dict[str, Any]:
    """The JSON-ready notification the sinks receive."""

    def moment(value: datetime | None) -> str | None:
        return None if value is None else as_utc(value).isoformat()

    return {"event": action, "id": row.id, "rule": row.rule, "metric": row.metric, "subject": row.subject,
            "state": row.state, "severity": row.severity, "value": row.value, "op": row.op,
            "threshold": row.threshold, "description": row.description, "started_at": moment(row.started_at),
            "fired_at": moment(row.fired_at), "resolved_at": moment(row.resolved_at),
            "evidence": json.loads(row.evidence)}
