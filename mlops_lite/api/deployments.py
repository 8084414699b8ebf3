"""``platform.deployments``: named endpoints, their releases (canary, shadow, blue-green),
predictions and lineage."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any, Protocol

from mlops_lite.records import DeploymentLineage, DeploymentRecord, DeploymentRevisionRecord, Prediction

# Seams the serving process alone uses, off the Protocol: ``pipeline`` (the request path
# every protocol shares: it answers, logs and counts), ``route`` (a deployment's slots and
# sessions, for OIP metadata), ``serving_stats`` (for /metrics), ``signatures``,
# ``load_all`` (warming the sessions at start), ``score`` (the release loop's evaluation),
# ``wait_for_shadows`` and ``close``.


class DeploymentsAPI(Protocol):
    def list(self) -> list[DeploymentRecord]: ...

    def get(self, name: str) -> DeploymentRecord: ...

    def revisions(self, name: str) -> builtins.list[DeploymentRevisionRecord]: ...

    def deploy(self, name: str, model: str, version: str, *, reason: str = "") -> DeploymentRecord:
        """Serve ``model@version`` as the whole of ``name`` (a new revision)."""

    def canary(self, name: str, model: str, version: str, *, weight: float = 0.1,
               reason: str = "") -> DeploymentRecord: ...

    def shadow(self, name: str, model: str, version: str, *, reason: str = "") -> DeploymentRecord: ...

    def stage(self, name: str, model: str, version: str, *, reason: str = "") -> DeploymentRecord: ...

    def switch(self, name: str, *, reason: str = "") -> DeploymentRecord: ...

    def promote(self, name: str, *, reason: str = "") -> DeploymentRecord: ...

    def rollback(self, name: str, *, to_revision: int | None = None, reason: str = "") -> DeploymentRecord: ...

    def predict(self, name: str, instances: Any, *, key: str | None = None) -> Prediction: ...

    def lineage(self, name: str, at: datetime | str | None = None) -> DeploymentLineage: ...
