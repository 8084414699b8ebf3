"""The deployments facet's contract, asked of a local Platform and a RemotePlatform alike
(fixtures in conftest.py): the deployments listed and read, every release verb (deploy,
canary, shadow, stage, switch, promote, rollback) answering the same records, predictions
that equal what the registered model answers, lineage back to the run and data commits,
and bad input refused with the same error and field, changing nothing.

``loop_api`` serves loan-default 1.0.0 as 'loans'; ``second`` records 1.0.1 beside it once
per platform through the training facet (a re-serialized ONNX file of 1.0.0: another
digest, the same answers), and each release test works on a deployment of its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from mlops_lite import Conflict, InvalidInput, NotFound
from mlops_lite.records import (
    DeploymentLineage,
    DeploymentRecord,
    DeploymentRevisionRecord,
    ModelVersionRecord,
    Prediction,
)
from tests.conftest import DATA, FEATURE_EXCLUDE
from tests.contract.conftest import actor_of as _actor
from tests.contract.conftest import refused as _refused

MODEL = "loan-default"




def _rows(api: Any, n: int) -> list[dict[str, Any]]:
    """Held-out rows with only the served model's features."""
    import pyarrow.csv as pacsv

    names = [spec["name"] for spec in api.registry.get_version(MODEL, "1.0.0").signature["inputs"]]
    rows = pacsv.read_csv(DATA / "loans_holdout.csv").to_pylist()[:n]
    assert not set(names) & set(FEATURE_EXCLUDE)
    return [{name: row[name] for name in names} for row in rows]


def record_second(api: Any) -> ModelVersionRecord:
    """Record loan-default 1.0.1 through the training facet (1.0.0's ONNX file re-serialized:
    another digest, the same answers, its metrics a little better) and register it."""
    import onnx

    first = api.registry.get_version(MODEL, "1.0.0")
    model = onnx.load_from_string(api.registry.model_bytes(MODEL, "1.0.0"))
    model.doc_string = "loan-default, re-serialized"
    run = api.tracking.get_run(first.run_id)
    result = api.training.record("retrain", data_commit=first.data_commits[0],
                                 tags={"repository": run.tags["repository"], "path": run.tags["path"]},
                                 params=dict(first.params), metrics={k: float(v) + 0.01 for k, v in first.metrics.items()},
                                 onnx=model.SerializeToString(), signature=first.signature)
    version: ModelVersionRecord = api.registry.register_from_run(MODEL, result.run.id)
    assert version.version == "1.0.1"
    return version


@pytest.fixture(scope="module")
def second(loop_api: Any) -> ModelVersionRecord:
    """loan-default 1.0.1, once per platform (see ``record_second``)."""
    return record_second(loop_api)


def _deployed(api: Any, name: str) -> DeploymentRecord:
    record: DeploymentRecord = api.deployments.deploy(name, MODEL, "1.0.0", reason="start")
    return record


def _state(record: DeploymentRecord | DeploymentRevisionRecord) -> tuple[Any, ...]:
    return (record.strategy, record.model, record.version, record.candidate_model, record.candidate_version,
            record.weight, record.live_slot)


# --- reads --------------------------------------------------------------------------------------


def test_deployments_are_listed_and_read(loop_api: Any) -> None:
    listed = loop_api.deployments.list()
    assert listed and all(type(record) is DeploymentRecord for record in listed)
    assert [r.name for r in listed] == sorted(r.name for r in listed)
    loans = loop_api.deployments.get("loans")
    assert type(loans) is DeploymentRecord and loans in listed
    version = loop_api.registry.get_version(MODEL, "1.0.0")
    assert (loans.model, loans.version, loans.digest) == (MODEL, "1.0.0", version.digest)
    revisions = loop_api.deployments.revisions("loans")
    assert all(type(r) is DeploymentRevisionRecord for r in revisions)
    assert [r.revision for r in revisions] == list(range(loans.revision, 0, -1))  # newest first
    assert revisions[-1].action == "deploy" and _state(revisions[0]) == _state(loans)


# --- releases -----------------------------------------------------------------------------------


