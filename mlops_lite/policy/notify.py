"""Alert sinks for policy decisions and approval requests.

A sink takes one event: a JSON-ready dict with at least ``event`` (e.g.
``approval.requested``), ``model``, ``version`` and ``alias``. Sinks never raise:
a notification that cannot be delivered is logged and the change it reports
stands. Sinks are the log (always) plus a webhook from the settings
(``alert_webhook``, when the Settings carry it) and from the model's policy
(``[notify] webhook``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol

logger = logging.getLogger("mlops_lite.policy.notify")

WEBHOOK_TIMEOUT_S = 2.0


class Sink(Protocol):
    def send(self, event: dict[str, Any]) -> None: ...


class LogSink:
    """Writes each event as one JSON line at INFO to ``mlops_lite.policy.notify``."""

    def __init__(self, logger_: logging.Logger | None = None) -> None:
        self._logger = logger_ or logger

    def send(self, event: dict[str, Any]) -> None:
        self._logger.info("%s %s", event.get("event", "event"), json.dumps(event, sort_keys=True, default=str))

    def __repr__(self) -> str:
        return "LogSink()"


class WebhookSink:
    """POSTs each event as JSON to ``url`` (2 s timeout); failures are logged, never raised."""

    def __init__(self, url: str, *, timeout: float = WEBHOOK_TIMEOUT_S) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, event: dict[str, Any]) -> None:
        import httpx  # loaded on the first webhook, not by every command that opens the platform

        try:
            body = json.dumps(event, sort_keys=True, default=str).encode()
            response = httpx.post(self.url, content=body, timeout=self.timeout,
                                  headers={"content-type": "application/json", "user-agent": "mlops-lite"})
            if response.status_code >= 400:
                logger.warning("webhook %s answered %s to %s", self.url, response.status_code, event.get("event"))
        except Exception as exc:  # a sink never breaks the change it reports
            logger.warning("webhook %s failed for %s: %s", self.url, event.get("event"), exc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebhookSink) and other.url == self.url

    def __hash__(self) -> int:
        return hash(("webhook", self.url))

    def __repr__(self) -> str:
        return f"WebhookSink({self.url!r})"


def sinks_for(webhooks: Iterable[str | None]) -> list[Sink]:
    """The log sink plus one webhook sink per distinct URL."""
    sinks: list[Sink] = [LogSink()]
    seen: set[str] = set()
    for url in webhooks:
        if url and url not in seen:
            seen.add(url)
            sinks.append(WebhookSink(url))
    return sinks


def notify(sinks: Iterable[Sink], event: dict[str, Any]) -> None:
    for sink in sinks:
        try:
            sink.send(event)
        except Exception as exc:  # a third-party sink that raises anyway
            logger.warning("alert sink %r failed for %s: %s", sink, event.get("event"), exc)
