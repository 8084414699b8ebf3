"""Alerts: rules over monitoring figures, a state machine per (rule, subject), sinks.

A rule says when a figure is bad, e.g. ``drift.share >= 0.3`` for 5 minutes. The
monitor computes figures and hands them to ``Alerts.evaluate`` as observations;
for each rule whose metric (and subject, when the rule names one) matches:

    condition holds, nothing open   -> a new alert: ``pending``, or ``firing`` at once
                                       when the rule's ``for_s`` is 0
    condition holds, alert pending  -> ``firing`` once it has held for ``for_s`` seconds
    condition holds, alert firing   -> stays firing: the figures are refreshed, nobody
                                       is told again (de-duplication)
    condition clears                -> the open alert is ``resolved``; a later breach
                                       opens a new alert

At most one alert per (rule, subject) is open (pending or firing). Going ``firing``
and resolving a fired alert are audit events (``alert.fire``, ``alert.resolve``)
and notifications to the sinks; an alert that resolves while still pending was
never announced, so it is neither. A non-finite value (NaN: no figure this
window) changes nothing.

Silences hold notifications back, never state: a silenced alert still fires and
resolves (and is audited), is marked ``silenced``, and is sent to no sink. A fired
alert that was silenced is not announced as resolved either.

Sinks take a JSON-ready event and report its delivery through a callback, so the
alert row records ``delivery`` (pending | delivered | undelivered | silenced) with
``attempts`` and ``last_error``. ``WebhookSink`` posts in a background thread:
``evaluate`` never waits on the network; ``Alerts.drain``/``close`` wait for it.

Rules files are TOML, one ``[[rule]]`` table per rule::

    [[rule]]
    name = "latency-p99-high"      # unique; letters, digits, '_', '-', '.'
    metric = "latency.p99_ms"      # drift.share, quality.accuracy, errors.rate ...
    op = ">"                       # > >= < <=
    threshold = 250
    for_s = 60                     # seconds the condition must hold (default 0: at once)
    severity = "warning"           # info | warning | critical (default warning)
    subject = "loans"              # optional: only this deployment (default: any)
    description = "p99 latency above 250 ms"

A bad file raises InvalidInput naming the file, the line and the field
(``rule[1].op``), with ``details['line']``.
"""

from __future__ import annotations

import builtins
import fnmatch
import json
import logging
import math
import operator
import queue
import re
import threading
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, Protocol

from sqlmodel import Session, col, select

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.alert_tables import ALERT_STATES, OPEN_STATES, AlertRow, AlertSilenceRow
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.security.audit import AuditLog

log = logging.getLogger("mlops_lite.alerts")

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}
SEVERITIES = ("info", "warning", "critical")
RULE_KEYS = ("name", "metric", "op", "threshold", "for_s", "severity", "subject", "description")
REQUIRED_RULE_KEYS = ("name", "metric", "op", "threshold")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_LINE = re.compile(r"at line (\d+)")
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