def test_deploy_makes_a_revision_and_audits_it(loop_api: Any, second: ModelVersionRecord) -> None:
    deployments = loop_api.deployments
    first = _deployed(loop_api, "rel-deploy")
    assert type(first) is DeploymentRecord
    assert (first.name, first.revision, first.strategy, first.updated_by) == ("rel-deploy", 1, "single",
                                                                             _actor(loop_api))
    assert (first.model, first.version, first.candidate_digest, first.weight, first.live_slot) == (
        MODEL, "1.0.0", None, None, None)
    assert deployments.get("rel-deploy") == first and first in deployments.list()
    again = deployments.deploy("rel-deploy", MODEL, "1.0.1", reason="newer")
    assert (again.revision, again.version, again.digest) == (2, "1.0.1", second.digest)
    assert deployments.get("rel-deploy") == again
    revisions = deployments.revisions("rel-deploy")
    assert [(r.revision, r.action, r.version, r.reason, r.changed_by) for r in revisions] == [
        (2, "deploy", "1.0.1", "newer", _actor(loop_api)), (1, "deploy", "1.0.0", "start", _actor(loop_api))]
    audit = loop_api.audit.about("deployment:rel-deploy")
    assert [(e.action, e.actor, e.after["revision"]) for e in audit] == [
        ("deployment.deploy", _actor(loop_api), 1), ("deployment.deploy", _actor(loop_api), 2)]
    assert audit[1].before["version"] == "1.0.0" and audit[1].after["reason"] == "newer"


def test_a_canary_is_weighted_promoted_and_rolled_back(loop_api: Any, second: ModelVersionRecord) -> None:
    deployments, name = loop_api.deployments, "rel-canary"
    _deployed(loop_api, name)
    canary = deployments.canary(name, MODEL, "1.0.1", weight=0.25, reason="try 1.0.1")
    assert type(canary) is DeploymentRecord and canary.revision == 2
    assert _state(canary) == ("canary", MODEL, "1.0.0", MODEL, "1.0.1", 0.25, None)
    assert canary.candidate_digest == second.digest and deployments.get(name) == canary
    reweighted = deployments.canary(name, MODEL, "1.0.1", weight=0.5)
    assert _state(reweighted) == ("canary", MODEL, "1.0.0", MODEL, "1.0.1", 0.5, None)
    # a keyed request lands on one side, and on the same side again
    rows = _rows(loop_api, 2)
    sides = {key: deployments.predict(name, rows, key=key) for key in ("k0", "k1", "k2", "k3", "k4", "k5")}
    for key, answer in sides.items():
        assert answer.slot in ("primary", "canary")
        assert answer.version == ("1.0.1" if answer.slot == "canary" else "1.0.0")
        assert deployments.predict(name, rows, key=key).slot == answer.slot
    promoted = deployments.promote(name, reason="canary passed")
    assert _state(promoted) == ("single", MODEL, "1.0.1", None, None, None, None) and promoted.revision == 4
    back = deployments.rollback(name, reason="latency")
    assert back.revision == 5 and _state(back) == _state(reweighted)
    first = deployments.rollback(name, to_revision=1)
    assert first.revision == 6 and _state(first) == ("single", MODEL, "1.0.0", None, None, None, None)
    assert [(r.action, r.reason) for r in deployments.revisions(name)] == [
        ("rollback", "roll back to revision 1"), ("rollback", "latency"), ("promote", "canary passed"),
        ("canary", ""), ("canary", "try 1.0.1"), ("deploy", "start")]


def test_blue_green_stages_and_switches_both_ways(loop_api: Any, second: ModelVersionRecord) -> None:
    deployments, name = loop_api.deployments, "rel-blue-green"
    _deployed(loop_api, name)
    staged = deployments.stage(name, MODEL, "1.0.1", reason="stand by")
    assert _state(staged) == ("blue_green", MODEL, "1.0.0", MODEL, "1.0.1", None, "blue")
    assert deployments.predict(name, _rows(loop_api, 1)).version == "1.0.0"  # the standby answers nobody
    switched = deployments.switch(name, reason="go green")
    assert _state(switched) == ("blue_green", MODEL, "1.0.1", MODEL, "1.0.0", None, "green")
    assert (switched.digest, switched.candidate_digest) == (second.digest, staged.digest)
    answer = deployments.predict(name, _rows(loop_api, 1))
    assert (answer.version, answer.digest, answer.slot) == ("1.0.1", second.digest, "primary")
    back = deployments.switch(name)
    assert _state(back) == ("blue_green", MODEL, "1.0.0", MODEL, "1.0.1", None, "blue") and back.revision == 4
    assert deployments.get(name) == back
    assert [r.action for r in deployments.revisions(name)] == ["switch", "switch", "stage", "deploy"]


