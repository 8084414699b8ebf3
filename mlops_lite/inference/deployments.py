"""Deployments: the control plane of serving.

A deployment is a name with a strategy over one or two model versions:

- ``single``: the primary answers everything;
- ``canary``: the candidate answers a share of requests (``weight``), sticky by an
  optional request key;
- ``blue_green``: the primary is the live slot, the candidate the standby one;
  ``switch`` swaps them at once, and again to switch back;
- ``shadow``: the primary answers; the candidate gets a mirror of the traffic off
  the request path, and both answers are logged under the same request id.

Every change is a new revision, stored whole and audited; ``rollback`` restores an
earlier revision as a new one. A version reaches a slot that answers requests
(deploy, canary, promote, switch) only through the policy gates. Sessions are
loaded and warmed in the ``Router`` (the data plane) before the change commits, and
the router is told after, so a change that fails its gates or its load leaves the
old route serving.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from sqlmodel import col, select

from mlops_lite.clock import utcnow
from mlops_lite.errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from mlops_lite.inference.pipeline import PredictionPipeline, PredictionRecorder
from mlops_lite.inference.routing import Route, Router, ServingStats
from mlops_lite.inference.session import choose_providers
from mlops_lite.metadata.audit import AuditTrail
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import Deployment, DeploymentRevision
from mlops_lite.records import (
    DeploymentLineage,
    DeploymentRecord,
    DeploymentRevisionRecord,
    GateResult,
    ModelVersionRecord,
    Prediction,
)

DEPLOYMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
STRATEGIES = ("single", "canary", "blue_green", "shadow")
_STATE = ("strategy", "model", "version", "digest", "candidate_model", "candidate_version", "candidate_digest",
          "weight", "live_slot")


class ModelVersions(Protocol):
    """What deployments read of the registry (``platform.registry``)."""

    def get_version(self, model: str, version: str) -> ModelVersionRecord: ...

    def artifact_bytes(self, digest: str) -> bytes: ...


class ReleaseGates(Protocol):
    """The gates a version passes before it answers requests (``platform.policy``)."""

    def enforce(self, version: ModelVersionRecord) -> builtins.list[GateResult]: ...


# (deployment, moment) -> what served it then and what produced it. It reads the registry,
# runs, data, policy and audit, so the Platform, which holds them all, provides it.
LineageResolver = Callable[[str, datetime | str | None], DeploymentLineage]

# (version, deployment, action, actor=...) -> None, or PolicyViolation naming the residency rule that
# refuses serving (and logging the features of) a model of that data in this installation's region.
Placement = Callable[..., None]


class Deployments:
    """The ``platform.deployments`` facet.

    ``pipeline`` is the request path the servers call (it logs and counts what it
    answers into ``recorder``); ``predict`` answers in-process and records nothing."""

    def __init__(self, store: MetadataStore, registry: ModelVersions, policy: ReleaseGates, audit: AuditTrail,
                 actor: str, *, execution_provider: str, intra_op_threads: int, max_batch_size: int,
                 batch_rows: int = 0, batch_wait_ms: float = 0.0, recorder: PredictionRecorder | None = None,
                 lineage: LineageResolver | None = None, placement: Placement | None = None) -> None:
        """``recorder`` takes the served requests' outcomes and the shadow answers (the
        monitoring facet); ``lineage`` answers ``lineage()``."""
        self._store = store
        self._registry = registry
        self._policy = policy
        self._audit = audit
        self._actor = actor
        self._lineage = lineage
        self._placement = placement
        self._router = Router(registry.artifact_bytes, providers=choose_providers(execution_provider),
                              intra_op_threads=intra_op_threads, max_batch_size=max_batch_size,
                              batch_rows=batch_rows, batch_wait_ms=batch_wait_ms,
                              on_shadow=recorder.record if recorder is not None else None)
        self.pipeline = PredictionPipeline(self._router, self.route, recorder)

    # ---- changes ---------------------------------------------------------------------
    def deploy(self, name: str, model: str, version: str, *, actor: str | None = None,
               reason: str = "") -> DeploymentRecord:
        """Point ``name`` at ``model@version`` alone (strategy single), through the gates."""
        _check_name(name)
        target = self._registry.get_version(model, version)
        self._place(target, name, "deploy", actor)
        gates = self._policy.enforce(target)
        return self._change(name, "deploy", actor, reason, gates, required=False, state={
            "strategy": "single", "model": model, "version": version, "digest": target.digest,
            "candidate_model": None, "candidate_version": None, "candidate_digest": None, "weight": None,
            "live_slot": None})

    def canary(self, name: str, model: str, version: str, *, weight: float = 0.1, actor: str | None = None,
               reason: str = "") -> DeploymentRecord:
        """Send ``weight`` (0 < w < 1) of ``name``'s traffic to ``model@version``, through the gates.
        Calling it again with the same version changes the weight."""
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < 1:
            raise InvalidInput(f"weight {weight!r} is out of range", field="weight",
                               expected="a share of traffic between 0 and 1, exclusive")
        target = self._registry.get_version(model, version)
        self._place(target, name, "canary", actor)
        gates = self._policy.enforce(target)
        return self._change(name, "canary", actor, reason, gates, candidate=target, state={
            "strategy": "canary", "weight": float(weight), "live_slot": None})

    def shadow(self, name: str, model: str, version: str, *, actor: str | None = None,
               reason: str = "") -> DeploymentRecord:
        """Mirror ``name``'s traffic to ``model@version``; it answers nobody, so no gates."""
        target = self._registry.get_version(model, version)
        self._place(target, name, "shadow", actor)
        return self._change(name, "shadow", actor, reason, [], candidate=target, state={
            "strategy": "shadow", "weight": None, "live_slot": None})

    def stage(self, name: str, model: str, version: str, *, actor: str | None = None,
              reason: str = "") -> DeploymentRecord:
        """Blue-green: load ``model@version`` into the standby slot (it answers nobody yet)."""
        target = self._registry.get_version(model, version)
        self._place(target, name, "stage", actor)
        current = self.get(name)
        return self._change(name, "stage", actor, reason, [], candidate=target, state={
            "strategy": "blue_green", "weight": None, "live_slot": current.live_slot or "blue"})

    def switch(self, name: str, *, actor: str | None = None, reason: str = "") -> DeploymentRecord:
        """Blue-green: the standby slot goes live and the live one stands by, in one step.
        A version that never answered for this deployment passes the gates first."""
        current = self.get(name)
        if current.strategy != "blue_green" or not current.candidate_digest:
            raise Conflict(f"deployment {name!r} has no standby slot to switch to (strategy {current.strategy}); "
                           f"stage a version first", details={"strategy": current.strategy})
        target = self._registry.get_version(current.candidate_model or current.model, current.candidate_version or "")
        self._place(target, name, "switch", actor)
        gates = [] if self._has_served(name, target.digest) else self._policy.enforce(target)
        slot = "green" if (current.live_slot or "blue") == "blue" else "blue"
        return self._change(name, "switch", actor, reason, gates, state={
            "strategy": "blue_green", "model": current.candidate_model, "version": current.candidate_version,
            "digest": current.candidate_digest, "candidate_model": current.model,
            "candidate_version": current.version, "candidate_digest": current.digest, "live_slot": slot})

    def promote(self, name: str, *, actor: str | None = None, reason: str = "") -> DeploymentRecord:
        """The candidate (canary, shadow or standby) becomes the only version, through the gates."""
        current = self.get(name)
        if not current.candidate_digest:
            raise Conflict(f"deployment {name!r} has no candidate to promote", details={"strategy": current.strategy})
        target = self._registry.get_version(current.candidate_model or current.model, current.candidate_version or "")
        self._place(target, name, "promote", actor)
        gates = self._policy.enforce(target)
        return self._change(name, "promote", actor, reason, gates, state={
            "strategy": "single", "model": target.model, "version": target.version, "digest": target.digest,
            "candidate_model": None, "candidate_version": None, "candidate_digest": None, "weight": None,
            "live_slot": None})

    def rollback(self, name: str, *, to_revision: int | None = None, actor: str | None = None,
                 reason: str = "") -> DeploymentRecord:
        """Restore an earlier revision (the one before the current by default) as a new
        revision. It served before, so it is not gated again."""
        current = self.get(name)
        wanted = current.revision - 1 if to_revision is None else to_revision
        if isinstance(wanted, bool) or not isinstance(wanted, int) or not 1 <= wanted < current.revision:
            raise InvalidInput(f"cannot roll back {name!r} to revision {wanted!r}", field="to_revision",
                               expected=f"a revision from 1 to {current.revision - 1}")
        with self._store.session() as db:
            row = db.get(DeploymentRevision, (name, wanted))
        if row is None:
            raise NotFound(f"deployment {name!r} has no revision {wanted}")
        state = {key: getattr(row, key) for key in _STATE}
        return self._change(name, "rollback", actor, reason or f"roll back to revision {wanted}", [],
                            state=state, required=True)

    def _place(self, target: ModelVersionRecord, name: str, action: str, actor: str | None) -> None:
        """Refuse serving ``target`` here when residency does not allow its data in this region."""
        if self._placement is not None:
            self._placement(target, name, f"deployment.{action}", actor=actor or self._actor)

    # ---- reads -----------------------------------------------------------------------
    def get(self, name: str) -> DeploymentRecord:
        with self._store.session() as db:
            row = db.get(Deployment, name)
        if row is None:
            raise NotFound(f"deployment {name!r} does not exist")
        return _record(row)

    def list(self) -> list[DeploymentRecord]:
        with self._store.session() as db:
            rows = db.exec(select(Deployment).order_by(Deployment.name)).all()
        return [_record(row) for row in rows]

    def revisions(self, name: str) -> builtins.list[DeploymentRevisionRecord]:
        """Every revision of ``name``, newest first."""
        self.get(name)
        with self._store.session() as db:
            rows = db.exec(select(DeploymentRevision).where(col(DeploymentRevision.name) == name)
                           .order_by(col(DeploymentRevision.revision).desc())).all()
        return [DeploymentRevisionRecord(**{k: getattr(r, k) for k in DeploymentRevisionRecord.__dataclass_fields__})
                for r in rows]

    def lineage(self, name: str, at: datetime | str | None = None) -> DeploymentLineage:
        """What served ``name`` at ``at`` (an aware datetime or ISO time; default now) and
        what produced it: the revision in force, each slot's version, run, data commits,
        gates, decisions and approvals, and the revisions up to then (see lineage.py)."""
        if self._lineage is None:
            raise BackendUnavailable("deployment lineage needs the other facets; this deployments facet was "
                                     "built without them")
        return self._lineage(name, at)

    def signatures(self, record: DeploymentRecord) -> dict[str, dict[str, Any]]:
        """The signatures of the versions ``record`` serves, by digest (what a router needs)."""
        out = {record.digest: self._registry.get_version(record.model, record.version).signature}
        if record.candidate_digest:
            version = self._registry.get_version(record.candidate_model or record.model,
                                                 record.candidate_version or "")
            out[version.digest] = version.signature
        return out

    @property
    def providers(self) -> builtins.list[str]:
        return list(self._router.providers)

    # ---- the request path (no metadata reads once loaded) -------------------------------
    def predict(self, name: str, instances: Any, *, key: str | None = None) -> Prediction:
        """Answer ``instances`` from the slot the strategy picks (sticky by ``key``), and log
        the rows and answers as the HTTP routes do (the same pipeline), so monitoring sees
        a script's traffic as it sees a client's."""
        if isinstance(instances, list) and all(isinstance(row, dict) for row in instances):
            return self.pipeline.predict(name, instances, key=key)
        self.route(name)
        return self._router.predict(name, instances, key=key)

    def score(self, model: str, version: str, instances: builtins.list[dict[str, Any]]
              ) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities of ``model@version`` (deployed or not) for ``instances``,
        through the session that serves it (loaded once per digest), in batches the session
        accepts. Nothing is logged: this is evaluation, not traffic."""
        record = self._registry.get_version(model, version)
        session = self._router.load(model, version, record.digest, {record.digest: record.signature}).session
        step = session.max_batch_size
        parts = [session.predict(session.build_feed(instances[i:i + step])) for i in range(0, len(instances), step)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([np.asarray(p[1]) for p in parts])

    def route(self, name: str) -> Route:
        """The loaded route of ``name`` (its record, slots and sessions), loading it on first use."""
        route = self._router.route(name)
        if route is None:
            record = self.get(name)
            route = self._router.apply(record, self.signatures(record))
        return route

    def load_all(self) -> builtins.list[str]:
        """Load every deployment's sessions (readiness); answers the names loaded."""
        return [self.route(record.name).record.name for record in self.list()]

    def serving_stats(self) -> ServingStats:
        """What is loaded and served now, for metrics (routes, load times, micro-batches, shadows)."""
        return self._router.stats()

    def wait_for_shadows(self, timeout: float = 30.0) -> bool:
        """Wait until the shadow answers mirrored so far are logged; whether they were in time."""
        return self._router.wait_for_shadows(timeout)

    def close(self) -> None:
        self._router.close()

    # ---- internals -----------------------------------------------------------------------
    def _has_served(self, name: str, digest: str) -> bool:
        with self._store.session() as db:
            return db.exec(select(DeploymentRevision.revision).where(
                DeploymentRevision.name == name, DeploymentRevision.digest == digest)).first() is not None

    def _change(self, name: str, action: str, actor: str | None, reason: str, gates: builtins.list[Any], *,
                state: dict[str, Any], candidate: ModelVersionRecord | None = None,
                required: bool = True) -> DeploymentRecord:
        """Write ``state`` as the next revision of ``name`` (the row must exist unless this
        is a first deploy). The router loads and warms what the new state needs before
        anything commits, so a bad model file leaves the old route serving; the write is
        a compare-and-swap on the revision, so two racing changes cannot both land."""
        _check_name(name)
        actor = actor or self._actor
        if candidate is not None:
            state = {**state, "candidate_model": candidate.model, "candidate_version": candidate.version,
                     "candidate_digest": candidate.digest}
        with self._store.session() as db:
            row = db.get(Deployment, name)
        if row is None and (required or action != "deploy"):
            raise NotFound(f"deployment {name!r} does not exist; deploy a version to it first")
        before = {} if row is None else {k: getattr(row, k) for k in (*_STATE, "revision")}
        merged: dict[str, Any] = {k: state[k] if k in state else before.get(k) for k in _STATE}
        if merged["candidate_digest"] and merged["candidate_digest"] == merged["digest"]:
            raise Conflict(f"{merged['candidate_model']}@{merged['candidate_version']} already is the primary "
                           f"of {name!r}", details={"digest": merged["digest"]})
        revision = (row.revision + 1) if row is not None else 1
        record = DeploymentRecord(name=name, revision=revision, updated_at=utcnow(), updated_by=actor, **merged)
        signatures = self.signatures(record)
        self._router.load(record.model, record.version, record.digest, signatures)
        if record.candidate_digest:
            self._router.load(record.candidate_model or record.model, record.candidate_version or "",
                             record.candidate_digest, signatures)
        with self._store.session() as db:
            row = db.get(Deployment, name)
            if (row.revision if row is not None else 0) != revision - 1:
                raise Conflict(f"deployment {name!r} changed meanwhile (now revision {row.revision if row else 0}); "
                               f"nothing was written, try again", details={"expected_revision": revision - 1})
            if row is None:
                row = Deployment(name=name, revision=revision, updated_at=record.updated_at, updated_by=actor,
                                 **merged)
            else:
                for key in _STATE:
                    setattr(row, key, merged[key])
                row.revision, row.updated_at, row.updated_by = revision, record.updated_at, actor
            db.add(row)
            db.add(DeploymentRevision(name=name, revision=revision, action=action, changed_at=record.updated_at,
                                      changed_by=actor, reason=reason, **merged))
            self._audit.append(db, actor=actor, action=f"deployment.{action}", object=f"deployment:{name}",
                               before=before, after={**merged, "revision": revision, "reason": reason,
                                                     "gates": [g.__dict__ for g in gates]})
        self._router.apply(record, signatures)
        return record


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not DEPLOYMENT_NAME.match(name):
        raise InvalidInput(f"bad deployment name {name!r}", field="name",
                           expected="1-63 characters: lowercase letters, digits, '_' and '-'")


def _record(row: Deployment) -> DeploymentRecord:
    return DeploymentRecord(name=row.name, model=row.model, version=row.version, digest=row.digest,
                            strategy=row.strategy, revision=row.revision, updated_at=row.updated_at,
                            updated_by=row.updated_by, candidate_model=row.candidate_model,
                            candidate_version=row.candidate_version, candidate_digest=row.candidate_digest,
                            weight=row.weight, live_slot=row.live_slot)
