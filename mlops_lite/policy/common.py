"""Small pieces the policy modules share."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from mlops_lite.errors import PolicyViolation
from mlops_lite.records import GateResult, Identity, PolicyDecision


def plain(value: Any) -> Any:
    """A numpy scalar as its Python value; anything else as it is."""
    return value.item() if hasattr(value, "item") else value


def json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: plain(v) if hasattr(v, "item") else str(v)))


def gate_dicts(gates: tuple[GateResult, ...] | list[GateResult]) -> list[dict[str, Any]]:
    return [json_safe(asdict(g)) for g in gates]


def name_of(actor: str | Identity | None) -> str | None:
    return actor.principal if isinstance(actor, Identity) else actor


def violation(decision: PolicyDecision, **extra: Any) -> PolicyViolation:
    """The PolicyViolation for a failed decision: every gate in ``details['gates']``."""
    failed = decision.failed
    return PolicyViolation(
        f"{decision.model}@{decision.version} fails {len(failed)} gate(s) for {decision.alias}: "
        + ", ".join(f"{g.gate} measured {g.measured} (needs {g.bound})" for g in failed),
        details={"gates": gate_dicts(decision.gates), "decision_id": decision.id, **extra})
