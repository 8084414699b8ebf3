"""``platform.registry``: models, immutable versions addressed by their ONNX digest,
aliases with an append-only history, comparison, lineage and model cards."""

from __future__ import annotations

from datetime import datetime
from types import EllipsisType
from typing import Any, Protocol

from mlops_lite.records import AliasEventRecord, Lineage, ModelRecord, ModelVersionRecord, VersionComparison

# Off the Protocol: ``actor=`` on every write (over HTTP the actor is the caller's token;
# in-process it is the platform's actor). The registry has no daemon-only seam.


class RegistryAPI(Protocol):
    def register_from_run(self, model: str, run_id: str, *, version: str | None = None,
                          description: str = "") -> ModelVersionRecord:
        """Register the ONNX model of a finished run; a digest the model already has
        answers that version unchanged."""

    def get_version(self, model: str, version: str) -> ModelVersionRecord: ...

    def latest_version(self, model: str) -> ModelVersionRecord:
        """The highest semantic version of ``model``; NotFound when it has none."""

    def list_versions(self, model: str | None = None) -> list[ModelVersionRecord]:
        """Versions by model and semantic version; [] for a model with none."""

    def list_models(self) -> list[ModelRecord]: ...

    def artifact_bytes(self, digest: str) -> bytes:
        """An ONNX file by digest, verified against it."""

    def model_bytes(self, model: str, version: str) -> bytes:
        """The ONNX file of a version, verified against its digest."""

    def set_alias(self, model: str, alias: str, version: str, *, reason: str,
                  expected: str | EllipsisType | None = ..., decision: str | None = None) -> ModelVersionRecord:
        """Point ``alias`` at ``version``. With ``expected`` (a version, or None for
        "unset") it moves only if the alias still points there, else Conflict. A gated
        alias (default ``production``) moves only with a passing policy decision: the one
        ``decision`` names, else one made now (PolicyViolation, with every gate, refuses)."""

    def get_alias(self, model: str, alias: str) -> ModelVersionRecord:
        """The version ``alias`` points to now; NotFound when it is not set."""

    def aliases(self, model: str) -> dict[str, str]:
        """alias -> version for every alias of ``model`` that is set."""

    def alias_at(self, model: str, alias: str, when: datetime) -> ModelVersionRecord | None:
        """The version ``alias`` pointed to at ``when``; None if it pointed nowhere then."""

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEventRecord]:
        """Every move of the model's aliases (or of one alias), oldest first."""

    def rollback(self, model: str, alias: str, *, reason: str) -> ModelVersionRecord:
        """Move ``alias`` back to the version it pointed to before its last move."""

    def delete_alias(self, model: str, alias: str, *, reason: str,
                     expected: str | EllipsisType | None = ...) -> AliasEventRecord:
        """Unset ``alias``; its history stays."""

    def compare_versions(self, model: str, a: str, b: str) -> VersionComparison:
        """``b`` against ``a``: metric deltas (b - a), signature diff, data commits, params changed."""

    def lineage(self, model: str, ref: str, *, at: datetime | None = None) -> Lineage:
        """``model@ref`` (a version, or an alias now or ``at`` a time) with its run, data
        commits, params, metrics, card, alias moves and audit events."""

    def set_model_card(self, model: str, version: str, card: dict[str, Any]) -> dict[str, Any]:
        """Store a version's model card (intended_use, limitations, evaluation, fairness)."""

    def model_card(self, model: str, version: str) -> dict[str, Any]:
        """A version's model card; {} when none was set."""
