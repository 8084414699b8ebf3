"""Alerts: the rule files, the state machine (pending -> firing -> resolved, a new
alert on a new breach), de-duplication, acknowledge, silences, and the sinks, the
webhook against a real HTTP server on 127.0.0.1. A real DuckDB file and a real
audit chain; time is an injected clock."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlops_lite.alerts import (
    AlertRule,
    Alerts,
    CallbackSink,
    LogSink,
    Observation,
    WebhookSink,
    default_rules,
    load_rules,
    parse_rules,
)
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.security.audit import AuditLog

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATENCY = AlertRule("latency-p99-high", "latency.p99_ms", ">", 250.0, for_s=60, severity="warning")
DRIFT = AlertRule("drift-share", "drift.share", ">=", 0.3, severity="critical")
EVIDENCE = {"window_start": "2024-05-01T11:55:00+00:00", "window_end": "2024-05-01T12:00:00+00:00", "n": 120}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    s = MetadataStore(f"duckdb:///{tmp_path}/m.duckdb")
    yield s
    s.close()


@pytest.fixture
def audit(store: MetadataStore) -> AuditLog:
    return AuditLog(store, b"k" * 32)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def alerts(store: MetadataStore, audit: AuditLog, clock: Clock, events: list[dict[str, Any]]) -> Iterator[Alerts]:
    a = Alerts(store, audit, "system:monitor", sinks=[CallbackSink(events.append)], clock=clock,
               rules=[LATENCY, DRIFT])
    yield a
    a.close()


def latency(value: float, subject: str = "loans") -> Observation:
    return Observation("latency.p99_ms", subject, value, dict(EVIDENCE, p99_ms=value))


# ---------------------------------------------------------------- rule files

def test_rules_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("""
[[rule]]
name = "latency-p99-high"
metric = "latency.p99_ms"
op = ">"
threshold = 250
for_s = 60
subject = "loans"
description = "slow"

