"""The policy facet's contract, asked of a local Platform and a RemotePlatform alike
(fixtures in conftest.py): the same policy, gates, decisions, overrides, approvals and
errors, and the gated alias enforced by the core either way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_lite import InvalidInput, NotFound, PermissionDenied, PolicyViolation
from mlops_lite.policy import PolicySpec
from mlops_lite.records import ApprovalRequest, GateResult, PolicyDecision
from tests.contract.conftest import home_of

MODEL = "loan-default"


@pytest.fixture
def policy_file(loop_api: Any) -> Iterator[Any]:
    """write(text): the model's policy file in the platform's home; removed afterwards."""
    folder: Path = home_of(loop_api) / "policies"
    folder.mkdir(exist_ok=True)

    def write(text: str) -> None:
        (folder / f"{MODEL}.toml").write_text(text)

    yield write
    (folder / f"{MODEL}.toml").unlink(missing_ok=True)


def test_the_effective_policy_and_its_gates(loop_api: Any, policy_file: Any) -> None:
    policy_file("[thresholds]\naccuracy = 0.5\n[aliases]\ngated = [\"production\", \"gold\"]\n")
    spec = loop_api.policy.load(MODEL)
    assert type(spec) is PolicySpec and spec.model == MODEL
    assert spec.gated_aliases == ("production", "gold")
    assert {t.metric for t in spec.thresholds} == {"roc_auc", "accuracy"}
    gates = loop_api.policy.evaluate(loop_api.registry.get_version(MODEL, "1.0.0"))
    assert all(type(g) is GateResult for g in gates)
    assert {g.gate for g in gates} == {"metric.roc_auc", "metric.accuracy", "lineage.complete"}
    assert all(g.passed for g in gates)


def test_a_decision_is_stored_and_read_back(loop_api: Any) -> None:
    decision = loop_api.policy.decide(MODEL, "1.0.0", alias="staging")
    assert type(decision) is PolicyDecision and decision.passed and decision.alias == "staging"
    assert loop_api.policy.get_decision(decision.id) == decision
    assert loop_api.policy.latest_decision(MODEL, "1.0.0", alias="staging") == decision
    assert decision in loop_api.policy.decisions(MODEL, "1.0.0", alias="staging")
    assert all(d.alias == "staging" for d in loop_api.policy.decisions(MODEL, alias="staging"))
    assert loop_api.policy.latest_decision(MODEL, "1.0.0", alias="nowhere") is None


def test_bad_input_names_the_field_and_changes_nothing(loop_api: Any, policy_file: Any) -> None:
    before = loop_api.policy.decisions(MODEL)
    with pytest.raises(NotFound):
        loop_api.policy.decide(MODEL, "9.9.9")
    with pytest.raises(NotFound):
        loop_api.policy.get_decision("no-such-decision")
    with pytest.raises(InvalidInput) as blank:
        loop_api.policy.override(MODEL, "1.0.0", alias="hotfix", reason="  ")
    assert blank.value.field == "reason"
    with pytest.raises(InvalidInput) as bad_model:
        loop_api.policy.load("Not A Model")
    assert bad_model.value.field == "model"
    policy_file("[aliases]\ngated = \"production\"\n")
    with pytest.raises(InvalidInput) as bad_file:
        loop_api.policy.load(MODEL)
    assert bad_file.value.field == "aliases.gated"
    assert loop_api.policy.decisions(MODEL) == before


def test_the_registry_refuses_a_gated_move_that_fails_the_gates(loop_api: Any, policy_file: Any) -> None:
    policy_file("[thresholds]\nroc_auc = 0.999\n[aliases]\ngated = [\"gold\"]\n")
    with pytest.raises(PolicyViolation) as refused:
        loop_api.registry.set_alias(MODEL, "gold", "1.0.0", reason="no decision")
    assert any(g["gate"] == "metric.roc_auc" and not g["passed"] for g in refused.value.details["gates"])
    assert "gold" not in loop_api.registry.aliases(MODEL)
    failed = loop_api.policy.latest_decision(MODEL, "1.0.0", alias="gold")
    assert failed is not None and failed.passed is False
    with pytest.raises(PolicyViolation):
        loop_api.registry.set_alias(MODEL, "gold", "1.0.0", reason="named", decision=failed.id)
    # An override stores its decision and moves the alias, as an override.
    forced = loop_api.policy.override(MODEL, "1.0.0", alias="gold", reason="incident 9")
    assert forced.overridden and forced.passed is False and forced.override_reason == "incident 9"
    assert loop_api.registry.aliases(MODEL)["gold"] == "1.0.0"
    assert loop_api.registry.alias_history(MODEL, "gold")[-1].kind == "override"


def test_approvals_keep_four_eyes_and_complete_in_the_core(loop_api: Any, policy_file: Any) -> None:
    policy_file("[approvals]\nrequired = 1\n[aliases]\ngated = [\"silver\"]\n")
    request = loop_api.policy.request_promotion(MODEL, "1.0.0", alias="silver", comment="ready")
    assert type(request) is ApprovalRequest and request.status == "pending" and request.comment == "ready"
    assert loop_api.policy.get_request(request.id) == request
    assert request in loop_api.policy.requests(MODEL, "pending")
    with pytest.raises(PermissionDenied, match="four-eyes"):
        loop_api.policy.approve(request.id, comment="mine")  # the requester cannot approve
    with pytest.raises(PolicyViolation) as early:
        loop_api.policy.complete(request.id)
    assert early.value.details["request_id"] == request.id
    assert "silver" not in loop_api.registry.aliases(MODEL)
    rejected = loop_api.policy.reject(request.id, comment="not now")
    assert rejected.status == "rejected" and rejected.votes[-1].comment == "not now"
    with pytest.raises(NotFound):
        loop_api.policy.get_request("no-such-request")
