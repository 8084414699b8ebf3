"""The webhook client: an event POSTed as JSON, with retries, and a queued sink over it.

``Webhook.post`` sends one event now, in the caller's thread, and never raises: one
attempt plus up to ``retries`` more, waiting ``backoff_s``, 2x, 4x ... between them,
each with a ``timeout_s`` timeout; a 4xx answer (other than 408 and 429) is not
retried. ``WebhookSink`` posts from a background thread so that evaluating alerts
never waits on the network; approvals' notifications post in the caller's thread
(mlops_lite/policy/notify.py).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from mlops_lite.alerts.rules import is_finite_number
from mlops_lite.alerts.sinks import Delivery, Report, unobserved
from mlops_lite.errors import InvalidInput

log = logging.getLogger("mlops_lite.alerts")

_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_STOP = object()


class Webhook:
    """POSTs JSON events to ``url`` (see the module docstring)."""

    def __init__(self, url: str, *, retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 2.0) -> None:
        if not isinstance(url, str) or not _URL.match(url):
            raise InvalidInput(f"webhook {url!r} is not an http(s) URL", field="url",
                               expected="http://host:port/path")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidInput(f"retries must be a whole number >= 0, got {retries!r}", field="retries")
        if not is_finite_number(backoff_s) or backoff_s < 0:
            raise InvalidInput(f"backoff_s must be a number >= 0, got {backoff_s!r}", field="backoff_s")
        if not is_finite_number(timeout_s) or timeout_s <= 0:
            raise InvalidInput(f"timeout_s must be a number > 0, got {timeout_s!r}", field="timeout_s")
        self.url = url
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.timeout_s = float(timeout_s)

    def post(self, event: dict[str, Any]) -> Delivery:
        """POST ``event`` now, in this thread, with the retries; never raises."""
        body = json.dumps(event, sort_keys=True, default=str).encode()
        error = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            attempts += 1
            request = urllib.request.Request(self.url, data=body, method="POST", headers={
                "content-type": "application/json", "user-agent": "mlops-lite"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                return Delivery(ok=True, attempts=attempts)
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} {exc.reason}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                error = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
            except Exception as exc:  # a bad URL that the pattern let through, for one: never raise
                error = f"{type(exc).__name__}: {exc}"
                break
            log.debug("webhook %s attempt %d for %s failed: %s", self.url, attempts, event.get("id"), error)
        return Delivery(ok=False, attempts=attempts, error=error)

    def __repr__(self) -> str:
        return f"Webhook({self.url!r})"


class WebhookSink:
    """A sink that POSTs each event to ``url`` from a background thread (``Webhook``'s
    retries and timeouts). ``send`` returns at once; ``drain`` waits for what is
    queued; ``close`` stops."""

    def __init__(self, url: str, *, retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 2.0,
                 max_queue: int = 1000) -> None:
        self.webhook = Webhook(url, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
        self.url = url
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._idle = threading.Condition()
        self._unfinished = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def send(self, event: dict[str, Any], done: Report = unobserved) -> None:
        with self._idle:
            if self._closed:
                refused = "the webhook sink is closed"
            else:
                refused = None
                self._unfinished += 1
        if refused is None:
            self._ensure_thread()
            try:
                self._queue.put_nowait((event, done))
                return
            except queue.Full:
                self._finish_one()
                refused = f"the webhook queue is full ({self._queue.maxsize} events waiting)"
        log.warning("webhook %s: %s %s not sent: %s", self.url, event.get("event"), event.get("id"), refused)
        done(Delivery(ok=False, attempts=0, error=refused))

    def deliver(self, event: dict[str, Any]) -> Delivery:
        """POST ``event`` now, in this thread, with the retries; never raises."""
        result = self.webhook.post(event)
        if not result.ok:
            log.warning("webhook %s: %s %s undelivered after %d attempts: %s", self.url, event.get("event"),
                        event.get("id"), result.attempts, result.error)
        return result

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was delivered or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the thread."""
        with self._idle:
            self._closed = True
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"alert-webhook {self.url}", daemon=True)
                self._thread.start()

    def _finish_one(self) -> None:
        with self._idle:
            self._unfinished -= 1
            self._idle.notify_all()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._refuse_left()
                return
            event, done = item
            try:
                result = self.deliver(event)
            except Exception as exc:  # never let the thread die
                result = Delivery(ok=False, attempts=0, error=f"{type(exc).__name__}: {exc}")
            try:
                done(result)
            except Exception:
                log.exception("recording the delivery of %s %s failed", event.get("event"), event.get("id"))
            finally:
                self._finish_one()

    def _refuse_left(self) -> None:
        """Events that slipped in behind the stop are refused, so drain() never hangs."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                continue
            event, done = item
            try:
                done(Delivery(ok=False, attempts=0, error="the webhook sink is closed"))
            except Exception:
                log.exception("recording the delivery of %s %s failed", event.get("event"), event.get("id"))
            finally:
                self._finish_one()

    def __repr__(self) -> str:
        return f"WebhookSink({self.url!r})"