# --------------------------------------------------------------------------- rules

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class AlertRule:
    """``metric op threshold`` held for ``for_s`` seconds fires an alert of ``severity``
    on the observation's subject; ``subject`` limits the rule to one deployment."""

    name: str
    metric: str
    op: str
    threshold: float
    for_s: float = 0.0
    severity: str = "warning"
    subject: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidInput(f"bad rule name {self.name!r}", field="name",
                               expected="1-63 characters: letters, digits, '_', '-', '.'")
        if not isinstance(self.metric, str) or not _METRIC.match(self.metric):
            raise InvalidInput(f"bad metric {self.metric!r}", field="metric",
                               expected="a metric name such as drift.share or latency.p99_ms")
        if self.op not in OPS:
            raise InvalidInput(f"op must be one of {' '.join(OPS)}, got {self.op!r}", field="op",
                               expected=" | ".join(OPS))
        if not _is_number(self.threshold):
            raise InvalidInput(f"threshold must be a finite number, got {self.threshold!r}", field="threshold",
                               expected="a finite number")
        if not _is_number(self.for_s) or self.for_s < 0:
            raise InvalidInput(f"for_s must be a number of seconds >= 0, got {self.for_s!r}", field="for_s",
                               expected="a number >= 0")
        if self.severity not in SEVERITIES:
            raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}",
                               field="severity", expected=" | ".join(SEVERITIES))
        if self.subject is not None and (not isinstance(self.subject, str) or not self.subject.strip()):
            raise InvalidInput(f"subject must be a non-empty string, got {self.subject!r}", field="subject",
                               expected="a deployment name, or leave it out for any")
        if not isinstance(self.description, str):
            raise InvalidInput(f"description must be a string, got {self.description!r}", field="description",
                               expected="a string")
        object.__setattr__(self, "threshold", float(self.threshold))
        object.__setattr__(self, "for_s", float(self.for_s))

    def holds(self, value: float) -> bool:
        """Whether ``value`` breaches the rule (the alert condition is true)."""
        return OPS[self.op](value, self.threshold)

    def matches(self, observation: Observation) -> bool:
        return observation.metric == self.metric and (self.subject is None or self.subject == observation.subject)

    @property
    def condition(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


def default_rules() -> list[AlertRule]:
    """The rules the loop runs with when none are configured."""
    return [
        AlertRule("drift-share", "drift.share", ">=", 0.3, severity="warning",
                  description="a third or more of the features drifted from the reference"),
        AlertRule("drift-feature", "drift.max_psi", ">=", 0.25, severity="warning",
                  description="one feature drifted strongly from the reference (PSI >= 0.25)"),
        AlertRule("accuracy-low", "quality.accuracy", "<", 0.7, severity="critical",
                  description="live accuracy from feedback labels below 0.7"),
        AlertRule("latency-p99-high", "latency.p99_ms", ">", 250.0, for_s=60, severity="warning",
                  description="p99 latency above 250 ms for a minute"),
        AlertRule("error-rate-high", "errors.rate", ">", 0.05, for_s=60, severity="critical",
                  description="more than 5% of requests failing for a minute"),
        AlertRule("prediction-log-loss", "log.lost", ">=", 1.0, severity="warning",
                  description="prediction rows were dropped (queue full) or failed to write since the server "
                              "started; requests were answered, monitoring sees less"),
        AlertRule("flow-failed", "flow.failed", ">=", 1.0, severity="critical",
                  description="a flow run of the loop failed; see its run in the Prefect UI"),
        AlertRule("candidate-blocked", "release.blocked", ">=", 1.0, severity="warning",
                  description="a retrained candidate failed its gates; the serving version keeps serving"),
    ]


def load_rules(path: str | Path) -> list[AlertRule]:
    """The rules in the TOML file at ``path`` (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot be read: {exc}", field="file", expected="a readable UTF-8 TOML file",
                           details={"file": str(path)}) from exc
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "<rules>") -> list[AlertRule]:
    """The rules in TOML ``text``; errors name ``source``, the line and the field."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _LINE.search(str(exc))
        line = int(match.group(1)) if match else max(1, len(text.splitlines()))
        raise InvalidInput(f"{source}:{line}: not valid TOML: {exc}", field="toml", expected="a TOML rules file",
                           details={"file": source, "line": line}) from exc
    blocks = _rule_blocks(text)

    def bad(index: int | None, key: str, message: str, expected: str | None, rule: str | None = None) -> NoReturn:
        if index is None:
            line = _top_level_line(text, key)
            where, field_ = "", key
        else:
            line = _key_line(blocks, index, key)
            where = f"rule {rule!r}: " if rule else f"rule #{index + 1}: "
            field_ = f"rule[{index}].{key}" if key else f"rule[{index}]"
        prefix = f"{source}:{line}" if line is not None else source
        details: dict[str, Any] = {"file": source}
        if line is not None:
            details["line"] = line
        raise InvalidInput(f"{prefix}: {where}{message}", field=field_, expected=expected, details=details)

    for key in document:
        if key != "rule":
            bad(None, key, f"unknown key {key!r} (a rules file holds [[rule]] tables only)", "[[rule]]")
    tables = document.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        bad(None, "rule", "rule must be an array of tables: write each as [[rule]]", "[[rule]]")
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        name = table.get("name") if isinstance(table.get("name"), str) else None
        for key in table:
            if key not in RULE_KEYS:
                bad(index, key, f"unknown key {key!r}", " | ".join(RULE_KEYS), name)
        for key in REQUIRED_RULE_KEYS:
            if key not in table:
                bad(index, key, f"{key} is missing", f"{key} = ...", name)
        try:
            rule = AlertRule(**table)
        except InvalidInput as exc:
            bad(index, exc.field or "", exc.message, exc.expected, name)
        if rule.name in seen:
            bad(index, "name", f"the name {rule.name!r} is taken by rule #{seen[rule.name] + 1}",
                "a unique rule name", name)
        seen[rule.name] = index
        rules.append(rule)
    return rules


_RULE_HEADER = re.compile(r"""^\s*\[\[\s*(?:rule|"rule"|'rule')\s*\]\]""")
_TABLE_HEADER = re.compile(r"^\s*\[")
_KEY = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*[=.]""")


def _rule_blocks(text: str) -> builtins.list[tuple[int, dict[str, int]]]:
    """(header line, {key: line}) of each [[rule]] table, in order (1-based lines)."""
    blocks: builtins.list[tuple[int, dict[str, int]]] = []
    current: dict[str, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if _RULE_HEADER.match(line):
            current = {}
            blocks.append((number, current))
        elif _TABLE_HEADER.match(line):
            current = None
        elif current is not None:
            match = _KEY.match(line)
            if match:
                current.setdefault(next(g for g in match.groups() if g), number)
    return blocks


def _key_line(blocks: builtins.list[tuple[int, dict[str, int]]], index: int, key: str) -> int | None:
    if index >= len(blocks):
        return None  # e.g. rule = [{...}] written inline
    header, keys = blocks[index]
    return keys.get(key, header)


def _top_level_line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip().lstrip("[").strip()
        if stripped.startswith((key, f'"{key}"', f"'{key}'")):
            return number
    return None


# --------------------------------------------------------------------------- values

@dataclass(frozen=True)
class Observation:
    """One figure of one subject (a deployment name; "" for platform-wide figures).
    ``evidence`` is JSON-ready: the window (start, end) and the figures behind ``value``."""

    metric: str
    subject: str
    value: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRecord:
    """One alert occurrence, as stored (see mlops_lite.metadata.alert_tables)."""

    id: str
    rule: str
    metric: str
    subject: str
    state: str
    severity: str
    value: float
    op: str
    threshold: float
    description: str
    started_at: datetime
    last_seen_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    evidence: dict[str, Any]
    silenced: bool
    delivery: str | None
    attempts: int
    last_error: str | None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class SilenceRecord:
    id: str
    rule: str | None
    subject: str | None
    until: datetime
    reason: str
    created_by: str
    created_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    def active(self, moment: datetime) -> bool:
        return self.lifted_at is None and as_utc(moment) < self.until

    def covers(self, rule: str, subject: str) -> bool:
        return ((self.rule is None or fnmatch.fnmatchcase(rule, self.rule))
                and (self.subject is None or fnmatch.fnmatchcase(subject, self.subject)))


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


@dataclass(frozen=True)
class Delivery:
    """What a sink reports for one event: delivered or not, after how many attempts."""

    ok: bool
    attempts: int = 1
    error: str | None = None


# --------------------------------------------------------------------------- sinks

class AlertSink(Protocol):
    """Takes one JSON-ready event and calls ``done`` exactly once with its Delivery,
    now or later from another thread. Never raises (Alerts guards it anyway).
    Optional: ``drain(timeout) -> bool`` and ``close(timeout)``."""

    def send(self, event: dict[str, Any], done: Callable[[Delivery], None]) -> None: ...


class LogSink:
    """Logs each event as one line to ``mlops_lite.alerts``: fire at the severity's level
    (critical as ERROR), resolve at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or log

    def send(self, event: dict[str, Any], done: Callable[[Delivery], None]) -> None:
        level = _LOG_LEVELS.get(event.get("severity", ""), logging.WARNING) \
            if event.get("event") == "alert.fire" else logging.INFO
        self._logger.log(level, "%s %s on %r: %s %s %s (value %s) %s", event.get("event"), event.get("rule"),
                         event.get("subject"), event.get("metric"), event.get("op"), event.get("threshold"),
                         event.get("value"), json.dumps(event.get("evidence", {}), sort_keys=True, default=str))
        done(Delivery(ok=True))

    def __repr__(self) -> str:
        return "LogSink()"


class CallbackSink:
    """Calls ``fn(event)`` in the thread that evaluates: keep it quick and thread-safe
    (a TUI posts the event to its own loop). An exception is an undelivered event."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self._fn = fn

    def send(self, event: dict[str, Any], done: Callable[[Delivery], None]) -> None:
        try:
            self._fn(event)
        except Exception as exc:
            done(Delivery(ok=False, error=f"{type(exc).__name__}: {exc}"))
        else:
            done(Delivery(ok=True))

    def __repr__(self) -> str:
        return f"CallbackSink({self._fn!r})"


_STOP = object()


class WebhookSink:
    """POSTs each event as JSON to ``url`` from a background thread: one attempt plus
    up to ``retries`` more, waiting ``backoff_s``, 2x, 4x ... between them, each with a
    ``timeout_s`` timeout. A 4xx answer (other than 408 and 429) is not retried.
    ``send`` returns at once; ``drain`` waits for what is queued; ``close`` stops."""

    def __init__(self, url: str, *, retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 2.0,
                 max_queue: int = 1000) -> None:
        if not isinstance(url, str) or not _URL.match(url):
            raise InvalidInput(f"webhook {url!r} is not an http(s) URL", field="url",
                               expected="http://host:port/path")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidInput(f"retries must be a whole number >= 0, got {retries!r}", field="retries")
        if not _is_number(backoff_s) or backoff_s < 0:
            raise InvalidInput(f"backoff_s must be a number >= 0, got {backoff_s!r}", field="backoff_s")
        if not _is_number(timeout_s) or timeout_s <= 0:
            raise InvalidInput(f"timeout_s must be a number > 0, got {timeout_s!r}", field="timeout_s")
        self.url = url
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.timeout_s = float(timeout_s)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._idle = threading.Condition()
        self._unfinished = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def send(self, event: dict[str, Any], done: Callable[[Delivery], None]) -> None:
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

    def deliver(self, event: dict[str, Any]) -> Delivery:
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
            log.debug("webhook %s attempt %d for %s failed: %s", self.url, attempts, event.get("id"), error)
        log.warning("webhook %s: %s %s undelivered after %d attempts: %s", self.url, event.get("event"),
                    event.get("id"), attempts, error)
        return Delivery(ok=False, attempts=attempts, error=error)

    def __repr__(self) -> str:
        return f"WebhookSink({self.url!r})"


# --------------------------------------------------------------------------- the facet

class _Shared:
    """One lock per database, shared by every Alerts over it in this process: it keeps
    one open alert per (rule, subject) and serialises writes to alert rows."""

    def __init__(self) -> None:
        self.lock = threading.RLock()


_SHARED: dict[str, _Shared] = {}
_SHARED_LOCK = threading.Lock()


class _Notice:
    """One notification of one alert, out to every sink; written back once all reported."""

    def __init__(self, owner: Alerts, alert_id: str, seq: int, event: dict[str, Any], sinks: int) -> None:
        self.owner = owner
        self.alert_id = alert_id
        self.seq = seq
        self.event = event
        self.remaining = sinks
        self.results: builtins.list[Delivery] = []
        self.lock = threading.Lock()

    def callback(self) -> Callable[[Delivery], None]:
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
                self.owner._record_delivery(self)

        return done


class Alerts:
    """``platform.monitoring.alerts``: evaluates rules, keeps alerts, notifies sinks.

    ``actor`` is who the audit chain names for fires and resolves (the monitor).
    ``rules`` defaults to ``default_rules()``; ``set_rules`` swaps them.
    """

    def __init__(self, store: MetadataStore, audit: AuditLog, actor: str, *, sinks: Sequence[AlertSink] = (),
                 clock: Callable[[], datetime] = utcnow, rules: Iterable[AlertRule] | None = None) -> None:
        self._store = store
        self._audit = audit
        self._actor = _actor(actor)
        self._sinks = tuple(sinks)
        self._clock = clock
        self._rules: tuple[AlertRule, ...] = ()
        self.set_rules(default_rules() if rules is None else rules)
        with _SHARED_LOCK:
            self._lock = _SHARED.setdefault(store.url, _Shared()).lock

    # ---- rules and sinks

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        return self._rules

    def set_rules(self, rules: Iterable[AlertRule]) -> None:
        checked = tuple(rules)
        names: set[str] = set()
        for rule in checked:
            if not isinstance(rule, AlertRule):
                raise InvalidInput(f"not an AlertRule: {rule!r}", field="rules")
            if rule.name in names:
                raise InvalidInput(f"two rules are named {rule.name!r}", field="rules", expected="unique names")
            names.add(rule.name)
        self._rules = checked

    @property
    def sinks(self) -> tuple[AlertSink, ...]:
        return self._sinks

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for every sink's queued deliveries (and their status writes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for sink in self._sinks:
            drain = getattr(sink, "drain", None)
            if drain is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ok = bool(drain(left)) and ok
        return ok

    def close(self, timeout: float | None = 5.0) -> None:
        """Drain the sinks (up to ``timeout``) and close them."""
        self.drain(timeout)
        for sink in self._sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close(0.5)

    # ---- the state machine

    def evaluate(self, observations: Iterable[Observation], now: datetime | None = None) -> builtins.list[Transition]:
        """Apply every matching rule to each observation (in order); return the changes.
        Notifications go out after the changes are committed."""
        moment = as_utc(now if now is not None else self._clock())
        checked = [_check_observation(o) for o in observations]
        rules = self._rules
        transitions: builtins.list[Transition] = []
        notices: builtins.list[_Notice] = []
        with self._lock:
            with self._store.session() as db:
                silences = _active_silences(db, moment)
                open_rows = {(row.rule, row.subject): row for row in db.exec(
                    select(AlertRow).where(col(AlertRow.state).in_(OPEN_STATES))).all()}
                for observation in checked:
                    if not math.isfinite(observation.value):
                        continue
                    for rule in rules:
                        if rule.matches(observation):
                            change = self._step(db, rule, observation, moment, open_rows, silences, notices)
                            if change is not None:
                                transitions.append(change)
            for notice in notices:
                self._dispatch(notice)
        return transitions

    def _step(self, db: Session, rule: AlertRule, observation: Observation, moment: datetime,
              open_rows: dict[tuple[str, str], AlertRow], silences: builtins.list[SilenceRecord],
              notices: builtins.list[_Notice]) -> Transition | None:
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
                    return Transition(_record(row), None, "pending", notified=False)
                return self._fire(db, row, None, moment, silences, notices)
            row.value = observation.value
            row.evidence = _dumps(observation.evidence)
            row.last_seen_at = moment
            row.op, row.threshold, row.severity = rule.op, rule.threshold, rule.severity
            row.description = rule.description
            if row.state == "pending" and (moment - as_utc(row.started_at)).total_seconds() >= rule.for_s:
                return self._fire(db, row, "pending", moment, silences, notices)
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
            silence = _covering(silences, row)
            if silence is not None:
                row.silenced, row.silence_id, row.delivery = True, silence.id, "silenced"
            elif not row.silenced:
                notified = self._queue_notice(row, "alert.resolve", notices)
            db.add(row)
            self._audit.append(db, actor=self._actor, action="alert.resolve", object=_object(row),
                               before={"state": previous}, after=_audited(row))
        db.add(row)
        db.flush()
        return Transition(_record(row), previous, "resolved", notified=notified)

    def _fire(self, db: Session, row: AlertRow, previous: str | None, moment: datetime,
              silences: builtins.list[SilenceRecord], notices: builtins.list[_Notice]) -> Transition:
        row.state = "firing"
        row.fired_at = moment
        silence = _covering(silences, row)
        notified = False
        if silence is not None:
            row.silenced, row.silence_id, row.delivery = True, silence.id, "silenced"
        else:
            notified = self._queue_notice(row, "alert.fire", notices)
        db.add(row)
        self._audit.append(db, actor=self._actor, action="alert.fire", object=_object(row),
                           before={"state": previous}, after=_audited(row))
        db.flush()
        return Transition(_record(row), previous, "firing", notified=notified)

    def _queue_notice(self, row: AlertRow, action: str, notices: builtins.list[_Notice]) -> bool:
        if not self._sinks:
            row.delivery = None
            return False
        row.notice_seq += 1
        row.delivery, row.attempts, row.last_error = "pending", 0, None
        notices.append(_Notice(self, row.id, row.notice_seq, _event(action, row), len(self._sinks)))
        return True

    def _dispatch(self, notice: _Notice) -> None:
        for sink in self._sinks:
            done = notice.callback()
            try:
                sink.send(dict(notice.event), done)
            except Exception as exc:  # a third-party sink that raises anyway
                log.warning("alert sink %r failed for %s: %s", sink, notice.event.get("id"), exc)
                done(Delivery(ok=False, attempts=1, error=f"{type(exc).__name__}: {exc}"))

    def _record_delivery(self, notice: _Notice) -> None:
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

    # ---- operators

    def get(self, id: str) -> AlertRecord:
        with self._store.session() as db:
            row = db.get(AlertRow, id)
            if row is None:
                raise NotFound(f"no alert {id!r}", details={"alert": id})
            return _record(row)

    def open_alerts(self) -> builtins.list[AlertRecord]:
        """Pending and firing alerts, newest first."""
        with self._store.session() as db:
            rows = db.exec(select(AlertRow).where(col(AlertRow.state).in_(OPEN_STATES))
                           .order_by(col(AlertRow.started_at).desc())).all()
            return [_record(row) for row in rows]

    def acknowledge(self, id: str, actor: str) -> AlertRecord:
        """Record that ``actor`` has seen the alert (any state); Conflict if already done."""
        actor = _actor(actor)
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
            self._audit.append(db, actor=actor, action="alert.acknowledge", object=_object(row),
                               before={"acknowledged_by": None},
                               after={"id": row.id, "state": row.state, "acknowledged_by": actor})
            return _record(row)

    def silence(self, rule: str | None = None, subject: str | None = None, *, until: datetime | timedelta,
                reason: str, actor: str) -> SilenceRecord:
        """Hold back notifications of alerts whose rule and subject match these fnmatch
        patterns (None: any; name at least one, "*" for everything) until ``until``
        (a time, or a duration from now)."""
        actor = _actor(actor)
        now = as_utc(self._clock())
        for name, pattern in (("rule", rule), ("subject", subject)):
            if pattern is not None and (not isinstance(pattern, str) or not pattern.strip()):
                raise InvalidInput(f"{name} must be a non-empty pattern, got {pattern!r}", field=name,
                                   expected="a name or an fnmatch pattern such as 'latency-*'")
        if rule is None and subject is None:
            raise InvalidInput("a silence names a rule or a subject (use rule='*' to silence everything)",
                               field="rule", expected="a rule name or pattern")
        if isinstance(until, timedelta):
            end = now + until
        elif isinstance(until, datetime):
            end = as_utc(until)
        else:
            raise InvalidInput(f"until must be a datetime or a timedelta, got {until!r}", field="until")
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
        return _silence_record(row)

    def lift_silence(self, id: str, actor: str) -> SilenceRecord:
        """End a silence now; Conflict if it was lifted already."""
        actor = _actor(actor)
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
            return _silence_record(row)

    def silences(self, active: bool = True) -> builtins.list[SilenceRecord]:
        """Silences, newest first: only those in force now unless ``active`` is False."""
        with self._store.session() as db:
            if active:
                return _active_silences(db, as_utc(self._clock()))
            rows = db.exec(select(AlertSilenceRow).order_by(col(AlertSilenceRow.created_at).desc())).all()
            return [_silence_record(row) for row in rows]

    def list(self, state: str | None = None, subject: str | None = None, limit: int = 100) -> builtins.list[AlertRecord]:
        """Alerts, newest first, optionally of one state and/or subject."""
        if state is not None and state not in ALERT_STATES:
            raise InvalidInput(f"unknown alert state {state!r}", field="state", expected=" | ".join(ALERT_STATES))
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
            raise InvalidInput(f"limit must be from 1 to 10000, got {limit!r}", field="limit")
        query = select(AlertRow)
        if state is not None:
            query = query.where(AlertRow.state == state)
        if subject is not None:
            query = query.where(AlertRow.subject == subject)
        query = query.order_by(col(AlertRow.started_at).desc(), col(AlertRow.id)).limit(limit)
        with self._store.session() as db:
            return [_record(row) for row in db.exec(query).all()]


# --------------------------------------------------------------------------- helpers

def _actor(actor: Any) -> str:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidInput(f"actor must be a non-empty name, got {actor!r}", field="actor")
    return actor


def _check_observation(observation: Any) -> Observation:
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


def _dumps(evidence: dict[str, Any]) -> str:
    return json.dumps(evidence, sort_keys=True, default=str)


def _object(row: AlertRow) -> str:
    return f"alert:{row.rule}@{row.subject}"


def _audited(row: AlertRow) -> dict[str, Any]:
    return {"id": row.id, "state": row.state, "metric": row.metric, "value": row.value, "op": row.op,
            "threshold": row.threshold, "severity": row.severity, "silenced": row.silenced,
            "evidence": json.loads(row.evidence)}


def _event(action: str, row: AlertRow) -> dict[str, Any]:
    """The JSON-ready notification the sinks receive."""

    def moment(value: datetime | None) -> str | None:
        return None if value is None else as_utc(value).isoformat()

    return {"event": action, "id": row.id, "rule": row.rule, "metric": row.metric, "subject": row.subject,
            "state": row.state, "severity": row.severity, "value": row.value, "op": row.op,
            "threshold": row.threshold, "description": row.description, "started_at": moment(row.started_at),
            "fired_at": moment(row.fired_at), "resolved_at": moment(row.resolved_at),
            "evidence": json.loads(row.evidence)}


def _record(row: AlertRow) -> AlertRecord:
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


def _silence_record(row: AlertSilenceRow) -> SilenceRecord:
    return SilenceRecord(id=row.id, rule=row.rule_pattern, subject=row.subject_pattern, until=as_utc(row.until),
                         reason=row.reason, created_by=row.created_by, created_at=as_utc(row.created_at),
                         lifted_at=None if row.lifted_at is None else as_utc(row.lifted_at), lifted_by=row.lifted_by)


def _active_silences(db: Session, moment: datetime) -> builtins.list[SilenceRecord]:
    rows = db.exec(select(AlertSilenceRow).where(col(AlertSilenceRow.until) > moment)
                   .where(col(AlertSilenceRow.lifted_at).is_(None))
                   .order_by(col(AlertSilenceRow.created_at).desc())).all()
    return [_silence_record(row) for row in rows]


def _covering(silences: Iterable[SilenceRecord], row: AlertRow) -> SilenceRecord | None:
    return next((s for s in silences if s.covers(row.rule, row.subject)), None)
