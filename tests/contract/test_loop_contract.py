"""The closed loop's steps (``platform.loop``), asked of a local Platform and a
RemotePlatform alike (fixtures in conftest.py): a monitoring check, the retrain decision,
the release gate, a blocked candidate, the canary's verdict and its finish, a flow's end;
the same answers, the same records left behind, and bad input refused with the same
error and field, changing nothing.

``loop_api`` serves loan-default 1.0.0 as 'loans'; ``second`` registers 1.0.1 (see
test_deployments_contract.py); a canary is judged on a deployment of its own."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mlops_lite import InvalidInput, NotFound
from mlops_lite.records import ModelVersionRecord
from tests.contract.conftest import refused as _refused
from tests.contract.test_deployments_contract import MODEL, record_second
from tests.contract.test_deployments_contract import _rows as held_out

DECISION_KEYS = {"retrain", "reason", "reasons", "held", "revision", "repository", "head"}



@pytest.fixture(scope="module")
def second(loop_api: Any) -> ModelVersionRecord:
    return record_second(loop_api)


def _head(api: Any) -> str:
    return str(api.data.repo("loans").ref("main").resolve())


# --- check and the retrain decision -------------------------------------------------------------


def test_a_check_reports_the_window_and_the_retrain_decision(loop_api: Any) -> None:
    loans = loop_api.deployments.get("loans")
    checked = loop_api.loop.check("loans")
    assert set(checked) == {"report", "transitions", *DECISION_KEYS}
    report = checked["report"]
    assert report["deployment"] == "loans" and isinstance(report["rows"], int)
    assert set(report) == {"deployment", "rows", "since", "until", "drift", "quality", "infra", "by_slot",
                           "errors_by_status"}
    assert datetime.fromisoformat(report["since"]) == loans.updated_at.replace(tzinfo=UTC)  # the revision's start
    assert (checked["revision"], checked["repository"], checked["head"]) == (loans.revision, "loans", _head(loop_api))
    assert isinstance(checked["transitions"], list)
    since = datetime.now(UTC)
    for moment in (since, since.isoformat()):
        window = loop_api.loop.check("loans", since=moment)["report"]
        assert (window["rows"], datetime.fromisoformat(window["since"])) == (0, since)


def test_new_data_on_main_asks_for_a_retrain_once(loop_api: Any) -> None:
    loop = loop_api.loop
    repo = loop_api.data.repo("loans")
    branch = repo.branch(f"more-{uuid.uuid4().hex[:8]}")
    branch.create("main")
    branch.upload(f"extra/{branch.name}.txt", b"more rows are coming")
    branch.commit("more data")
    branch.merge_into("main")
    head = _head(loop_api)
    decided = loop.should_retrain("loans", debounce_s=0)
    assert set(decided) == DECISION_KEYS
    assert decided["retrain"] is True and decided["held"] == "" and decided["head"] == head
    assert decided["reasons"][-1].startswith(f"new data merged to main of loans: {head[:12]}")
    assert decided["reason"] == "; ".join(decided["reasons"])
    triggered = loop_api.audit.about("deployment:loans", action_prefix="loop.retrain_triggered")
    assert (triggered[-1].after["head"], triggered[-1].after["reasons"]) == (head, decided["reasons"])
    again = loop.should_retrain("loans", now=datetime.now(UTC).isoformat(), debounce_s=0)
    assert again["retrain"] is False and again["held"] and again["reasons"] == decided["reasons"]
    assert loop_api.audit.about("deployment:loans", action_prefix="loop.retrain_triggered") == triggered


# --- the gate and a blocked candidate -----------------------------------------------------------


def test_the_serving_version_is_nothing_to_release(loop_api: Any) -> None:
    revision = loop_api.deployments.get("loans").revision
    gated = loop_api.loop.gate("loans", MODEL, "1.0.0")
    reason = f"{MODEL}@1.0.0 already serves loans (revision {revision})"
    assert gated == {"passed": False, "awaiting_approval": False, "nothing_to_release": True, "reasons": [reason],
                     "scores": {}, "serving": "1.0.0", "serving_model": MODEL}
    event = loop_api.audit.about("deployment:loans", action_prefix="loop.nothing_to_release")[-1]
    assert event.after == {"model": MODEL, "version": "1.0.0", "reason": reason}


def test_a_candidate_without_fresh_labels_is_blocked(loop_api: Any, second: ModelVersionRecord) -> None:
    gated = loop_api.loop.gate("loans", MODEL, "1.0.1", since=datetime.now(UTC))
    reasons = ["only 0 fresh labelled rows; need 30 to check for regression"]
    assert gated == {"passed": False, "awaiting_approval": False, "nothing_to_release": False, "reasons": reasons,
                     "scores": {}, "serving": "1.0.0", "serving_model": MODEL}
    event = loop_api.audit.about("deployment:loans", action_prefix="loop.candidate_blocked")[-1]
    assert event.after == {"model": MODEL, "version": "1.0.1", "reasons": reasons, "scores": {}}
    assert any(a.rule == "candidate-blocked" and a.subject == "loans" for a in loop_api.alerts.open_alerts())


def test_block_leaves_an_alert_and_an_audit_event(loop_api: Any, second: ModelVersionRecord) -> None:
    before = len(loop_api.audit.about("deployment:loans", action_prefix="loop.candidate_blocked"))
    assert loop_api.loop.block("loans", MODEL, "1.0.1", ["p99 too high"], {"p99_ms": 12.5}) is None
    events = loop_api.audit.about("deployment:loans", action_prefix="loop.candidate_blocked")
    assert len(events) == before + 1
    assert events[-1].after == {"model": MODEL, "version": "1.0.1", "reasons": ["p99 too high"],
                                "scores": {"p99_ms": 12.5}}
    assert any(a.rule == "candidate-blocked" and a.subject == "loans" for a in loop_api.alerts.open_alerts())


# --- the canary's verdict and its finish --------------------------------------------------------


def test_a_canary_is_judged_and_finished(loop_api: Any, second: ModelVersionRecord) -> None:
    deployments, loop, name = loop_api.deployments, loop_api.loop, "judged"
    deployments.deploy(name, MODEL, "1.0.0", reason="start")
    canary = deployments.canary(name, MODEL, "1.0.1", weight=0.5, reason="judge me")
    since = canary.updated_at
    rows = held_out(loop_api, 2)
    sides = Counter(deployments.predict(name, rows, key=f"user-{i}").slot for i in range(8))
    judged = loop.judge_canary(name, since=since)
    assert set(judged) == {"decision", "reasons", "by_slot"}
    assert judged["decision"] == "wait"
    assert judged["reasons"] == [f"{sides['canary']} canary and {sides['primary']} primary requests so far; "
                                 "need 20 each"]
    assert {slot: figures["requests"] for slot, figures in judged["by_slot"].items()} == \
        {slot: float(n) for slot, n in sides.items()}
    assert loop.judge_canary(name, since=since.isoformat(), min_requests=20)["decision"] == "wait"
    promoted = loop.finish(name, "promote", ["p99 fine", "accuracy fine"])
    assert promoted == {"revision": canary.revision + 1, "model": MODEL, "version": "1.0.1", "strategy": "single"}
    assert deployments.revisions(name)[0].reason == "canary passed: p99 fine; accuracy fine"
    rolled = loop.finish(name, "rollback", ["changed my mind"])
    assert rolled == {"revision": canary.revision + 2, "model": MODEL, "version": "1.0.0", "strategy": "canary"}
    assert deployments.revisions(name)[0].reason == "canary failed: changed my mind"


# --- a flow's end -------------------------------------------------------------------------------


def test_a_failed_flow_fires_its_alert_and_a_clean_run_resolves_it(loop_api: Any) -> None:
    flow = f"contract-flow-{uuid.uuid4().hex[:6]}"

    def open_for_flow() -> list[Any]:
        return [a for a in loop_api.alerts.open_alerts() if a.rule == "flow-failed" and a.subject == flow]

    assert loop_api.loop.flow_finished(flow, failed=True, details={"error": "boom"}) is None
    (alert,) = open_for_flow()
    assert (alert.state, alert.value, alert.evidence) == ("firing", 1.0, {"error": "boom"})
    assert loop_api.loop.flow_finished(flow, failed=False) is None
    assert open_for_flow() == []
    assert loop_api.alerts.get(alert.id).state == "resolved"


# --- refusals -----------------------------------------------------------------------------------


def test_what_is_not_there_is_not_found(loop_api: Any) -> None:
    loop = loop_api.loop
    for call in (lambda: loop.check("nope"), lambda: loop.should_retrain("nope"),
                 lambda: loop.gate("nope", MODEL, "1.0.0"), lambda: loop.judge_canary("nope", since=datetime.now(UTC)),
                 lambda: loop.finish("nope", "promote", []), lambda: loop.finish("nope", "rollback", [])):
        assert "deployment 'nope' does not exist" in _refused(NotFound, call).message
    assert _refused(NotFound, lambda: loop.gate("loans", MODEL, "9.9.9")).message == \
        f"model {MODEL!r} has no version '9.9.9'"


# (id, the call on ``loop``, the field)
BAD_INPUT: list[tuple[str, Callable[[Any], Any], str]] = [
    ("unknown-decision", lambda loop: loop.finish("loans", "maybe", []), "decision"),
    ("check-since-not-a-time", lambda loop: loop.check("loans", since="yesterday"), "since"),
    ("retrain-now-not-a-time", lambda loop: loop.should_retrain("loans", now="soon"), "now"),
    ("gate-since-not-a-time", lambda loop: loop.gate("loans", MODEL, "1.0.1", since="last week"), "since"),
    ("judge-since-not-a-time", lambda loop: loop.judge_canary("loans", since="then"), "since"),
]


@pytest.mark.parametrize(("call", "field"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_names_the_field_and_changes_nothing(loop_api: Any, second: ModelVersionRecord,
                                                       call: Callable[[Any], Any], field: str) -> None:
    before = (loop_api.deployments.list(), loop_api.deployments.revisions("loans"), loop_api.audit.count(),
              loop_api.alerts.open_alerts())
    refused = _refused(InvalidInput, lambda: call(loop_api.loop))
    assert refused.field == field and refused.expected and refused.message
    after = (loop_api.deployments.list(), loop_api.deployments.revisions("loans"), loop_api.audit.count(),
             loop_api.alerts.open_alerts())
    assert after == before


# --- a person's retrain request -----------------------------------------------------------------


def test_a_retrain_request_is_recorded_as_the_caller_and_started_by_the_daemon(loop_api: Any) -> None:
    """Without the daemon's runner the request waits for its next monitoring pass (and the
    decision counts it even with nothing new); with it (the daemon wires ``jobs.retrain``)
    the retrain starts at once; a release in progress holds it."""
    from tests.contract.conftest import actor_of, owner_of

    owner = owner_of(loop_api)
    name = f"retrain-{uuid.uuid4().hex[:6]}"
    loop_api.deployments.deploy(name, MODEL, "1.0.0")
    pending = loop_api.loop.request_retrain(name, reason="drift on income")
    assert pending["started"] is False and pending["pending"] is True
    event = loop_api.audit.about(f"deployment:{name}", action_prefix="loop.retrain_requested")[-1]
    assert event.after == {"reason": "drift on income"} and event.actor == actor_of(loop_api)
    decided = loop_api.loop.should_retrain(name)
    assert decided["retrain"] is True and decided["reasons"][-1] == f"requested by {event.actor}: drift on income"
    # Spent by that trigger: asking again has nothing new.
    assert loop_api.loop.should_retrain(name)["retrain"] is False

    started: list[tuple[str, str]] = []
    owner.loop.runner = lambda deployment, reason: started.append((deployment, reason))
    try:
        answer = loop_api.loop.request_retrain(name, reason="again, from the console")
        assert answer["started"] is True and answer["held"] == ""
        # The request's reason comes last (new data merged by an earlier test may come first).
        assert len(started) == 1 and started[0][0] == name
        assert started[0][1].endswith(f"requested by {event.actor}: again, from the console")
        second = record_second(loop_api)
        loop_api.deployments.canary(name, MODEL, second.version, weight=0.1)
        held = loop_api.loop.request_retrain(name)
        assert held["started"] is False and held["held"].startswith("a release is in progress")
        assert len(started) == 1
    finally:
        owner.loop.runner = None


def test_a_bad_retrain_request_is_refused_and_records_nothing(loop_api: Any) -> None:
    before = loop_api.audit.count()
    with pytest.raises(NotFound):
        loop_api.loop.request_retrain("no-such-deployment", reason="x")
    with pytest.raises(InvalidInput) as bad:
        loop_api.loop.request_retrain("loans", reason="x" * 501)
    assert bad.value.field == "reason"
    assert loop_api.audit.count() == before
