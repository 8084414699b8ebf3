"""Sinks: where notifications go. One interface for alerts and approvals alike.

A sink takes one JSON-ready event (a dict with at least ``event``, e.g. ``alert.fire``
or ``approval.requested``) and reports its delivery by calling ``done`` exactly once
with a ``Delivery``, now or later from another thread. A sink never raises; a
third-party one that does anyway is caught by ``send_to`` and counted undelivered.
Optional: ``drain(timeout) -> bool`` (wait for what is queued) and ``close(timeout)``.

Alerts write the reported delivery onto the alert row (mlops_lite/alerts/notices.py);
approvals' notifications (mlops_lite/policy/notify.py) only log a failure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("mlops_lite.alerts")

_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


@dataclass(frozen=True)
class Delivery:
    """What a sink reports for one event: delivered or not, after how many attempts."""

    ok: bool
    attempts: int = 1
    error: str | None = None


Report = Callable[[Delivery], None]
"""How a sink hands back the outcome of one event."""


def unobserved(delivery: Delivery) -> None:
    """The ``done`` of a caller that does not wait for the outcome (the sink logs failures)."""


class Sink(Protocol):
    """Takes one JSON-ready event and calls ``done`` exactly once with its Delivery."""

    def send(self, event: dict[str, Any], done: Report = unobserved) -> None: ...


def send_to(sink: Sink, event: dict[str, Any], done: Report = unobserved, logger: logging.Logger = log) -> None:
    """``sink.send(event, done)``; a sink that raises anyway is logged and reported undelivered."""
    try:
        sink.send(event, done)
    except Exception as exc:  # a third-party sink that raises anyway
        logger.warning("alert sink %r failed for %s: %s", sink, event.get("id") or event.get("event"), exc)
        done(Delivery(ok=False, attempts=1, error=f"{type(exc).__name__}: {exc}"))


# Evidence that carries rows of people's data (the feature-skew alert's entities and values):
# stored with the alert and shown to those who may read it, counted, never printed, in logs.
PRIVATE_EVIDENCE = ("rows",)


def loggable(evidence: Any) -> Any:
    """``evidence`` for a log line: the private parts replaced by how many items they hold."""
    if not isinstance(evidence, dict):
        return evidence
    return {key: (f"<{len(value)} withheld from logs>"
                  if key in PRIVATE_EVIDENCE and isinstance(value, list | tuple | dict) else value)
            for key, value in evidence.items()}


class LogSink:
    """Logs each alert event as one line to ``mlops_lite.alerts``: fire at the severity's
    level (critical as ERROR), resolve at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or log

    def send(self, event: dict[str, Any], done: Report = unobserved) -> None:
        level = _LOG_LEVELS.get(event.get("severity", ""), logging.WARNING) \
            if event.get("event") == "alert.fire" else logging.INFO
        self._logger.log(level, "%s %s on %r: %s %s %s (value %s) %s", event.get("event"), event.get("rule"),
                         event.get("subject"), event.get("metric"), event.get("op"), event.get("threshold"),
                         event.get("value"), json.dumps(loggable(event.get("evidence", {})), sort_keys=True, default=str))
        done(Delivery(ok=True))

    def __repr__(self) -> str:
        return "LogSink()"


class CallbackSink:
    """Calls ``fn(event)`` in the thread that sends: keep it quick and thread-safe
    (a TUI posts the event to its own loop). An exception is an undelivered event."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self._fn = fn

    def send(self, event: dict[str, Any], done: Report = unobserved) -> None:
        try:
            self._fn(event)
        except Exception as exc:
            done(Delivery(ok=False, error=f"{type(exc).__name__}: {exc}"))
        else:
            done(Delivery(ok=True))

    def __repr__(self) -> str:
        return f"CallbackSink({self._fn!r})"
