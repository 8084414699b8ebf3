"""``platform.policy``: the gates a version must pass to take an alias or a deployment,
stored decisions, admin overrides and the approval workflow (four-eyes).

The rules are the core's: the registry asks the policy before it moves a gated alias
(``[aliases] gated``, default ``production``), the deployments facet before it serves a
version. Votes, completions and overrides act as the caller: over HTTP the token's
identity; in-process the platform's own actor (admin: it owns the stores), or the
``identity`` passed.

Off the Protocol, with why: ``enforce`` and ``require_passing`` (what the deployments
facet and the registry call), ``authorize_move`` (the registry's guard), ``scored``,
``sinks`` and ``notify`` (the gates' own machinery).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from mlops_lite.records import ApprovalRequest, GateResult, ModelVersionRecord, PolicyDecision

if TYPE_CHECKING:
    from mlops_lite.policy.document import PolicySpec


class PolicyAPI(Protocol):
    def load(self, model: str | None = None) -> PolicySpec:
        """The effective policy of ``model`` (built-in base <- default.toml <- <model>.toml)."""

    def evaluate(self, version: ModelVersionRecord, *, alias: str = "production",
                 baseline: str | None = None) -> list[GateResult]:
        """Every gate measured now; nothing is stored. ``baseline``: a version of the same
        model for the regression gate to compare against instead of the policy's alias."""

    def decide(self, model: str, version: str, *, alias: str = "production") -> PolicyDecision:
        """Measure every gate and store the decision (audit ``policy.decision``)."""

    def decisions(self, model: str, version: str | None = None, *,
                  alias: str | None = None) -> list[PolicyDecision]: ...

    def get_decision(self, decision_id: str) -> PolicyDecision: ...

    def latest_decision(self, model: str, version: str, *, alias: str = "production") -> PolicyDecision | None: ...

    def override(self, model: str, version: str, *, alias: str = "production", reason: str,
                 move: bool = True) -> PolicyDecision:
        """An admin lets ``model@version`` take ``alias`` whatever the gates say (stored,
        audited ``policy.override``), and moves the alias unless ``move=False``."""

    def request_promotion(self, model: str, version: str, *, alias: str = "production",
                          comment: str = "") -> ApprovalRequest: ...

    def requests(self, model: str | None = None, status: str | None = None) -> list[ApprovalRequest]: ...

    def get_request(self, request_id: str) -> ApprovalRequest: ...

    def approve(self, request_id: str, *, comment: str = "", complete: bool = False) -> ApprovalRequest: ...

    def reject(self, request_id: str, *, comment: str = "") -> ApprovalRequest: ...

    def complete(self, request_id: str, *, comment: str = "") -> ApprovalRequest:
        """Decide and, when every gate passes, move the alias and close the request."""
