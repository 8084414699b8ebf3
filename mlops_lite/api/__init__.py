"""The Platform API, written down: one Protocol per facet, and ``PlatformAPI``.

``mlops_lite.connect()`` returns a ``PlatformAPI``: the local ``Platform`` (the embedded
stores in this process) or the ``RemotePlatform`` (HTTP to a running ``mlops-lite up``).
Both implement every verb declared here with the same signatures, records and errors;
mypy (strict, in CI) checks that they conform (``mlops_lite/api/conformance.py``), and
``tests/contract/`` asks both the same questions.

A verb is public when a user's script, a flow, the TUI or the CLI calls it. Seams the
daemon alone uses (writing the prediction log, authenticating a bearer token, closing
the stores) stay off the Protocols; each facet module lists them with why.

Facets declare their verbs without ``actor=``: over HTTP the actor is the caller's
identity (its token); in-process it is the platform's actor.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol, Self

from mlops_lite.api.alerts import AlertsAPI
from mlops_lite.api.audit import AuditAPI
from mlops_lite.api.compliance import ComplianceAPI
from mlops_lite.api.data import DataAPI
from mlops_lite.api.deployments import DeploymentsAPI
from mlops_lite.api.features import FeaturesAPI
from mlops_lite.api.flows import FlowsAPI
from mlops_lite.api.keys import KeysAPI
from mlops_lite.api.loop import LoopAPI
from mlops_lite.api.monitoring import MonitoringAPI
from mlops_lite.api.policy import PolicyAPI
from mlops_lite.api.privacy import PrivacyAPI
from mlops_lite.api.registry import RegistryAPI
from mlops_lite.api.tokens import TokensAPI
from mlops_lite.api.tracking import TrackingAPI
from mlops_lite.api.training import TrainingAPI
from mlops_lite.records import DeploymentRecord, Identity, Prediction

__all__ = [
    "AlertsAPI",
    "AuditAPI",
    "ComplianceAPI",
    "DataAPI",
    "DeploymentsAPI",
    "FeaturesAPI",
    "FlowsAPI",
    "LoopAPI",
    "MonitoringAPI",
    "PlatformAPI",
    "PolicyAPI",
    "PrivacyAPI",
    "RegistryAPI",
    "ServingAPI",
    "ServingDeploymentsAPI",
    "TokensAPI",
    "TrackingAPI",
    "TrainingAPI",
]


class PlatformAPI(Protocol):
    """The whole platform, local or remote. Facets are read-only attributes."""

    @property
    def remote(self) -> bool:
        """True over HTTP."""

    @property
    def data(self) -> DataAPI: ...

    @property
    def tracking(self) -> TrackingAPI: ...

    @property
    def training(self) -> TrainingAPI: ...

    @property
    def registry(self) -> RegistryAPI: ...

    @property
    def policy(self) -> PolicyAPI: ...

    @property
    def keys(self) -> KeysAPI: ...

    @property
    def compliance(self) -> ComplianceAPI: ...

    @property
    def deployments(self) -> DeploymentsAPI: ...

    @property
    def monitoring(self) -> MonitoringAPI: ...

    @property
    def alerts(self) -> AlertsAPI: ...

    @property
    def features(self) -> FeaturesAPI:
        """The feature store: definitions, training sets, the online store, skew."""

    @property
    def loop(self) -> LoopAPI: ...

    @property
    def flows(self) -> FlowsAPI:
        """The flow runs of the Prefect server beside ``up``, and their logs."""

    @property
    def audit(self) -> AuditAPI: ...

    @property
    def tokens(self) -> TokensAPI: ...

    @property
    def privacy(self) -> PrivacyAPI: ...

    def summary(self) -> dict[str, Any]:
        """What the platform holds, in counts."""

    def whoami(self) -> Identity:
        """Who this platform acts as: in-process the owner of the stores (admin); over HTTP
        the token's identity (``GET /v1/whoami``), so a client can hide what its role may
        not do (the server still enforces every rule)."""

    def close(self) -> None:
        """Release the stores (local) or the connection (remote)."""

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class ServingDeploymentsAPI(Protocol):
    """The part of ``DeploymentsAPI`` a serving worker answers."""

    def list(self) -> list[DeploymentRecord]: ...

    def predict(self, name: str, instances: Any, *, key: str | None = None) -> Prediction: ...


class ServingAPI(Protocol):
    """What a stateless serving worker (``mlops-lite serve --workers N``, server/serving.py)
    offers: a subset of ``PlatformAPI`` (conformance.py proves every PlatformAPI is one)."""

    @property
    def deployments(self) -> ServingDeploymentsAPI: ...

    def summary(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
