"""The model registry: versions are immutable, addressed by their ONNX digest."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from types import EllipsisType
from typing import Any

from sqlmodel import select

from mlops_lite.clock import utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import Model, ModelVersion
from mlops_lite.objects import ObjectStore
from mlops_lite.records import AliasEventRecord, Lineage, ModelRecord, ModelVersionRecord, VersionComparison
from mlops_lite.registry.aliases import Aliases, AliasGuard
from mlops_lite.registry.aliases import version_record as _version_record
from mlops_lite.registry.semver import next_version, parse
from mlops_lite.tracking import Tracking
from mlops_lite.training import MODEL_ARTIFACT, SIGNATURE_ARTIFACT

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_model_name(name: str) -> str:
    if not MODEL_NAME.match(name):
        raise InvalidInput(f"bad model name {name!r}", field="model",
                           expected="1-63 characters: lowercase letters, digits, '_' and '-'")
    return name


class Registry:
    """The ``platform.registry`` facet: models, immutable versions, aliases with
    history, comparison, lineage and model cards.

    A version is immutable and addressed by its ONNX file's sha256 digest:
    registering a digest the model already has returns that version.

    Semantic versions (``MAJOR.MINOR.PATCH``; see ``registry/semver.py``):

    - the first version of a model is 1.0.0;
    - a changed input signature (feature names or types) bumps MAJOR (2.0.0);
    - otherwise, training on different data commits bumps MINOR (1.1.0);
    - anything else (same signature, same data: other params or algorithm) bumps PATCH (1.0.1);
    - an explicit ``version=`` is accepted when it is valid semver and greater than
      every existing version of the model; else InvalidInput.

    Aliases (``staging``, ``production``, any name matching ``^[a-z][a-z0-9_-]{0,62}$``)
    point at one version each and keep an append-only history of every move, rollback,
    override and deletion: who, when, from which version to which, and why
    (``alias_history``, ``alias_at``). Racing moves: one wins, the other gets Conflict.
    """

    def __init__(self, store: MetadataStore, objects: ObjectStore, tracking: Tracking,
                 audit: AuditTrail, actor: str, *, guard: Callable[[], AliasGuard] | None = None) -> None:
        """``guard`` provides the policy that decides moves of gated aliases (the policy is
        built on this registry, so it comes as a provider); without one, no alias is gated."""
        self._guard = guard
        self._store = store
        self._objects = objects
        self._tracking = tracking
        self._audit = audit
        self._actor = actor
        self._aliases = Aliases(store, audit, actor)

    def register_from_run(self, model: str, run_id: str, *, version: str | None = None,
                          description: str = "", actor: str | None = None) -> ModelVersionRecord:
        """Register the ONNX artifact of a finished run, with the run's lineage.

        Registering a digest the model already has returns that version unchanged.
        """
        check_model_name(model)
        run = self._tracking.get_run(run_id)
        if run.status != "finished":
            raise Conflict(f"run {run_id} is {run.status}; only finished runs can be registered")
        for artifact in (MODEL_ARTIFACT, SIGNATURE_ARTIFACT):
            if artifact not in run.artifacts:
                raise InvalidInput(f"run {run_id} has no {artifact}", field="run_id",
                                   expected="a training run that logged a model")
        digest = run.artifacts[MODEL_ARTIFACT]
        signature = json.loads(self._objects.get_bytes(run.artifacts[SIGNATURE_ARTIFACT]))
        size = self._objects.size(digest)
        actor = actor or self._actor
        with self._store.session() as session:
            same = session.exec(select(ModelVersion).where(
                ModelVersion.model == model, ModelVersion.digest == digest)).first()
            if same is not None:
                return _version_record(same)
            versions = session.exec(select(ModelVersion).where(ModelVersion.model == model)).all()
            latest = max(versions, key=lambda v: parse(v.version), default=None)
            proposed = next_version(
                latest.version if latest else None,
                signature_changed=latest is not None and latest.signature.get("inputs") != signature.get("inputs"),
                data_changed=latest is not None and sorted(latest.data_commits) != sorted(run.data_commits))
            if version is not None:
                if latest is not None and parse(version) <= parse(latest.version):
                    raise InvalidInput(f"version {version} is not greater than {latest.version}",
                                       field="version", expected=f"greater than {latest.version}")
                parse(version)
                proposed = version
            if session.get(Model, model) is None:
                session.add(Model(name=model, description=description, created_at=utcnow()))
                self._audit.append(session, actor=actor, action="model.create", object=f"model:{model}")
            row = ModelVersion(model=model, version=proposed, digest=digest, size=size, signature=signature,
                               run_id=run.id, data_commits=list(run.data_commits), params=dict(run.params),
                               metrics=dict(run.metrics), created_at=utcnow(), created_by=actor)
            session.add(row)
            self._audit.append(session, actor=actor, action="model.version.register",
                               object=f"model:{model}@{proposed}",
                               after={"digest": digest, "run_id": run.id, "data_commits": list(run.data_commits)})
        return _version_record(row)

    def get_version(self, model: str, version: str) -> ModelVersionRecord:
        with self._store.session() as session:
            row = session.get(ModelVersion, (model, version))
        if row is None:
            raise NotFound(f"model {model!r} has no version {version!r}")
        return _version_record(row)

    def latest_version(self, model: str) -> ModelVersionRecord:
        versions = self.list_versions(model)
        if not versions:
            raise NotFound(f"model {model!r} has no versions")
        return max(versions, key=lambda v: parse(v.version))

    def list_versions(self, model: str | None = None) -> list[ModelVersionRecord]:
        with self._store.session() as session:
            query = select(ModelVersion)
            if model is not None:
                query = query.where(ModelVersion.model == model)
            rows = session.exec(query).all()
        return sorted((_version_record(r) for r in rows), key=lambda v: (v.model, parse(v.version)))

    def list_models(self) -> list[ModelRecord]:
        with self._store.session() as session:
            models = session.exec(select(Model).order_by(Model.name)).all()
            versions = session.exec(select(ModelVersion.model, ModelVersion.version)).all()
        by_model: dict[str, list[str]] = {}
        for name, version in versions:
            by_model.setdefault(name, []).append(version)
        return [ModelRecord(name=m.name, description=m.description, created_at=m.created_at,
                            versions=tuple(sorted(by_model.get(m.name, []), key=parse)))
                for m in models]

    def artifact_bytes(self, digest: str) -> bytes:
        """An ONNX file by digest, verified against it (what a serving router loads)."""
        return self._objects.get_bytes(digest)

    def model_bytes(self, model: str, version: str) -> bytes:
        """The ONNX file of a version, verified against its digest."""
        return self._objects.get_bytes(self.get_version(model, version).digest)

    # ---- aliases, comparison, lineage, model cards (see aliases.py) ----------------

    def set_alias(self, model: str, alias: str, version: str, *, reason: str, actor: str | None = None,
                  expected: str | EllipsisType | None = ..., decision: str | None = None) -> ModelVersionRecord:
        """Point ``alias`` at ``version``, recorded with ``reason``. With ``expected`` (a
        version, or None for "unset") it moves only if the alias still points there, else
        Conflict.

        An alias the policy gates (``[aliases] gated``, default ``production``) moves only
        with a passing policy decision: ``decision`` names a stored one (passed, or an admin
        override: recorded as kind "override"); without it the policy decides now (stored,
        audited) and PolicyViolation, with every gate, refuses a failing move."""
        kind = "move"
        if self._guard is not None:
            kind = self._guard().authorize_move(model, alias, version, actor=actor or self._actor, decision=decision)
        return self._aliases.set_alias(model, alias, version, reason=reason, actor=actor, expected=expected,
                                       override=kind == "override")

    def get_alias(self, model: str, alias: str) -> ModelVersionRecord:
        """The version ``alias`` points to now; NotFound when it is not set."""
        return self._aliases.get_alias(model, alias)

    def aliases(self, model: str) -> dict[str, str]:
        """alias -> version for every alias of ``model`` that is set."""
        return self._aliases.aliases(model)

    def alias_at(self, model: str, alias: str, when: datetime) -> ModelVersionRecord | None:
        """The version ``alias`` pointed to at ``when``; None if it pointed nowhere then."""
        return self._aliases.alias_at(model, alias, when)

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEventRecord]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        return self._aliases.alias_history(model, alias)

    def rollback(self, model: str, alias: str, *, reason: str, actor: str | None = None) -> ModelVersionRecord:
        """Move ``alias`` back to the version it pointed to before its last move."""
        return self._aliases.rollback(model, alias, reason=reason, actor=actor)

    def delete_alias(self, model: str, alias: str, *, reason: str, actor: str | None = None,
                     expected: str | EllipsisType | None = ...) -> AliasEventRecord:
        """Unset ``alias``; its history stays."""
        return self._aliases.delete_alias(model, alias, reason=reason, actor=actor, expected=expected)

    def compare_versions(self, model: str, a: str, b: str) -> VersionComparison:
        """``b`` against ``a``: metric deltas (b - a), signature diff, data commits, params changed."""
        return self._aliases.compare_versions(model, a, b)

    def lineage(self, model: str, ref: str, *, at: datetime | None = None) -> Lineage:
        """Run, data commits, params, metrics, card, alias moves and audit events of
        ``model@ref`` (a version, or an alias resolved now or ``at`` a time)."""
        return self._aliases.lineage(model, ref, at=at)

    def set_model_card(self, model: str, version: str, card: dict[str, Any], *,
                       actor: str | None = None) -> dict[str, Any]:
        """Store a version's model card (intended_use, limitations, evaluation, fairness)."""
        return self._aliases.set_model_card(model, version, card, actor=actor)

    def model_card(self, model: str, version: str) -> dict[str, Any]:
        """A version's model card; {} when none was set."""
        return self._aliases.model_card(model, version)
