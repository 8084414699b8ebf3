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
    AuditRecord,
    CommitRecord,
    DeploymentRecord,
    GateResult,
    Identity,
    ModelRecord,
    ModelVersionRecord,
    Prediction,
    RepositoryRecord,
    RunRecord,
)
from mlops_lite.training import TrainingSpec

__version__ = "0.1.0"

__all__ = [
    "AuditRecord",
    "BackendUnavailable",
    "CommitRecord",
    "Conflict",
    "DeploymentRecord",
    "GateResult",
    "Identity",
    "IntegrityError",
    "InvalidInput",
    "MissingDependency",
    "MlopsLiteError",
    "ModelRecord",
    "ModelVersionRecord",
    "NotFound",
    "PermissionDenied",
    "Platform",
    "PolicyViolation",
    "Prediction",
    "RepositoryRecord",
    "RunRecord",
    "Settings",
    "StoreLocked",
    "TrainingSpec",
    "Unauthenticated",
    "connect",
    "load_settings",
]
