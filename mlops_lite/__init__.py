"""mlops-lite: versioned data, tracked training, a governed registry and ONNX serving
on one machine. ``connect()`` is the one entry; everything else hangs off the Platform."""

from mlops_lite.config import Settings, load_settings
from mlops_lite.errors import (
    BackendUnavailable,
    Conflict,
    IntegrityError,
    InvalidInput,
    MissingDependency,
    MlopsLiteError,
    NotFound,
    PermissionDenied,
    PolicyViolation,
    StoreLocked,
    Unauthenticated,
)
from mlops_lite.platform import Platform, connect
from mlops_lite.records import (
    AliasEventRecord,
    ApprovalRequest,
    ApprovalVote,
    AuditRecord,
    CommitRecord,
    DeploymentRecord,
    GateResult,
    Identity,
    Lineage,
    ModelRecord,
    ModelVersionRecord,
    PolicyDecision,
    Prediction,
    RepositoryRecord,
    RunRecord,
    VersionComparison,
)
from mlops_lite.training import TrainingSpec

__version__ = "0.1.0"

__all__ = [
    "AliasEventRecord",
    "ApprovalRequest",
    "ApprovalVote",
    "AuditRecord",
    "BackendUnavailable",
    "CommitRecord",
    "Conflict",
    "DeploymentRecord",
    "GateResult",
    "Identity",
    "IntegrityError",
    "InvalidInput",
    "Lineage",
    "MissingDependency",
    "MlopsLiteError",
    "ModelRecord",
    "ModelVersionRecord",
    "NotFound",
    "PermissionDenied",
    "Platform",
    "PolicyDecision",
    "PolicyViolation",
    "Prediction",
    "RepositoryRecord",
    "RunRecord",
    "Settings",
    "StoreLocked",
    "TrainingSpec",
    "Unauthenticated",
    "VersionComparison",
    "connect",
    "load_settings",
]
