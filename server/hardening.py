"""The HTTP surface's defences, one per section: security headers on every answer, request
body limits per route (and the streamed body uploads read), the count of failed
authentications that answers 429, who may read /metrics and /schema without a token, and
the server's folders kept out of answers. docs/hardening.md says it for users.

- Headers (``security_headers``, a ``before_send`` hook, so 404s and errors get them
  too): ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
  ``X-Frame-Options: DENY`` everywhere; ``Cache-Control: no-store`` on every API answer
  that does not set its own (tokens, access keys and whoami are among them);
  ``Strict-Transport-Security`` only on a request that came over TLS.
- Body limits (``BodyLimit``, app middleware, so it runs before guards and handlers): a
  route declares its class in ``opt={"body": "predict" | "upload"}``; every other route
  gets the small JSON limit. A ``Content-Length`` above the limit is answered 413 before a
  byte of the body is read; a body without one is counted as it streams and stopped at the
  limit. The answer names the limit and the setting that changes it.
- Failed authentications (``FailedLogins``): every refused credential that was presented
  counts against the client's address and against the identity it claimed (an access key
  id, a token's hash prefix, a JWT's unverified issuer and subject). Past
  ``auth_failures_max`` within ``auth_failures_window_s`` the guards answer 429 with
  ``Retry-After`` before looking at any credential. A missing credential does not count,
  nor does a good one. Memory is bounded: the least recently seen keys are forgotten.
  From an ``auth_proxies`` address (a serving replica, a reverse proxy) the client is the
  one its ``X-Forwarded-For`` names, never the proxy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from anyio import from_thread
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from mlops_lite.config import Settings
from mlops_lite.errors import MlopsLiteError

# ------------------------------------------------------------------------------ headers

ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
          (b"x-frame-options", b"DENY"))
NO_STORE = (b"cache-control", b"no-store")
HSTS = (b"strict-transport-security", b"max-age=31536000")
API_PREFIXES = ("/v1", "/v2", "/api/v1")


async def security_headers(message: Message, scope: Scope) -> None:
    """Add the security headers to an answer's start (see the module docstring). Plain
    list work: this runs on every answer, predictions included."""
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers") or ())
    present = {name.lower() for name, _ in headers}
    headers.extend(pair for pair in ALWAYS if pair[0] not in present)
    if b"cache-control" not in present and scope.get("path", "").startswith(API_PREFIXES):
        headers.append(NO_STORE)
    if scope.get("scheme") == "https":
        headers.append(HSTS)
    message["headers"] = headers


# ------------------------------------------------------------------------------ body limits

# What each class of route may receive, and the setting that says how much.
BODY_LIMITS = {"json": "max_body_bytes", "predict": "max_predict_body_bytes", "upload": "max_upload_bytes"}


class BodyTooLarge(MlopsLiteError):
    """A request body past its route's limit (HTTP 413)."""

    code = "body_too_large"
    http_status = 413


def body_class(scope: Scope) -> str:
    """The body class a route declares (``opt["body"]``); the Open Inference Protocol's
    infer routes take prediction batches; any other route a small JSON body."""
    handler = scope.get("route_handler")
    declared = handler.opt.get("body") if handler is not None else None
    if declared in BODY_LIMITS:
        return str(declared)
    if scope.get("path", "").startswith("/v2/") and scope.get("path", "").endswith("/infer"):
        return "predict"
    return "json"


def too_large(settings: Settings, kind: str) -> BodyTooLarge:
    setting = BODY_LIMITS[kind]
    limit = int(getattr(settings, setting))
    return BodyTooLarge(
        f"the request body is larger than this route's limit of {limit} bytes ({kind} bodies); "
        f"the server's setting {setting} (MLOPS_LITE_{setting.upper()}) raises it",
        details={"field": "body", "expected": f"at most {limit} bytes", "limit": limit, "setting": setting})


class BodyLimit:
    """App middleware enforcing the route's body limit (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        settings: Settings = scope["app"].state.platform.settings
        kind = body_class(scope)
        limit = int(getattr(settings, BODY_LIMITS[kind]))
        announced = _content_length(scope)
        if announced is not None and announced > limit:
            await _answer(send, too_large(settings, kind))
            return
        received = 0

        async def counted() -> ReceiveMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(settings, kind)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(send: Send, error: MlopsLiteError) -> None:
    """The 413 itself, in the shape both dialects read (``code`` and ``message``)."""
    body = json.dumps(error.to_dict()).encode()
    await send({"type": "http.response.start", "status": error.http_status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class StreamedBody:
    """A blocking file-like view of a request body for a worker thread: each ``read`` pulls
    the next chunks from the event loop, so an upload is stored in bounded memory (and
    BodyLimit's count still stops it at the route's limit)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._done = False

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = from_thread.run(self._next)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