def test_a_shadow_answers_nobody_until_promoted(loop_api: Any, second: ModelVersionRecord) -> None:
    deployments, name = loop_api.deployments, "rel-shadow"
    _deployed(loop_api, name)
    shadow = deployments.shadow(name, MODEL, "1.0.1", reason="mirror")
    assert _state(shadow) == ("shadow", MODEL, "1.0.0", MODEL, "1.0.1", None, None)
    for key in ("a", "b", "c"):
        answer = deployments.predict(name, _rows(loop_api, 2), key=key)
        assert (answer.slot, answer.version) == ("primary", "1.0.0")
    promoted = deployments.promote(name)
    assert _state(promoted) == ("single", MODEL, "1.0.1", None, None, None, None)
    assert promoted.digest == second.digest


# --- predictions --------------------------------------------------------------------------------


def test_predict_answers_what_the_registered_model_answers(loop_api: Any) -> None:
    from mlops_lite.inference.session import ModelSession

    version = loop_api.registry.get_version(MODEL, "1.0.0")
    rows = _rows(loop_api, 25)
    got = loop_api.deployments.predict("loans", rows)
    assert type(got) is Prediction and got.request_id
    assert (got.deployment, got.model, got.version, got.digest, got.slot) == (
        "loans", MODEL, "1.0.0", version.digest, "primary")
    session = ModelSession(loop_api.registry.model_bytes(MODEL, "1.0.0"), version.signature,
                           providers=["CPUExecutionProvider"])
    labels, probabilities = session.predict(session.build_feed(rows))
    assert got.classes == tuple(version.signature["classes"])
    assert got.predictions == tuple(labels.tolist())
    assert [x for p in got.probabilities for x in p] == pytest.approx(probabilities.ravel().tolist(), abs=1e-6)
    again = loop_api.deployments.predict("loans", rows)
    assert again.request_id != got.request_id
    assert dataclasses.replace(again, request_id="") == dataclasses.replace(got, request_id="")


# --- lineage ------------------------------------------------------------------------------------


def test_lineage_names_the_run_and_the_data_commits(loop_api: Any, second: ModelVersionRecord) -> None:
    deployments, name = loop_api.deployments, "rel-lineage"
    _deployed(loop_api, name)
    canary = deployments.canary(name, MODEL, "1.0.1", weight=0.2, reason="lineage")
    lineage = deployments.lineage(name)
    assert type(lineage) is DeploymentLineage and lineage.deployment == name
    assert lineage.revision.revision == canary.revision and lineage.revision.action == "canary"
    assert [r.revision for r in lineage.history] == [1, 2]
    assert [(s.slot, s.version) for s in lineage.slots] == [("primary", "1.0.0"), ("canary", "1.0.1")]
    assert [s.weight for s in lineage.slots] == pytest.approx([0.8, 0.2])
    first = loop_api.registry.get_version(MODEL, "1.0.0")
    for slot, version in zip(lineage.slots, (first, second), strict=True):
        assert slot.registered == version and slot.digest == version.digest
        assert slot.run_id == version.run_id and slot.run is not None and slot.run.id == version.run_id
        assert slot.data_repository == "loans" and slot.data_commits == version.data_commits
        assert tuple(c.id for c in slot.commits) == version.data_commits
        assert slot.missing == ()
    assert lineage.slots[0].released_in == 1 and lineage.slots[1].released_in == 2
    assert lineage.missing == ()
    # at a moment: the revision in force then
    at_first = deployments.lineage(name, at=lineage.history[0].changed_at)
    assert at_first.revision == lineage.history[0] and [s.slot for s in at_first.slots] == ["primary"]
    assert deployments.lineage(name, at=lineage.history[0].changed_at.isoformat()) == at_first
    before = lineage.history[0].changed_at - timedelta(days=1)
    assert _refused(NotFound, lambda: deployments.lineage(name, at=before)).message.startswith(
        f"deployment {name!r} served nothing at")
    bad = _refused(InvalidInput, lambda: deployments.lineage(name, at="yesterday"))
    assert (bad.field, bad.message) == ("at", "bad time 'yesterday' for 'at'")


# --- refusals -----------------------------------------------------------------------------------


