"""mlops-lite: versioned data, tracked training, a governed registry and ONNX serving
on one machine. ``connect()`` is the one entry; everything else hangs off the Platform.

The public names load on first use (PEP 562): importing ``mlops_lite`` or one of its
light modules (the CLI's ``--help``, the errors, the records) does not pull in the
stores, SQLAlchemy, pyarrow or onnxruntime."""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from mlops_lite.config import Settings, load_settings
    from mlops_lite.connection import connect
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
    from mlops_lite.platform import Platform
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

_SOURCES = {
    "mlops_lite.config": ("Settings", "load_settings"),
    "mlops_lite.errors": ("BackendUnavailable", "Conflict", "IntegrityError", "InvalidInput", "MissingDependency",
                          "MlopsLiteError", "NotFound", "PermissionDenied", "PolicyViolation", "StoreLocked",
                          "Unauthenticated"),
    "mlops_lite.connection": ("connect",),
    "mlops_lite.platform": ("Platform",),
    "mlops_lite.records": ("AliasEventRecord", "ApprovalRequest", "ApprovalVote", "AuditRecord", "CommitRecord",
                           "DeploymentRecord", "GateResult", "Identity", "Lineage", "ModelRecord",
                           "ModelVersionRecord", "PolicyDecision", "Prediction", "RepositoryRecord", "RunRecord",
                           "VersionComparison"),
    "mlops_lite.training": ("TrainingSpec",),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str) -> _typing.Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mlops_lite' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
