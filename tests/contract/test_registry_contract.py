"""The registry facet's contract, asked of a local Platform and a RemotePlatform alike
(fixtures in conftest.py): models and versions, the ONNX bytes, aliases with their
history, comparison, lineage, model cards, the audit events, and bad input refused with
the same field and words.

``loop_api`` serves loan-default 1.0.0; ``second`` registers 1.0.1 beside it once per
platform: a run recorded through the tracking facet with the same data and signature and
a re-serialized ONNX file (another digest), its metrics a little better."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from mlops_lite import Conflict, InvalidInput, NotFound, PermissionDenied
from mlops_lite.client import RemotePlatform
from mlops_lite.records import AliasEventRecord, Lineage, ModelRecord, ModelVersionRecord, VersionComparison
from mlops_lite.training import MODEL_ARTIFACT, SIGNATURE_ARTIFACT
from tests.contract.conftest import actor_of as _actor
from tests.contract.conftest import refused as _refused

MODEL = "loan-default"




def _record_model_run(api: Any, onnx: bytes, first: ModelVersionRecord, *, better: float) -> str:
    with api.tracking.start_run("retrain", data_commits=first.data_commits) as run:
        run.log_params({**first.params, "note": "re-serialized"})
        run.log_metrics({k: float(v) + better for k, v in first.metrics.items()})
        run.log_artifact(MODEL_ARTIFACT, onnx)
        run.log_artifact(SIGNATURE_ARTIFACT, json.dumps(first.signature, sort_keys=True).encode())
    return str(run.id)


@pytest.fixture(scope="module")
def second(loop_api: Any) -> ModelVersionRecord:
    """loan-default 1.0.1, registered once per platform."""
    import onnx

    first = loop_api.registry.get_version(MODEL, "1.0.0")
    model = onnx.load_from_string(loop_api.registry.model_bytes(MODEL, "1.0.0"))
    model.doc_string = "loan-default, re-serialized"
    run_id = _record_model_run(loop_api, model.SerializeToString(), first, better=0.01)
    version: ModelVersionRecord = loop_api.registry.register_from_run(MODEL, run_id, description="ignored")
    return version


# --- models and versions ------------------------------------------------------------------------


def test_versions_are_registered_listed_and_read(loop_api: Any, second: ModelVersionRecord) -> None:
    first = loop_api.registry.get_version(MODEL, "1.0.0")
    assert type(second) is ModelVersionRecord and type(first) is ModelVersionRecord
    assert (second.model, second.version, second.created_by) == (MODEL, "1.0.1", _actor(loop_api))
    assert second.digest != first.digest and second.signature == first.signature
    assert second.data_commits == first.data_commits and second.params["note"] == "re-serialized"
    assert loop_api.registry.register_from_run(MODEL, second.run_id) == second  # same digest, same version
    assert loop_api.registry.get_version(MODEL, "1.0.1") == second
    assert loop_api.registry.latest_version(MODEL) == second
    models = loop_api.registry.list_models()
    assert [type(m) for m in models] == [ModelRecord] and models[0].name == MODEL
    assert models[0].versions == ("1.0.0", "1.0.1")
    assert loop_api.registry.list_versions(MODEL) == [first, second] == loop_api.registry.list_versions()
    assert loop_api.registry.list_versions("no-such-model") == []
    (event,) = loop_api.audit.about(f"model:{MODEL}@1.0.1")
    assert (event.action, event.actor, event.after["run_id"]) == ("model.version.register", _actor(loop_api),
                                                                  second.run_id)


def test_the_onnx_bytes_are_served_verified(loop_api: Any, second: ModelVersionRecord) -> None:
    onnx = loop_api.registry.model_bytes(MODEL, "1.0.1")
    assert hashlib.sha256(onnx).hexdigest() == second.digest
    assert loop_api.registry.artifact_bytes(second.digest) == onnx
    assert _refused(NotFound, lambda: loop_api.registry.model_bytes(MODEL, "9.9.9")).message == \
        f"model {MODEL!r} has no version '9.9.9'"
    assert _refused(NotFound, lambda: loop_api.registry.artifact_bytes("0" * 64)).message.startswith(
        f"object {'0' * 64} is not in the store")
    bad = _refused(InvalidInput, lambda: loop_api.registry.artifact_bytes("not-a-digest"))
    assert (bad.field, bad.expected) == ("digest", "64 lowercase hex characters")


def test_what_is_not_there_is_not_found(loop_api: Any) -> None:
    for call, words in ((lambda: loop_api.registry.get_version(MODEL, "9.9.9"), f"model {MODEL!r} has no version '9.9.9'"),
                        (lambda: loop_api.registry.latest_version("nope"), "model 'nope' has no versions"),
                        (lambda: loop_api.registry.get_alias(MODEL, "never-set"), f"model {MODEL!r} has no alias 'never-set'"),
                        (lambda: loop_api.registry.get_alias("nope", "staging"), "model 'nope' does not exist"),
                        (lambda: loop_api.registry.aliases("nope"), "model 'nope' does not exist"),
                        (lambda: loop_api.registry.alias_history(MODEL, "never-set"), f"model {MODEL!r} has no alias 'never-set'"),
                        (lambda: loop_api.registry.model_card(MODEL, "9.9.9"), f"model {MODEL!r} has no version '9.9.9'"),
                        (lambda: loop_api.registry.compare_versions(MODEL, "1.0.0", "9.9.9"),
                         f"model {MODEL!r} has no version '9.9.9'"),
                        (lambda: loop_api.registry.register_from_run(MODEL, "no-such-run"),
                         "run 'no-such-run' does not exist")):
        assert _refused(NotFound, call).message == words


# --- aliases ------------------------------------------------------------------------------------


def test_an_alias_moves_rolls_back_and_is_deleted_with_its_history(loop_api: Any,
                                                                   second: ModelVersionRecord) -> None:
    registry, alias = loop_api.registry, "candidate"
    assert registry.set_alias(MODEL, alias, "1.0.0", reason="first look") == registry.get_version(MODEL, "1.0.0")
    assert registry.set_alias(MODEL, alias, "1.0.0", reason="again") == registry.get_alias(MODEL, alias)  # no-op
    assert registry.set_alias(MODEL, alias, "1.0.1", reason="better auc") == second
    assert registry.get_alias(MODEL, alias) == second and registry.aliases(MODEL)[alias] == "1.0.1"
    assert registry.rollback(MODEL, alias, reason="latency") == registry.get_version(MODEL, "1.0.0")
    deleted = registry.delete_alias(MODEL, alias, reason="retired")
    assert type(deleted) is AliasEventRecord
    assert (deleted.kind, deleted.from_version, deleted.to_version, deleted.reason) == ("delete", "1.0.0", None,
                                                                                        "retired")
    assert alias not in registry.aliases(MODEL)
    assert _refused(NotFound, lambda: registry.get_alias(MODEL, alias)).message == \
        f"model {MODEL!r} has no alias {alias!r}"
    history = registry.alias_history(MODEL, alias)
    assert all(type(e) is AliasEventRecord for e in history) and history[-1] == deleted
    assert [(e.seq, e.kind, e.from_version, e.to_version, e.reason, e.actor) for e in history] == [
        (1, "move", None, "1.0.0", "first look", _actor(loop_api)),
        (2, "move", "1.0.0", "1.0.1", "better auc", _actor(loop_api)),
        (3, "rollback", "1.0.1", "1.0.0", "latency", _actor(loop_api)),
        (4, "delete", "1.0.0", None, "retired", _actor(loop_api))]
    assert [e for e in registry.alias_history(MODEL) if e.alias == alias] == history
    # where it pointed at each moment of its history
    assert registry.alias_at(MODEL, alias, history[0].at - timedelta(microseconds=1)) is None
    assert registry.alias_at(MODEL, alias, history[1].at) == second
    assert registry.alias_at(MODEL, alias, history[2].at) == registry.get_version(MODEL, "1.0.0")
    assert registry.alias_at(MODEL, alias, history[3].at + timedelta(seconds=1)) is None
    assert registry.alias_at(MODEL, alias, history[1].at.replace(tzinfo=None)) == second  # naive is UTC
    audit = loop_api.audit.about(f"model:{MODEL}/alias:{alias}")
    assert [e.action for e in audit] == ["model.alias.move", "model.alias.move", "model.alias.rollback",
                                         "model.alias.delete"]
    assert {e.actor for e in audit} == {_actor(loop_api)}


def test_a_deletion_that_expects_another_version_is_refused(loop_api: Any, second: ModelVersionRecord) -> None:
    registry, alias = loop_api.registry, "shadow-pick"
    registry.set_alias(MODEL, alias, "1.0.1", reason="try it")
    refused = _refused(Conflict, lambda: registry.delete_alias(MODEL, alias, reason="x", expected="1.0.0"))
    assert refused.message == f"alias {alias!r} of model {MODEL!r} points to 1.0.1, not 1.0.0"
    assert refused.details == {"expected": "1.0.0", "actual": "1.0.1"}
    assert registry.get_alias(MODEL, alias) == second
    assert registry.delete_alias(MODEL, alias, reason="done", expected="1.0.1").kind == "delete"
    registry.set_alias(MODEL, "no-rollback", "1.0.0", reason="first")
    refused = _refused(Conflict, lambda: registry.rollback(MODEL, "no-rollback", reason="x"))
    assert refused.message == f"alias 'no-rollback' of model {MODEL!r} has no previous version to roll back to"


def test_a_move_that_expects_another_version_is_refused(loop_api: Any) -> None:
    registry, alias = loop_api.registry, "guarded"
    registry.set_alias(MODEL, alias, "1.0.0", reason="start", expected=None)
    refused = _refused(Conflict, lambda: registry.set_alias(MODEL, alias, "1.0.1", reason="x", expected=None))
    assert refused.details == {"expected": None, "actual": "1.0.0"}
    assert registry.set_alias(MODEL, alias, "1.0.1", reason="swap", expected="1.0.0").version == "1.0.1"


# --- comparison, lineage, model cards -----------------------------------------------------------


def test_versions_are_compared(loop_api: Any, second: ModelVersionRecord) -> None:
    comparison = loop_api.registry.compare_versions(MODEL, "1.0.0", "1.0.1")
    assert type(comparison) is VersionComparison and (comparison.a, comparison.b) == ("1.0.0", "1.0.1")
    assert comparison.metric_deltas.keys() == second.metrics.keys()
    assert all(abs(delta - 0.01) < 1e-9 for delta in comparison.metric_deltas.values())
    assert not comparison.signature_changed and not comparison.data_changed
    assert comparison.inputs_changed == {} and comparison.inputs_added == ()
    assert comparison.params_changed == {"note": (None, "re-serialized")}


def test_lineage_of_a_version_and_of_an_alias(loop_api: Any, second: ModelVersionRecord) -> None:
    registry = loop_api.registry
    lineage = registry.lineage(MODEL, "1.0.1")
    assert type(lineage) is Lineage and lineage.version == second
    assert (lineage.run_id, lineage.data_commits, lineage.alias) == (second.run_id, second.data_commits, None)
    assert lineage.audit_events[0].action == "model.version.register"
    registry.set_alias(MODEL, "lineage-ref", "1.0.1", reason="lineage")
    by_alias = registry.lineage(MODEL, "lineage-ref")
    assert by_alias.version == second and by_alias.alias == "lineage-ref"
    moved_at = by_alias.alias_events[-1].at
    assert registry.lineage(MODEL, "lineage-ref", at=moved_at).version == second
    bad_at = _refused(InvalidInput, lambda: registry.lineage(MODEL, "1.0.1", at=moved_at))
    assert (bad_at.field, bad_at.message) == ("at", "'at' applies to an alias, and '1.0.1' is a version")
    assert _refused(InvalidInput, lambda: registry.lineage(MODEL, "Not A Ref")).field == "ref"


def test_a_model_card_is_set_read_and_audited(loop_api: Any, second: ModelVersionRecord) -> None:
    registry = loop_api.registry
    assert registry.model_card(MODEL, "1.0.1") == {}
    card = {"intended_use": "credit pre-screening", "limitations": ["no thin files"], "evaluation": {"auc": 0.8}}
    assert registry.set_model_card(MODEL, "1.0.1", card) == card
    assert registry.model_card(MODEL, "1.0.1") == card
    assert registry.lineage(MODEL, "1.0.1").card == card
    event = loop_api.audit.about(f"model:{MODEL}@1.0.1", action_prefix="model.card")[-1]
    assert (event.action, event.actor, event.before, event.after) == ("model.card.set", _actor(loop_api), {}, card)
    assert _refused(NotFound, lambda: registry.set_model_card(MODEL, "9.9.9", card)).message == \
        f"model {MODEL!r} has no version '9.9.9'"


# --- bad input ----------------------------------------------------------------------------------

# (id, the call on ``registry``, the field, its message or None when the words are the wire's)
BAD_REGISTRY_INPUT: list[tuple[str, Callable[[Any], Any], str, str | None]] = [
    ("bad-model-name", lambda r: r.register_from_run("Not A Model", "x"), "model", "bad model name 'Not A Model'"),
    ("bad-alias-name", lambda r: r.get_alias(MODEL, "Bad Alias"), "alias", "bad alias name 'Bad Alias'"),
    ("move-without-reason", lambda r: r.set_alias(MODEL, "staging", "1.0.0", reason="  "), "reason",
     "an alias change needs a reason"),
    ("delete-without-reason", lambda r: r.delete_alias(MODEL, "staging", reason=""), "reason",
     "an alias change needs a reason"),
    ("history-of-a-bad-alias", lambda r: r.alias_history(MODEL, "-x"), "alias", "bad alias name '-x'"),
    ("card-not-an-object", lambda r: r.set_model_card(MODEL, "1.0.0", ["not", "a", "card"]), "card", None),
]


@pytest.mark.parametrize(("call", "field", "message"), [case[1:] for case in BAD_REGISTRY_INPUT],
                         ids=[case[0] for case in BAD_REGISTRY_INPUT])
def test_bad_input_names_the_field_and_changes_nothing(loop_api: Any, second: ModelVersionRecord,
                                                       call: Callable[[Any], Any], field: str,
                                                       message: str | None) -> None:
    registry = loop_api.registry
    before = (registry.list_versions(), registry.aliases(MODEL), loop_api.audit.count())
    refused = _refused(InvalidInput, lambda: call(registry))
    assert refused.field == field and refused.expected
    if message is not None:
        assert refused.message == message
    assert (registry.list_versions(), registry.aliases(MODEL), loop_api.audit.count()) == before


def test_only_a_finished_run_with_a_model_registers_at_a_greater_version(loop_api: Any,
                                                                        second: ModelVersionRecord) -> None:
    import onnx

    registry = loop_api.registry
    model = onnx.load_from_string(registry.model_bytes(MODEL, "1.0.0"))
    model.doc_string = "a third file"
    third = _record_model_run(loop_api, model.SerializeToString(), registry.get_version(MODEL, "1.0.0"), better=0)
    before = registry.list_versions()
    refused = _refused(InvalidInput, lambda: registry.register_from_run(MODEL, third, version="1.0.0"))
    assert (refused.field, refused.message) == ("version", "version 1.0.0 is not greater than 1.0.1")
    with loop_api.tracking.start_run("no model") as plain:
        plain.log_metric("auc", 0.5)
    refused = _refused(InvalidInput, lambda: registry.register_from_run(MODEL, plain.id))
    assert (refused.field, refused.message) == ("run_id", f"run {plain.id} has no {MODEL_ARTIFACT}")
    running = loop_api.tracking.start_run("still running")
    try:
        assert _refused(Conflict, lambda: registry.register_from_run(MODEL, running.id)).message == \
            f"run {running.id} is running; only finished runs can be registered"
    finally:
        running.end()
    assert registry.list_versions() == before


# --- roles (over HTTP: reads need viewer, writes operator) ------------------------------------


@pytest.mark.parametrize("loop_api", ["remote"], indirect=True)
def test_a_viewer_reads_the_registry_and_changes_nothing(loop_api: Any) -> None:
    registry = loop_api.registry
    version = registry.get_version(MODEL, "1.0.0")
    registry.set_alias(MODEL, "viewer-check", "1.0.0", reason="for the viewer")
    _, secret = loop_api.tokens.create("registry-viewer", "viewer")
    with RemotePlatform(loop_api.url, secret) as viewer:
        assert viewer.registry.list_versions(MODEL) == registry.list_versions(MODEL)
        assert viewer.registry.get_alias(MODEL, "viewer-check") == version
        assert viewer.registry.alias_history(MODEL, "viewer-check") == registry.alias_history(MODEL, "viewer-check")
        assert viewer.registry.model_bytes(MODEL, "1.0.0") == registry.model_bytes(MODEL, "1.0.0")
        assert viewer.registry.model_card(MODEL, "1.0.0") == registry.model_card(MODEL, "1.0.0")
        for write in (lambda: viewer.registry.set_model_card(MODEL, "1.0.0", {"intended_use": "x"}),
                      lambda: viewer.registry.delete_alias(MODEL, "viewer-check", reason="x"),
                      lambda: viewer.registry.register_from_run(MODEL, version.run_id or "")):
            assert _refused(PermissionDenied, write).details == {"needed": "operator", "role": "viewer"}
    assert registry.get_alias(MODEL, "viewer-check") == version
