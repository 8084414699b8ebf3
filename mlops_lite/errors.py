"""The one error tree of mlops-lite.

    MlopsLiteError
     ├── NotFound            (also LookupError)      -> HTTP 404
     ├── Conflict                                   -> HTTP 409
     ├── InvalidInput        (also ValueError)       -> HTTP 422
     ├── Unauthenticated                            -> HTTP 401
     ├── PermissionDenied    (also PermissionError)  -> HTTP 403
     ├── PolicyViolation                            -> HTTP 412, failed gates in the body
     ├── BackendUnavailable                         -> HTTP 503
     │    └── StoreLocked    another process owns the embedded stores
     ├── MissingDependency   (also ImportError)      an optional extra is not installed
     └── IntegrityError                             a stored object or chain does not verify

Foreign exceptions (duckdb, sqlalchemy, onnxruntime, prefect) are translated into
this tree at one boundary per backend and chained with ``from``.
"""

from __future__ import annotations

from typing import Any


class MlopsLiteError(Exception):
    """Base of every error mlops-lite raises on purpose."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the server answers with: a machine code and a sentence."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return body


class NotFound(MlopsLiteError, LookupError):
    code = "not_found"
    http_status = 404


class Conflict(MlopsLiteError):
    code = "conflict"
    http_status = 409


class InvalidInput(MlopsLiteError, ValueError):
    """Bad input: ``field`` names where, ``expected`` says what was wanted."""

    code = "invalid_input"
    http_status = 422

    def __init__(self, message: str, *, field: str | None = None, expected: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        merged = dict(details or {})
        if field is not None:
            merged["field"] = field
        if expected is not None:
            merged["expected"] = expected
        super().__init__(message, details=merged)
        self.field = field
        self.expected = expected


class Unauthenticated(MlopsLiteError):
    code = "unauthenticated"
    http_status = 401


class PermissionDenied(MlopsLiteError, PermissionError):
    code = "permission_denied"
    http_status = 403


class PolicyViolation(MlopsLiteError):
    """A gate failed; ``details['gates']`` lists every gate with its result."""

    code = "policy_violation"
    http_status = 412


class BackendUnavailable(MlopsLiteError):
    code = "backend_unavailable"
    http_status = 503


class StoreLocked(BackendUnavailable):
    """Another process (normally the daemon) owns the embedded stores."""

    code = "store_locked"

    def __init__(self, message: str, *, pid: int | None = None, url: str | None = None) -> None:
        details: dict[str, Any] = {}
        if pid is not None:
            details["pid"] = pid
        if url is not None:
            details["url"] = url
        super().__init__(message, details=details)
        self.pid = pid
        self.url = url


class MissingDependency(MlopsLiteError, ImportError):
    code = "missing_dependency"
    http_status = 501


class IntegrityError(MlopsLiteError):
    code = "integrity_error"
    http_status = 500
