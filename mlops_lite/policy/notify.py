"""Alert sinks for policy decisions and approval requests.

A sink takes one event: a JSON-ready dict with at least ``event`` (e.g.
``approval.requested``), ``model``, ``version`` and ``alias``. Sinks never raise:
a notification that cannot be delivered is logged and the change it reports
stands. Sinks are the log (always) plus a webhook from the settings
(``alert_webhook``, when the Settings carry it) and from the model's policy
(``[notify] webhook``). They are the alerts' sinks (``mlops_lite.alerts.sinks.Sink``),
and the webhook posts with the alerts' client, once, in the caller's thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from mlops_lite.alerts.sinks import Delivery, Report, Sink, send_to, unobserved
from mlops_lite.alerts.webhook import Webhook, shown
from mlops_lite.errors import InvalidInput

logger = logging.getLogger("mlops_lite.policy.notify")

WEBHOOK_TIMEOUT_S = 2.0

__all__ = ["LogSink", "Sink", "WebhookSink", "notify", "sinks_for"]


class LogSink:
    """Writes each event as one JSON line at INFO to ``mlops_lite.policy.notify``."""

    def __init__(self, logger_: logging.Logger | None = None) -> None:
        self._logger = logger_ or logger

    def send(self, event: dict[str, Any], done: Report = unobserved) -> None:
        self._logger.info("%s %s", event.get("event", "event"), json.dumps(event, sort_keys=True, default=str))
        done(Delivery(ok=True))

    def __repr__(self) -> str:
        return "LogSink()"


class WebhookSink:
    """POSTs each event as JSON to ``url`` (2 s timeout); failures are logged, never raised."""

    def __init__(self, url: str, *, timeout: float = WEBHOOK_TIMEOUT_S, allow: Sequence[str] = ()) -> None:
        self.url = url
        self.timeout = timeout
        self._webhook = Webhook(url, retries=0, timeout_s=timeout, allow=allow)

    def send(self, event: dict[str, Any], done: Report = unobserved) -> None:
        result = self._webhook.post(event)  # never raises: a sink never breaks the change it reports
        if not result.ok:
            logger.warning("webhook %s failed for %s: %s", shown(self.url), event.get("event"), result.error)
        done(result)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebhookSink) and other.url == self.url

    def __hash__(self) -> int:
        return hash(("webhook", self.url))

    def __repr__(self) -> str:
        return f"WebhookSink({shown(self.url)!r})"


def sinks_for(webhooks: Iterable[str | None], allow: Sequence[str] = ()) -> list[Sink]:
    """The log sink plus one webhook sink per distinct URL that ``allow`` (the settings'
    ``webhook_allow``) lets through; a refused one is logged and left out."""
    sinks: list[Sink] = [LogSink()]
    seen: set[str] = set()
    for url in webhooks:
        if url and url not in seen:
            seen.add(url)
            try:
                sinks.append(WebhookSink(url, allow=allow))
            except InvalidInput as exc:
                logger.warning("webhook %s not used: %s", shown(url), exc.message)
    return sinks


def notify(sinks: Iterable[Sink], event: dict[str, Any]) -> None:
    for sink in sinks:
        send_to(sink, event, logger=logger)