# ------------------------------------------------------------------------------ failed authentications

MAX_TRACKED = 10_000  # keys remembered; the least recently seen go first


class TooManyFailures(MlopsLiteError):
    """Too many refused credentials from this client or for this identity (HTTP 429)."""

    code = "too_many_failed_authentications"
    http_status = 429

    def __init__(self, retry_after_s: int, key: str) -> None:
        super().__init__(f"too many failed authentications for this {key}; try again in {retry_after_s} s",
                         details={"retry_after_s": retry_after_s})
        self.headers = {"Retry-After": str(retry_after_s)}


class FailedLogins:
    """Failures per key in a sliding window, for at most ``max_tracked`` keys (LRU)."""

    def __init__(self, max_failures: int, window_s: float, *, max_tracked: int = MAX_TRACKED,
                 clock: Any = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_tracked = max_tracked
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def record(self, keys: list[str]) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._seen.pop(key, None) or deque(maxlen=self.max_failures)
                times.append(now)
                self._seen[key] = times
            while len(self._seen) > self.max_tracked:
                self._seen.popitem(last=False)

    def check(self, keys: list[str]) -> None:
        """TooManyFailures when any key has failed ``max_failures`` times in the window."""
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._seen.get(key)
                if times is None or len(times) < self.max_failures:
                    continue
                wait = times[0] + self.window_s - now
                if wait > 0:
                    raise TooManyFailures(max(1, math.ceil(wait)), key.split(":", 1)[0])


def failure_keys(client: str | None, authorization: str, *, proxies: Sequence[str] = (),
                 forwarded_for: str = "") -> list[str]:
    """The keys a request's failure counts against: its client address and, when it
    presented a credential, the identity that credential claims. No credential: none.
    From one of ``proxies`` (``auth_proxies``) the client is the last address of
    ``forwarded_for`` (what the proxy appended), or none when it sent none."""
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if not value:
        return []
    if client in proxies:
        client = forwarded_for.split(",")[-1].strip() or None
        keys = [f"client:{client}"] if client else []
    else:
        keys = [f"client:{client or 'unknown'}"]
    claimed = _claimed_identity(scheme.lower(), value)
    if claimed:
        keys.append(f"identity:{claimed}")
    return keys


def _claimed_identity(scheme: str, value: str) -> str | None:
    if scheme == "basic":
        try:
            key_id = base64.b64decode(value, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
        return f"access-key:{key_id}" if key_id else None
    if scheme != "bearer":
        return None
    subject = _jwt_subject(value)
    if subject is not None:
        return f"jwt:{subject}"
    return f"token:{hashlib.sha256(value.encode()).hexdigest()[:16]}"


def _jwt_subject(token: str) -> str | None:
    """A JWT's ``iss#sub`` read without trusting it (only to count failures by)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
        return None
    return f"{claims.get('iss', '')}#{claims['sub']}"[:300]


def proxies_of(app: Any) -> list[str]:
    """The app's ``auth_proxies`` (none where its platform has no settings)."""
    settings = getattr(app.state.get("platform"), "settings", None)
    return list(settings.auth_proxies) if isinstance(settings, Settings) else []


def failed_logins(app: Any) -> FailedLogins:
    """The app's failure counts, made on first use from its platform's settings (the
    defaults where the platform has none, as a serving worker's)."""
    state = app.state
    counts: FailedLogins | None = state.get("failed_logins")
    if counts is None:
        settings = getattr(state.get("platform"), "settings", None)
        if not isinstance(settings, Settings):
            settings = Settings.model_construct()
        counts = state["failed_logins"] = FailedLogins(settings.auth_failures_max, settings.auth_failures_window_s)
    return counts


# ------------------------------------------------------------------------------ /metrics and /schema

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def metrics_public(settings: Settings) -> bool:
    """Whether /metrics and /schema answer without a token: ``public_metrics`` when set,
    else only when the server binds a loopback address."""
    if settings.public_metrics is not None:
        return settings.public_metrics
    return settings.host in LOOPBACK_HOSTS or settings.host.startswith("127.")


def metrics_open(app: Any) -> bool:
    """``metrics_public`` of the app's platform's settings, decided once per app."""
    state = app.state
    public: bool | None = state.get("public_metrics")
    if public is None:
        settings = getattr(state.get("platform"), "settings", None)
        public = state["public_metrics"] = metrics_public(settings) if isinstance(settings, Settings) else False
    return public


# ------------------------------------------------------------------------------ paths in answers


def hide_home(text: str, home: Path) -> str:
    """``text`` with the server's home folder (and its resolved form) said as ``<home>``:
    an answer never tells a client where the server keeps its files."""
    for form in {str(home), str(home.resolve())}:
        if len(form) > 1:
            text = text.replace(form, "<home>")
    return text
