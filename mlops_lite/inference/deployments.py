"""Deployments: a name that serves one model version, changed only through the gates.

Sessions are cached by digest and deployments by name, so a predict call reads
no metadata once warm; a deploy loads and warms the new session before it
switches the name over.
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

from sqlmodel import select

from mlops_lite.clock import utcnow
from mlops_lite.errors import InvalidInput, NotFound
from mlops_lite.inference.session import ModelSession, choose_providers
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import Deployment
from mlops_lite.policy import Policy
from mlops_lite.records import DeploymentRecord, ModelVersionRecord, Prediction
from mlops_lite.registry import Registry
from mlops_lite.security.audit import AuditLog

DEPLOYMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Deployments:
    """The ``platform.deployments`` facet."""

    def __init__(self, store: MetadataStore, registry: Registry, policy: Policy, audit: AuditLog,
                 actor: str, *, execution_provider: str, intra_op_threads: int, max_batch_size: int) -> None:
        self._store = store
        self._registry = registry
        self._policy = policy
        self._audit = audit
        self._actor = actor
        self._providers = choose_providers(execution_provider)
        self._threads = intra_op_threads
        self._max_batch = max_batch_size
        self._sessions: dict[str, ModelSession] = {}
        self._live: dict[str, tuple[DeploymentRecord, ModelSession]] = {}
        self._lock = threading.Lock()

    def deploy(self, name: str, model: str, version: str, *, actor: str | None = None) -> DeploymentRecord:
        """Point ``name`` at ``model@version`` after the policy gates pass."""
        if not DEPLOYMENT_NAME.match(name):
            raise InvalidInput(f"bad deployment name {name!r}", field="name",
                               expected="1-63 characters: lowercase letters, digits, '_' and '-'")
        target = self._registry.get_version(model, version)
        gates = self._policy.enforce(target)
        session = self._session_for(target)
        actor = actor or self._actor
        with self._store.session() as db:
            row = db.get(Deployment, name)
            before = {} if row is None else {"model": row.model, "version": row.version, "revision": row.revision}
            if row is None:
                row = Deployment(name=name, model=model, version=version, digest=target.digest,
                                 revision=1, updated_at=utcnow(), updated_by=actor)
            else:
                row.model, row.version, row.digest = model, version, target.digest
                row.revision += 1
                row.updated_at, row.updated_by = utcnow(), actor
            db.add(row)
            self._audit.append(db, actor=actor, action="deployment.update", object=f"deployment:{name}",
                               before=before,
                               after={"model": model, "version": version, "digest": target.digest,
                                      "revision": row.revision, "gates": [g.__dict__ for g in gates]})
        record = _record(row)
        with self._lock:
            self._live[name] = (record, session)
        return record

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

    @property
    def providers(self) -> list[str]:
        return list(self._providers)

    def predict(self, name: str, instances: Any) -> Prediction:
        record, session = self._resolve(name)
        feed = session.build_feed(instances)
        labels, probabilities = session.predict(feed)
        return Prediction(
            request_id=uuid.uuid4().hex, deployment=name, model=record.model, version=record.version,
            digest=record.digest, predictions=tuple(label.item() for label in labels),
            probabilities=tuple(tuple(float(p) for p in row) for row in probabilities),
            classes=session.classes)

    def _resolve(self, name: str) -> tuple[DeploymentRecord, ModelSession]:
        live = self._live.get(name)
        if live is not None:
            return live
        record = self.get(name)
        session = self._session_for(self._registry.get_version(record.model, record.version))
        with self._lock:
            self._live[name] = (record, session)
        return record, session

    def _session_for(self, version: ModelVersionRecord) -> ModelSession:
        session = self._sessions.get(version.digest)
        if session is None:
            session = ModelSession(self._registry.model_bytes(version.model, version.version),
                                   version.signature, providers=self._providers,
                                   intra_op_threads=self._threads, max_batch_size=self._max_batch)
            with self._lock:
                self._sessions[version.digest] = session
        return session


def _record(row: Deployment) -> DeploymentRecord:
    return DeploymentRecord(name=row.name, model=row.model, version=row.version, digest=row.digest,
                            strategy=row.strategy, revision=row.revision, updated_at=row.updated_at,
                            updated_by=row.updated_by)