def test_what_is_not_there_is_not_found(loop_api: Any) -> None:
    deployments = loop_api.deployments
    rows = _rows(loop_api, 1)
    for call in (lambda: deployments.get("nope"), lambda: deployments.revisions("nope"),
                 lambda: deployments.predict("nope", rows), lambda: deployments.lineage("nope")):
        assert _refused(NotFound, call).message == "deployment 'nope' does not exist"
    for call in (lambda: deployments.promote("nope"), lambda: deployments.switch("nope"),
                 lambda: deployments.rollback("nope"), lambda: deployments.stage("nope", MODEL, "1.0.0")):
        assert "deployment 'nope' does not exist" in _refused(NotFound, call).message
    assert _refused(NotFound, lambda: deployments.canary("nope", MODEL, "1.0.0")).message == \
        "deployment 'nope' does not exist; deploy a version to it first"
    assert _refused(NotFound, lambda: deployments.deploy("loans", MODEL, "9.9.9")).message == \
        f"model {MODEL!r} has no version '9.9.9'"
    assert "nope" not in [d.name for d in deployments.list()]


def test_a_change_the_state_does_not_allow_is_a_conflict(loop_api: Any, second: ModelVersionRecord) -> None:
    deployments, name = loop_api.deployments, "rel-conflict"
    _deployed(loop_api, name)
    before = (deployments.get(name), deployments.revisions(name), loop_api.audit.count())
    refused = _refused(Conflict, lambda: deployments.switch(name))
    assert refused.message == (f"deployment {name!r} has no standby slot to switch to (strategy single); "
                               "stage a version first")
    assert refused.details == {"strategy": "single"}
    refused = _refused(Conflict, lambda: deployments.promote(name))
    assert (refused.message, refused.details) == (f"deployment {name!r} has no candidate to promote",
                                                  {"strategy": "single"})
    refused = _refused(Conflict, lambda: deployments.canary(name, MODEL, "1.0.0"))
    assert refused.message == f"{MODEL}@1.0.0 already is the primary of {name!r}"
    assert (deployments.get(name), deployments.revisions(name), loop_api.audit.count()) == before


# (id, the call on ``deployments`` given held-out rows, the field)
BAD_INPUT: list[tuple[str, Callable[[Any, list[dict[str, Any]]], Any], str]] = [
    ("bad-name", lambda d, rows: d.deploy("Not A Name", MODEL, "1.0.0"), "name"),
    ("weight-above-one", lambda d, rows: d.canary("loans", MODEL, "1.0.1", weight=1.5), "weight"),
    ("weight-zero", lambda d, rows: d.canary("loans", MODEL, "1.0.1", weight=0), "weight"),
    ("rollback-too-far", lambda d, rows: d.rollback("loans", to_revision=99), "to_revision"),
    ("rollback-to-zero", lambda d, rows: d.rollback("loans", to_revision=0), "to_revision"),
    ("feature-of-a-wrong-type", lambda d, rows: d.predict("loans", [rows[0], {**rows[1], "income": "lots"}]),
     "instances[1].income"),
    ("feature-missing", lambda d, rows: d.predict("loans", [{k: v for k, v in rows[0].items() if k != "income"}]),
     "instances[0].income"),
    ("key-too-long", lambda d, rows: d.predict("loans", rows, key="k" * 300), "key"),
]


@pytest.mark.parametrize(("call", "field"), [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_names_the_field_and_changes_nothing(loop_api: Any, second: ModelVersionRecord,
                                                       call: Callable[[Any, list[dict[str, Any]]], Any],
                                                       field: str) -> None:
    deployments = loop_api.deployments
    rows = _rows(loop_api, 2)
    before = (deployments.list(), deployments.revisions("loans"), loop_api.audit.count())
    refused = _refused(InvalidInput, lambda: call(deployments, rows))
    assert refused.field == field and refused.expected and refused.message
    assert (deployments.list(), deployments.revisions("loans"), loop_api.audit.count()) == before


def test_bad_input_words_are_the_same(loop_api: Any) -> None:
    """The core's words, where the core refuses (a weight out of range is refused by the
    server's schema before the core sees it: the same field, the wire's words)."""
    deployments = loop_api.deployments
    rows = _rows(loop_api, 2)
    rows[1]["income"] = "lots"
    refused = _refused(InvalidInput, lambda: deployments.predict("loans", rows))
    assert (refused.message, refused.expected) == ("instances[1].income is str", "a finite number")
    revision = deployments.get("loans").revision
    refused = _refused(InvalidInput, lambda: deployments.rollback("loans", to_revision=99))
    assert (refused.message, refused.expected) == ("cannot roll back 'loans' to revision 99",
                                                   f"a revision from 1 to {revision - 1}")
