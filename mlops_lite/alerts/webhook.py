"""The webhook client: an event POSTed as JSON, with retries, and a queued sink over it.

``Webhook.post`` sends one event now, in the caller's thread, and never raises: one
attempt plus up to ``retries`` more, waiting ``backoff_s``, 2x, 4x ... between them,
each with a ``timeout_s`` timeout; a 4xx answer (other than 408 and 429) is not
retried, and a redirect is not followed.

A webhook reaches only what the allow-list names (``webhook_allow`` in the settings:
``"host:port"`` or ``"host:*"``): a URL whose host and port are not listed is refused
when the webhook is made (InvalidInput). At each send the host is resolved and every
address checked: a private, loopback, link-local (cloud metadata among them: 169.254.169.254,
fd00:ec2::254) or otherwise non-public address is refused unless that address itself is
listed, before any connection; the connection then goes to the address that was checked
(a DNS answer that changes in between cannot redirect it). Logs name a webhook by its
scheme, host and port only: a path may carry a secret (Slack's do). ``WebhookSink`` posts from a background thread so that evaluating alerts
never waits on the network; approvals' notifications post in the caller's thread
(mlops_lite/policy/notify.py).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import queue
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from mlops_lite.alerts.rules import is_finite_number
from mlops_lite.alerts.sinks import Delivery, Report, unobserved
from mlops_lite.errors import InvalidInput

log = logging.getLogger("mlops_lite.alerts")

_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_STOP = object()


# Never reachable through a webhook unless the address itself is listed, even if public.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                                ipaddress.ip_address("100.100.100.200")})


class WebhookAllowList:
    """The hosts and ports webhooks may reach (see the module docstring)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.entries: list[tuple[str, int | None]] = []
        for entry in entries:
            host, _, port = entry.rpartition(":")
            if not host or not (port == "*" or port.isdigit()):
                raise InvalidInput(f"webhook_allow entry {entry!r} is not 'host:port' or 'host:*'",
                                   field="webhook_allow", expected="'hooks.example.com:443' or '127.0.0.1:*'")
            self.entries.append((host.strip("[]").lower(), None if port == "*" else int(port)))

    def _listed(self, host: str, port: int) -> bool:
        return any(h == host and p in (None, port) for h, p in self.entries)

    def check_url(self, url: str) -> tuple[str, int]:
        """The URL's host and port when the list names them; InvalidInput otherwise."""
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise InvalidInput(f"webhook {shown(url)} has no valid port", field="url",
                               expected="http://host:port/path") from exc
        host = (parts.hostname or "").lower()
        if not self._listed(host, port):
            raise InvalidInput(f"webhook {shown(url)} is not in webhook_allow; add '{_entry(host, port)}' to the "
                               f"settings' webhook_allow to let it through", field="url",
                               expected=f"a host:port in webhook_allow ({self.describe()})")
        return host, port

    def resolve(self, host: str, port: int) -> str:
        """An address of ``host`` a webhook may connect to; InvalidInput when every address
        is refused (a non-public address must be listed itself)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise InvalidInput(f"webhook host {host!r} does not resolve: {exc}", field="url") from exc
        refused: list[str] = []
        for info in infos:
            address = str(info[4][0]).split("%")[0]
            ip = ipaddress.ip_address(address)
            if (ip.is_global and ip not in METADATA_ADDRESSES) or self._listed(str(ip), port):
                return address
            refused.append(address)
        raise InvalidInput(f"webhook host {host!r} resolves to {', '.join(sorted(set(refused)))}: a private, "
                           f"loopback, link-local or metadata address is reached only when listed in webhook_allow "
                           f"(e.g. '{_entry(refused[0] if refused else host, port)}')", field="url")

    def describe(self) -> str:
        return ", ".join(_entry(h, p) for h, p in self.entries) or "empty"


def _entry(host: str, port: int | None) -> str:
    shown_host = f"[{host}]" if ":" in host else host
    return f"{shown_host}:{'*' if port is None else port}"


def shown(url: str) -> str:
    """A webhook URL as logs and errors show it: scheme, host and port (a path or query
    may carry a secret)."""
    parts = urllib.parse.urlsplit(url)
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{rest}"


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to ``host`` made to the address already checked."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to ``host`` made to the address already checked; the
    certificate is verified for ``host``."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


class Webhook:
    """POSTs JSON events to ``url`` (see the module docstring)."""

    def __init__(self, url: str, *, retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 2.0,
                 allow: Sequence[str] = ()) -> None:
        if not isinstance(url, str) or not _URL.match(url):
            raise InvalidInput(f"webhook {url!r} is not an http(s) URL", field="url",
                               expected="http://host:port/path")
        self.allow = WebhookAllowList(allow)
        self.host, self.port = self.allow.check_url(url)
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
        try:
            address = self.allow.resolve(self.host, self.port)
        except InvalidInput as exc:
            log.warning("webhook %s refused: %s", shown(self.url), exc.message)
            return Delivery(ok=False, attempts=0, error=f"refused: {exc.message}")
        error = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            attempts += 1
            try:
                status, reason = self._send(address, body)
                if 200 <= status < 300:
                    return Delivery(ok=True, attempts=attempts)
                error = f"HTTP {status} {reason}"
                if 300 <= status < 400:
                    error += " (redirects are not followed)"
                    break
                if 400 <= status < 500 and status not in (408, 429):
                    break
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a malformed answer, for one: never raise
                error = f"{type(exc).__name__}: {exc}"
                break
            log.debug("webhook %s attempt %d for %s failed: %s", shown(self.url), attempts, event.get("id"), error)
        return Delivery(ok=False, attempts=attempts, error=error)

    def _send(self, address: str, body: bytes) -> tuple[int, str]:
        parts = urllib.parse.urlsplit(self.url)
        kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        connection = kind(self.host, self.port, address, self.timeout_s)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", target, body=body, headers={
                "content-type": "application/json", "user-agent": "mlops-lite"})
            response = connection.getresponse()
            response.read()
            return response.status, response.reason
        finally:
            connection.close()

    def __repr__(self) -> str:
        return f"Webhook({shown(self.url)!r})"


class WebhookSink:
    """A sink that POSTs each event to ``url`` from a background thread (``Webhook``'s
    retries and timeouts). ``send`` returns at once; ``drain`` waits for what is
    queued; ``close`` stops."""

    def __init__(self, url: str, *, retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 2.0,
                 max_queue: int = 1000, allow: Sequence[str] = ()) -> None:
        self.webhook = Webhook(url, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, allow=allow)
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
        log.warning("webhook %s: %s %s not sent: %s", shown(self.url), event.get("event"), event.get("id"), refused)
        done(Delivery(ok=False, attempts=0, error=refused))

    def deliver(self, event: dict[str, Any]) -> Delivery:
        """POST ``event`` now, in this thread, with the retries; never raises."""
        result = self.webhook.post(event)
        if not result.ok:
            log.warning("webhook %s: %s %s undelivered after %d attempts: %s", shown(self.url), event.get("event"),
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
                self._thread = threading.Thread(target=self._run, name=f"alert-webhook {shown(self.url)}", daemon=True)
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
        return f"WebhookSink({shown(self.url)!r})"