[[rule]]
name = "accuracy-low"
metric = "quality.accuracy"
op = "<"
threshold = 0.7
severity = "critical"
""")
    first, second = load_rules(path)
    assert first == AlertRule("latency-p99-high", "latency.p99_ms", ">", 250.0, for_s=60.0, subject="loans",
                              description="slow")
    assert (second.for_s, second.severity, second.subject) == (0.0, "critical", None)
    assert isinstance(first.threshold, float) and first.holds(251) and not first.holds(250)
    assert parse_rules("") == []
    names = {r.metric: r for r in default_rules()}
    assert names["drift.share"].holds(0.3) and names["quality.accuracy"].holds(0.69)
    assert names["latency.p99_ms"].holds(251) and names["errors.rate"].holds(0.06)


@pytest.mark.parametrize(("text", "line", "field"), [
    # a semantic error names the line of the offending key, in the right [[rule]]
    ('[[rule]]\nname = "a"\nmetric = "m"\nop = ">"\nthreshold = 1\n\n[[rule]]\nname = "b"\nmetric = "m"\n'
     'op = "=>"\nthreshold = 1\n', 10, "rule[1].op"),
    ('[[rule]]\nname = "a"\nmetric = "m"\nop = ">"\nthreshold = "high"\n', 5, "rule[0].threshold"),
    ('[[rule]]\nname = "a"\nmetric = "m"\nop = ">"\nthreshold = 1\nfor_s = -5\n', 6, "rule[0].for_s"),
    ('[[rule]]\nname = "a"\nmetric = "m"\nop = ">"\nthreshold = 1\nseverity = "loud"\n', 6, "rule[0].severity"),
    ('[[rule]]\nname = "a"\nmetric = "m"\nop = ">"\nthreshold = 1\ncolour = "red"\n', 6, "rule[0].colour"),
    # a missing key names the [[rule]] header
    ('# rules\n\n[[rule]]\nname = "a"\nmetric = "m"\nop = ">"\n', 3, "rule[0].threshold"),
    ('[[rule]]\nname = "a"\nmetric = "m"\nop = ">"\nthreshold = 1\n[[rule]]\nname = "a"\nmetric = "m"\n'
     'op = "<"\nthreshold = 2\n', 7, "rule[1].name"),
    ('title = "x"\n', 1, "title"),
    # a syntax error: tomllib's line
    ('[[rule]]\nname = "a"\nmetric = = "m"\n', 3, "toml"),
])
def test_bad_rules_name_the_line_and_field(tmp_path: Path, text: str, line: int, field: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_rules(path)
    assert caught.value.field == field
    assert caught.value.details["line"] == line
    assert caught.value.details["file"] == str(path)
    assert f"{path}:{line}:" in str(caught.value)


def test_rules_are_checked_in_code_too() -> None:
    with pytest.raises(InvalidInput) as caught:
        AlertRule("x", "m", "!=", 1.0)
    assert caught.value.field == "op"
    with pytest.raises(InvalidInput):
        AlertRule("bad name", "m", ">", 1.0)
    with pytest.raises(InvalidInput):
        AlertRule("x", "m", ">", float("nan"))
    with pytest.raises(InvalidInput):
        Alerts.__new__(Alerts).set_rules([LATENCY, LATENCY])


# ---------------------------------------------------------------- the state machine

def test_pending_fires_after_for_s_then_resolves_and_a_new_breach_is_a_new_alert(
        alerts: Alerts, clock: Clock, events: list[dict[str, Any]], audit: AuditLog) -> None:
    [t] = alerts.evaluate([latency(300)])
    assert (t.previous, t.state, t.notified, t.alert.state) == (None, "pending", False, "pending")
    assert t.alert.started_at == T0 and t.alert.fired_at is None and t.alert.delivery is None
    assert events == [] and audit.count() == 0

    clock.advance(30)
    assert alerts.evaluate([latency(310)]) == []  # still pending: 30 s < 60 s
    assert alerts.get(t.alert.id).value == 310

    clock.advance(30)
    [fired] = alerts.evaluate([latency(320)])
    assert (fired.previous, fired.state, fired.notified, fired.event) == ("pending", "firing", True, "alert.fire")
    assert fired.alert.id == t.alert.id and fired.alert.fired_at == T0 + timedelta(seconds=60)
    assert [e["event"] for e in events] == ["alert.fire"]
    assert events[0]["evidence"]["p99_ms"] == 320 and events[0]["threshold"] == 250.0
    assert alerts.get(t.alert.id).delivery == "delivered"

    clock.advance(60)
    [resolved] = alerts.evaluate([latency(100)])
    assert (resolved.previous, resolved.state, resolved.notified) == ("firing", "resolved", True)
    assert resolved.alert.resolved_at == clock.now and alerts.open_alerts() == []
    assert [e["event"] for e in events] == ["alert.fire", "alert.resolve"]
    assert [e.action for e in audit.events()] == ["alert.resolve", "alert.fire"]
    assert audit.events()[1].object == "alert:latency-p99-high@loans" and audit.verify() is None

    clock.advance(60)
    [again] = alerts.evaluate([latency(400)])
    assert again.state == "pending" and again.alert.id != t.alert.id
    assert [a.state for a in alerts.list()] == ["pending", "resolved"]
    assert [a.id for a in alerts.list(state="resolved")] == [t.alert.id]


def test_for_s_zero_fires_at_once_and_a_pending_alert_that_clears_is_never_announced(
        alerts: Alerts, clock: Clock, events: list[dict[str, Any]], audit: AuditLog) -> None:
    [t] = alerts.evaluate([Observation("drift.share", "loans", 0.5, {"drifted": ["age", "income"]})])
    assert (t.previous, t.state, t.alert.severity) == (None, "firing", "critical")
    assert t.alert.evidence == {"drifted": ["age", "income"]}
    [p] = alerts.evaluate([latency(300)])
    clock.advance(10)
    [r] = alerts.evaluate([latency(200)])
    assert (r.alert.id, r.previous, r.state, r.notified) == (p.alert.id, "pending", "resolved", False)
    assert [e["event"] for e in events] == ["alert.fire"]
    assert [e.action for e in audit.events()] == ["alert.fire"]


def test_dedupe_one_open_alert_per_rule_and_subject_and_no_second_notification(
        alerts: Alerts, clock: Clock, events: list[dict[str, Any]]) -> None:
    drift = [Observation("drift.share", s, 0.4, {}) for s in ("loans", "churn")]
    assert {t.alert.subject for t in alerts.evaluate(drift)} == {"loans", "churn"}
    for _ in range(3):
        clock.advance(60)
        assert alerts.evaluate([*drift, Observation("drift.share", "loans", 0.9, {"n": 1})]) == []
    assert len(events) == 2 and len(alerts.open_alerts()) == 2
    loans = alerts.list(subject="loans")
    assert len(loans) == 1 and loans[0].value == 0.9 and loans[0].last_seen_at == clock.now
    # Observations no rule watches, and NaN ("no figure this window"), change nothing.
    assert alerts.evaluate([Observation("errors.rate", "loans", 0.9, {}),
                            Observation("drift.share", "loans", float("nan"), {})]) == []
    assert len(alerts.open_alerts()) == 2


def test_rule_with_a_subject_watches_only_that_subject(store: MetadataStore, audit: AuditLog) -> None:
    rule = AlertRule("loans-drift", "drift.share", ">", 0.1, subject="loans")
    alerts = Alerts(store, audit, "system:monitor", rules=[rule])
    assert alerts.evaluate([Observation("drift.share", "churn", 0.9, {})]) == []
    [t] = alerts.evaluate([Observation("drift.share", "loans", 0.9, {})])
    assert t.state == "firing" and t.notified is False and t.alert.delivery is None  # no sinks


def test_acknowledge(alerts: Alerts, clock: Clock, audit: AuditLog) -> None:
    [t] = alerts.evaluate([Observation("drift.share", "loans", 0.5, {})])
    clock.advance(5)
    acked = alerts.acknowledge(t.alert.id, "olivia")
    assert (acked.acknowledged_by, acked.acknowledged_at, acked.state) == ("olivia", clock.now, "firing")
    assert alerts.get(t.alert.id) == acked
    assert audit.events()[0].action == "alert.acknowledge" and audit.events()[0].actor == "olivia"
    with pytest.raises(Conflict):
        alerts.acknowledge(t.alert.id, "bob")
    with pytest.raises(NotFound):
        alerts.acknowledge("nope", "bob")
    with pytest.raises(NotFound):
        alerts.get("nope")
    with pytest.raises(InvalidInput):
        alerts.list(state="burning")


def test_silence_changes_state_but_sends_nothing(
        alerts: Alerts, clock: Clock, events: list[dict[str, Any]], audit: AuditLog) -> None:
    silence = alerts.silence(rule="drift-*", until=timedelta(minutes=30), reason="retraining", actor="olivia")
    assert silence.until == T0 + timedelta(minutes=30) and alerts.silences() == [silence]
    [t] = alerts.evaluate([Observation("drift.share", "loans", 0.5, {})])
    assert (t.state, t.notified, t.alert.silenced, t.alert.delivery) == ("firing", False, True, "silenced")
    [other] = alerts.evaluate([latency(300)])  # another rule is not silenced
    clock.advance(60)
    [fired] = alerts.evaluate([latency(300)])
    assert fired.notified and not fired.alert.silenced
    clock.advance(60)
    # The silence is over, but a fire nobody was told of is not announced as resolved.
    clock.advance(30 * 60)
    assert alerts.silences() == []
    [resolved] = alerts.evaluate([Observation("drift.share", "loans", 0.1, {})])
    assert (resolved.state, resolved.notified) == ("resolved", False)
    assert [e["rule"] for e in events] == ["latency-p99-high"]
    assert {e.action for e in audit.events()} >= {"alert.silence", "alert.fire", "alert.resolve"}
    assert other.alert.id == fired.alert.id
    with pytest.raises(InvalidInput):
        alerts.silence(until=timedelta(minutes=5), reason="x", actor="olivia")  # names nothing
    with pytest.raises(InvalidInput):
        alerts.silence(subject="loans", until=T0, reason="x", actor="olivia")  # in the past
    lifted = alerts.lift_silence(alerts.silence(subject="loans", until=timedelta(hours=1), reason="deploy",
                                                actor="bob").id, "bob")
    assert lifted.lifted_by == "bob" and alerts.silences() == []


def test_log_sink(store: MetadataStore, audit: AuditLog, caplog: pytest.LogCaptureFixture) -> None:
    alerts = Alerts(store, audit, "system:monitor", sinks=[LogSink()], rules=[DRIFT])
    with caplog.at_level(logging.INFO, logger="mlops_lite.alerts"):
        [t] = alerts.evaluate([Observation("drift.share", "loans", 0.5, {})])
    [entry] = [r for r in caplog.records if r.name == "mlops_lite.alerts"]
    assert entry.levelno == logging.ERROR and "alert.fire drift-share" in entry.getMessage()
    assert alerts.get(t.alert.id).delivery == "delivered"


def test_the_log_sink_withholds_the_rows_of_an_alerts_evidence(store: MetadataStore, audit: AuditLog,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """The feature-skew alert carries entities and values as evidence: stored with the alert,
    never printed in the log."""
    rule = AlertRule("feature-skew", "features.skew", ">=", 1.0)
    alerts = Alerts(store, audit, "system:monitor", sinks=[LogSink()], rules=[rule, DRIFT])
    evidence = {"checked": 3, "mismatched": 1,
                "rows": [{"entity": {"customer_id": 4242}, "features": {"income": {"served": 81234.5}}}]}
    with caplog.at_level(logging.INFO, logger="mlops_lite.alerts"):
        [t] = alerts.evaluate([Observation("features.skew", "credit", 1.0, evidence)])
    [entry] = [r for r in caplog.records if r.name == "mlops_lite.alerts"]
    assert "alert.fire feature-skew" in entry.getMessage() and '"mismatched": 1' in entry.getMessage()
    assert "4242" not in entry.getMessage() and "81234.5" not in entry.getMessage()
    assert "<1 withheld from logs>" in entry.getMessage()
    assert alerts.get(t.alert.id).evidence["rows"] == evidence["rows"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mlops_lite.alerts"):  # a count of rows is a figure: printed
        alerts.evaluate([Observation("drift.share", "loans", 0.5, {"rows": 400})])
    assert all("withheld" not in r.getMessage() for r in caplog.records)


def test_a_failing_callback_marks_the_alert_undelivered(store: MetadataStore, audit: AuditLog) -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("listener gone")

    alerts = Alerts(store, audit, "system:monitor", sinks=[CallbackSink(broken)], rules=[DRIFT])
    [t] = alerts.evaluate([Observation("drift.share", "loans", 0.5, {})])
    got = alerts.get(t.alert.id)
    assert (got.delivery, got.attempts, got.last_error) == ("undelivered", 1, "RuntimeError: listener gone")


# ---------------------------------------------------------------- the webhook

@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            received.append({"content_type": self.headers["content-type"],
                             "body": json.loads(self.rfile.read(length))})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_webhook_delivers_once_with_the_alert_as_json(
        store: MetadataStore, audit: AuditLog, clock: Clock, hook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = hook
    alerts = Alerts(store, audit, "system:monitor", sinks=[WebhookSink(url, backoff_s=0.01, allow=["127.0.0.1:*"])], clock=clock,
                    rules=[DRIFT])
    observation = Observation("drift.share", "loans", 0.45, dict(EVIDENCE, drifted=["age"]))
    [t] = alerts.evaluate([observation])
    clock.advance(60)
    assert alerts.evaluate([observation]) == []  # still firing: not sent again
    assert alerts.drain(5)
    assert len(received) == 1 and received[0]["content_type"] == "application/json"
    body = received[0]["body"]
    assert (body["event"], body["id"], body["rule"], body["subject"], body["value"], body["threshold"]) == \
        ("alert.fire", t.alert.id, "drift-share", "loans", 0.45, 0.3)
    assert body["evidence"] == dict(EVIDENCE, drifted=["age"]) and body["severity"] == "critical"
    got = alerts.get(t.alert.id)
    assert (got.delivery, got.attempts, got.last_error) == ("delivered", 1, None)
    alerts.close()


def test_a_down_webhook_is_retried_then_undelivered_and_evaluate_does_not_wait(
        store: MetadataStore, audit: AuditLog) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", retries=2, backoff_s=0.5, timeout_s=1.0,
                       allow=["127.0.0.1:*"])
    alerts = Alerts(store, audit, "system:monitor", sinks=[sink], rules=[DRIFT])
    started = time.monotonic()
    [t] = alerts.evaluate([Observation("drift.share", "loans", 0.5, {})])
    assert time.monotonic() - started < 1.0  # the retries alone take 1.5 s
    assert t.alert.delivery == "pending"
    assert alerts.drain(10)
    got = alerts.get(t.alert.id)
    assert (got.delivery, got.attempts) == ("undelivered", 3)
    assert got.last_error and "refused" in got.last_error.lower()
    alerts.close()
    # A closed sink refuses at once rather than queueing forever.
    outcome: list[Any] = []
    sink.send({"event": "alert.fire"}, outcome.append)
    assert outcome[0].ok is False and outcome[0].attempts == 0


def test_webhook_url_is_checked() -> None:
    with pytest.raises(InvalidInput):
        WebhookSink("ftp://example.org/hook")
    with pytest.raises(InvalidInput):
        WebhookSink("http://127.0.0.1:1/hook", retries=-1, allow=["127.0.0.1:*"])
    with pytest.raises(InvalidInput, match="webhook_allow"):
        WebhookSink("http://127.0.0.1:1/hook")  # not listed
