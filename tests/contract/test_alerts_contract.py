"""``platform.alerts`` (mlops_lite.api.AlertsAPI): the same question to a local Platform
and to a RemotePlatform over HTTP gets the same records and the same errors, for every
verb: list, get, open_alerts, acknowledge, rules, silence, silences, lift_silence.

Alerts are raised the way a flow raises them, through ``platform.loop`` (a failed flow
run fires ``flow-failed``; a blocked candidate fires ``candidate-blocked``), since
``evaluate`` belongs to the process that owns the stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlops_lite import Conflict, InvalidInput, NotFound
from mlops_lite.alerts import AlertRecord, SilenceRecord, default_rules

FAILURE = {"error": "ValueError: no rows", "run": "nightly-42"}


def caller(api: Any) -> str:
    """Who a verb without ``actor=`` is done by: the platform's actor, or the token's identity."""
    if api.remote:
        return f"token:{api.request('GET', '/v1/whoami')['name']}"
    return str(api.actor)


def fire(api: Any, flow: str = "nightly") -> AlertRecord:
    api.loop.flow_finished(flow, failed=True, details=FAILURE)
    alerts: list[AlertRecord] = [a for a in api.alerts.open_alerts() if a.rule == "flow-failed" and a.subject == flow]
    [alert] = alerts
    return alert


def test_the_rules_in_force_are_the_defaults(api: Any) -> None:
    rules = api.alerts.rules()
    assert rules == default_rules()
    assert rules[0].name == "drift-share" and rules[0].threshold == 0.3 and rules[0].subject is None


def test_a_fired_alert_is_the_same_record_from_list_get_and_open_alerts(api: Any) -> None:
    assert api.alerts.list() == [] and api.alerts.open_alerts() == []
    alert = fire(api)
    assert isinstance(alert, AlertRecord)
    assert (alert.rule, alert.metric, alert.subject, alert.state, alert.severity) == \
        ("flow-failed", "flow.failed", "nightly", "firing", "critical")
    assert (alert.value, alert.op, alert.threshold, alert.evidence) == (1.0, ">=", 1.0, FAILURE)
    assert alert.fired_at == alert.started_at and alert.started_at.tzinfo is not None
    assert (alert.acknowledged_by, alert.silenced, alert.delivery) == (None, False, "delivered")
    assert api.alerts.get(alert.id) == alert
    assert api.alerts.list() == [alert] == api.alerts.list(state="firing", subject="nightly")
    assert api.alerts.list(state="resolved") == [] and api.alerts.list(subject="other") == []

    api.loop.flow_finished("nightly", failed=False)
    resolved = api.alerts.get(alert.id)
    assert (resolved.state, resolved.value, resolved.evidence) == ("resolved", 0.0, {})
    assert resolved.resolved_at is not None and resolved.resolved_at >= alert.started_at
    assert api.alerts.open_alerts() == [] and api.alerts.list(state="resolved") == [resolved]

    again = fire(api)  # a new breach is a new alert, listed newest first
    assert again.id != alert.id
    assert [a.id for a in api.alerts.list()] == [again.id, alert.id]
    assert [a.id for a in api.alerts.list(limit=1)] == [again.id]
    assert api.alerts.open_alerts() == [again]


def test_acknowledge_is_done_by_the_caller_once(api: Any) -> None:
    alert = fire(api)
    acked = api.alerts.acknowledge(alert.id)
    assert (acked.id, acked.state, acked.acknowledged_by) == (alert.id, "firing", caller(api))
    assert acked.acknowledged_at is not None and acked.acknowledged_at >= alert.started_at
    assert api.alerts.get(alert.id) == acked
    with pytest.raises(Conflict, match="already acknowledged"):
        api.alerts.acknowledge(alert.id)
    with pytest.raises(NotFound):
        api.alerts.acknowledge("no-such-alert")


def test_an_unknown_alert_is_not_found(api: Any) -> None:
    with pytest.raises(NotFound, match="no alert 'nope'"):
        api.alerts.get("nope")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"state": "burning"}, "state"),
    ({"limit": 0}, "limit"),
    ({"limit": 10_001}, "limit"),
])
def test_bad_list_arguments_are_refused_naming_the_field(api: Any, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        api.alerts.list(**kwargs)
    assert caught.value.field == field


def test_a_silence_holds_notifications_back_until_lifted(api: Any) -> None:
    before = datetime.now(UTC)
    silence = api.alerts.silence(rule="flow-*", until=timedelta(minutes=30), reason="maintenance window")
    assert isinstance(silence, SilenceRecord)
    assert (silence.rule, silence.subject, silence.reason, silence.created_by) == \
        ("flow-*", None, "maintenance window", caller(api))
    assert before + timedelta(minutes=30) <= silence.until <= datetime.now(UTC) + timedelta(minutes=30)
    assert (silence.lifted_at, silence.lifted_by) == (None, None)
    assert api.alerts.silences() == [silence] == api.alerts.silences(active=False)

    alert = fire(api)  # still fires, sent to nobody
    assert (alert.state, alert.silenced, alert.delivery) == ("firing", True, "silenced")

    lifted = api.alerts.lift_silence(silence.id)
    assert (lifted.id, lifted.lifted_by) == (silence.id, caller(api)) and lifted.lifted_at is not None
    assert api.alerts.silences() == [] and api.alerts.silences(active=False) == [lifted]
    with pytest.raises(Conflict, match="already lifted"):
        api.alerts.lift_silence(silence.id)
    with pytest.raises(NotFound):
        api.alerts.lift_silence("no-such-silence")


def test_a_silence_until_a_time(api: Any) -> None:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    silence = api.alerts.silence(subject="loans", until=until, reason="redeploying")
    assert (silence.rule, silence.subject, silence.until) == (None, "loans", until)
    naive = (until + timedelta(hours=1)).replace(tzinfo=None)  # naive: taken as UTC
    later = api.alerts.silence(rule="*", until=naive, reason="everything, for a while")
    assert later.until == until + timedelta(hours=1)
    assert [s.id for s in api.alerts.silences()] == [later.id, silence.id]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"until": timedelta(minutes=5), "reason": "names nothing"}, "rule"),
    ({"rule": "", "until": timedelta(minutes=5), "reason": "empty pattern"}, "rule"),
    ({"subject": " ", "until": timedelta(minutes=5), "reason": "blank pattern"}, "subject"),
    ({"rule": "x", "until": timedelta(minutes=-5), "reason": "in the past"}, "until"),
    ({"rule": "x", "until": datetime(2000, 1, 1, tzinfo=UTC), "reason": "in the past"}, "until"),
    ({"rule": "x", "until": "tomorrow", "reason": "not a time"}, "until"),
    ({"rule": "x", "until": timedelta(days=3_000_000), "reason": "past year 9999"}, "until"),
    ({"rule": "x", "until": timedelta(minutes=5), "reason": "  "}, "reason"),
])
def test_bad_silences_are_refused_naming_the_field(api: Any, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        api.alerts.silence(**kwargs)
    assert caught.value.field == field
    assert api.alerts.silences(active=False) == []


def test_a_blocked_candidate_alerts_on_its_deployment(loop_api: Any) -> None:
    serving = loop_api.deployments.get("loans")
    loop_api.loop.block("loans", serving.model, "9.9.9", ["roc_auc 0.61 < 0.75"], {"roc_auc": 0.61})
    [alert] = [a for a in loop_api.alerts.list(subject="loans") if a.rule == "candidate-blocked"]
    assert (alert.state, alert.metric, alert.severity) == ("firing", "release.blocked", "warning")
    assert alert.evidence == {"candidate": "9.9.9", "reasons": ["roc_auc 0.61 < 0.75"],
                              "figures": {"roc_auc": 0.61}}
    assert alert in loop_api.alerts.open_alerts() and loop_api.alerts.get(alert.id) == alert
    assert loop_api.alerts.acknowledge(alert.id).acknowledged_by == caller(loop_api)


@pytest.mark.parametrize(("body", "field"), [
    ({"rule": "x", "reason": "no end"}, "until"),
    ({"rule": "x", "reason": "two ends", "until": "2999-01-01T00:00:00", "duration_s": 60}, "until"),
    ({"rule": "x", "reason": "a bad time", "until": "soon"}, "until"),
    ({"rule": "x", "reason": "too long", "duration_s": 1e300}, "duration_s"),
    ({"rule": 5, "reason": "a number", "duration_s": 60}, "rule"),
    ({"rule": "x", "duration_s": 60}, "reason"),
    ({"rule": "x", "reason": "r", "duration_s": 60, "colour": "red"}, "colour"),
])
def test_a_bad_silence_body_is_a_422_naming_the_field(api: Any, body: dict[str, Any], field: str) -> None:
    """A body is HTTP's own: the remote client never sends one of these."""
    if not api.remote:
        pytest.skip("the body of POST /v1/silences exists only over HTTP")
    with pytest.raises(InvalidInput) as caught:
        api.request("POST", "/v1/silences", json=body)
    assert caught.value.field == field
    assert api.alerts.silences(active=False) == []
