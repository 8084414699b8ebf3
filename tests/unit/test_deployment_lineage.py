"""Deployment lineage and prediction traces over a real platform: a deployment that
served 1.0.0, then a 30% canary of 1.1.0 (decided and approved), then 1.1.0 alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mlops_lite import TrainingSpec
from mlops_lite.errors import InvalidInput, NotFound
from mlops_lite.records import DeploymentLineage, Identity, PredictionTrace
from tests.conftest import DATA, FEATURE_EXCLUDE, build_loop, holdout_rows

APPROVER = Identity(name="alice", role="approver")


def train_second(platform: Any) -> Any:
    """Version 1.1.0 of loan-default, trained on the drifted file committed on main."""
    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    platform.data.ingest("loans", DATA / "loans_drifted.csv", "loans/train.csv")
    table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender")
    run = platform.training.train("loans", "main", "loans/train.csv", spec).run
    return platform.registry.register_from_run("loan-default", run.id)


def release_two_versions(home: Path) -> dict[str, Any]:
    """A platform whose deployment 'loans' served 1.0.0 (revision 1), a 30% canary of
    1.1.0 (revision 2, after a stored decision and an approval) and 1.1.0 alone
    (revision 3), with logged predictions in each of the first two; the caller closes it."""
    platform, token, spec = build_loop(home)
    try:
        rows = holdout_rows(spec, 3)
        first = platform.deployments.predict("loans", rows)
        platform.monitoring.record_feedback("loans", [(first.request_id, 1)])
        second = train_second(platform)
        request = platform.policy.request_promotion("loan-default", second.version, comment="fresher data")
        platform.policy.approve(request.id, identity=APPROVER, comment="checked the drift report")
        decision = platform.policy.decide("loan-default", second.version)
        platform.deployments.canary("loans", "loan-default", second.version, weight=0.3, reason="try it")
        during = [platform.deployments.predict("loans", [row], key=f"user-{i}") for i, row in
                  enumerate(holdout_rows(spec, 40))]
        platform.deployments.promote("loans", reason="canary held")
    except BaseException:
        platform.close()
        raise
    return {"platform": platform, "token": token, "spec": spec, "rows": rows, "first": first, "second": second,
            "request": request, "decision": decision, "during": during,
            "revisions": {r.revision: r for r in platform.deployments.revisions("loans")}}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = release_two_versions(tmp_path_factory.mktemp("lineage") / "home")
    yield state
    state["platform"].close()


def test_lineage_before_and_after_a_promotion_answers_different_versions(released: dict[str, Any]) -> None:
    platform, revisions = released["platform"], released["revisions"]
    before = platform.deployments.lineage("loans", revisions[1].changed_at)
    after = platform.deployments.lineage("loans")
    assert isinstance(before, DeploymentLineage)
    assert before.revision.revision == 1 and [(s.slot, s.version) for s in before.slots] == [("primary", "1.0.0")]
    assert [r.revision for r in before.history] == [1]
    assert after.revision.revision == 3 and [(s.slot, s.version) for s in after.slots] == [("primary", "1.1.0")]
    assert [(r.revision, r.action) for r in after.history] == [(1, "deploy"), (2, "canary"), (3, "promote")]
    assert after.history[-1].reason == "canary held"


def test_lineage_follows_the_served_version_to_its_run_data_and_gates(released: dict[str, Any]) -> None:
    platform, second = released["platform"], released["second"]
    slot = platform.deployments.lineage("loans").slots[0]
    run = platform.tracking.get_run(second.run_id)
    assert slot.digest == second.digest and slot.registered == second
    assert slot.run == run and slot.run_id == second.run_id
    assert slot.data_repository == "loans" and slot.data_commits == second.data_commits
    assert [c.id for c in slot.commits] == list(second.data_commits)
    assert slot.params == second.params and slot.metrics == second.metrics
    # Promotion gated it again: the gates of revision 3 are the ones that let it answer alone.
    assert slot.released_in == 3 and slot.release_gates
    assert all(g.passed for g in slot.release_gates)
    assert "lineage.complete" in {g.gate for g in slot.release_gates}
    assert [d.id for d in slot.decisions] == [released["decision"].id]
    (request,) = slot.approvals
    assert request.id == released["request"].id and request.comment == "fresher data"
    assert request.approvers == ("alice",) and request.votes[0].comment == "checked the drift report"
    assert slot.missing == () and platform.deployments.lineage("loans").missing == ()


def test_lineage_during_a_canary_names_both_slots(released: dict[str, Any]) -> None:
    platform, revisions = released["platform"], released["revisions"]
    during = platform.deployments.lineage("loans", revisions[2].changed_at + timedelta(microseconds=1))
    assert during.revision.revision == 2 and during.revision.strategy == "canary"
    primary, canary = during.slots
    assert (primary.slot, primary.version, canary.slot, canary.version) == ("primary", "1.0.0", "canary", "1.1.0")
    assert canary.weight == pytest.approx(0.3) and primary.weight == pytest.approx(0.7)
    assert primary.released_in == 1 and canary.released_in == 2
    # The decision was made before the canary; the first version never had one.
    assert len(canary.decisions) == 1 and primary.decisions == ()


def test_decisions_made_after_the_time_asked_are_left_out(released: dict[str, Any]) -> None:
    platform, revisions = released["platform"], released["revisions"]
    early = platform.deployments.lineage("loans", revisions[1].changed_at)
    assert early.slots[0].decisions == () and early.slots[0].approvals == ()


def test_trace_of_a_served_request_gives_its_input_row_and_lineage(released: dict[str, Any]) -> None:
    platform, first, rows = released["platform"], released["first"], released["rows"]
    trace = platform.monitoring.trace(first.request_id)
    assert isinstance(trace, PredictionTrace)
    assert trace.request_id == first.request_id and trace.deployment == "loans"
    assert (trace.slot, trace.model, trace.version, trace.digest) == ("primary", "loan-default", "1.0.0",
                                                                      first.digest)
    assert list(trace.instances) == rows
    assert list(trace.predictions) == [str(p) for p in first.predictions]
    assert list(trace.probabilities) == pytest.approx([p[-1] for p in first.probabilities])
    assert trace.feedback == "1" and trace.feedback_at is not None
    assert trace.lineage.revision.revision == 1 and trace.lineage.at == trace.at
    assert trace.shadow == ()


def test_trace_of_a_canary_request_names_the_slot_that_answered(released: dict[str, Any]) -> None:
    platform = released["platform"]
    canary = next(p for p in released["during"] if p.slot == "canary")
    trace = platform.monitoring.trace(canary.request_id)
    assert (trace.slot, trace.version) == ("canary", "1.1.0")
    assert trace.feedback is None
    assert [(s.slot, s.version) for s in trace.lineage.slots] == [("primary", "1.0.0"), ("canary", "1.1.0")]


def test_bad_questions_get_clear_errors(released: dict[str, Any]) -> None:
    platform, revisions = released["platform"], released["revisions"]
    with pytest.raises(NotFound, match="nope"):
        platform.deployments.lineage("nope")
    for bad_time in ("yesterday-ish", "", "9999-12-31T23:59:59-14:00"):
        with pytest.raises(InvalidInput) as bad:
            platform.deployments.lineage("loans", bad_time)
        assert bad.value.field == "at"
    with pytest.raises(NotFound, match="served nothing"):
        platform.deployments.lineage("loans", revisions[1].changed_at - timedelta(seconds=1))
    with pytest.raises(NotFound, match="0123456789abcdef"):
        platform.monitoring.trace("0123456789abcdef")
    with pytest.raises(InvalidInput) as bad_id:
        platform.monitoring.trace("x' OR '1'='1")
    assert bad_id.value.field == "request_id"


def test_a_missing_run_is_named_not_raised(tmp_path: Path) -> None:
    platform, _, _ = build_loop(tmp_path / "home")
    try:
        version = platform.registry.get_version("loan-default", "1.0.0")
        with platform._store.session() as session:  # a run lost behind the registry's back
            for table in ("metrics", "params", "runs"):
                column = "id" if table == "runs" else "run_id"
                session.execute(text(f"DELETE FROM {table} WHERE {column} = :id"), {"id": version.run_id})
        lineage = platform.deployments.lineage("loans")
    finally:
        platform.close()
    slot = lineage.slots[0]
    assert slot.version == "1.0.0" and slot.run is None and slot.run_id == version.run_id
    assert slot.missing == (f"training run {version.run_id} does not exist",)
    assert lineage.missing == (f"primary: training run {version.run_id} does not exist",)


def test_shadow_standby_and_rollback_slots(tmp_path: Path) -> None:
    import time

    platform, _, spec = build_loop(tmp_path / "home")
    try:
        second = train_second(platform)
        platform.deployments.shadow("loans", "loan-default", second.version, reason="mirror it")
        rows = holdout_rows(spec, 2)
        answer = platform.deployments.predict("loans", rows)
        deadline = time.monotonic() + 60  # the shadow answers off the request path
        while not (trace := platform.monitoring.trace(answer.request_id)).shadow and time.monotonic() < deadline:
            time.sleep(0.05)
        shadowing = platform.deployments.lineage("loans")
        platform.deployments.stage("loans", "loan-default", second.version, reason="blue-green")
        staged = platform.deployments.lineage("loans")
        platform.deployments.rollback("loans", to_revision=1, reason="back to the start")
        rolled_back = platform.deployments.lineage("loans")
    finally:
        platform.close()
    assert [(s.slot, s.version, s.weight) for s in shadowing.slots] == [("primary", "1.0.0", 1.0),
                                                                        ("shadow", "1.1.0", 0.0)]
    assert shadowing.slots[1].released_in is None and shadowing.missing == ()  # a shadow answers nobody: no gates
    assert trace.slot == "primary" and [(s.version, len(s.predictions)) for s in trace.shadow] == [("1.1.0", 2)]
    assert [(s.slot, s.version) for s in staged.slots] == [("primary", "1.0.0"), ("standby", "1.1.0")]
    assert rolled_back.revision.action == "rollback" and rolled_back.slots[0].version == "1.0.0"
    assert rolled_back.slots[0].released_in == 1 and rolled_back.slots[0].release_gates
