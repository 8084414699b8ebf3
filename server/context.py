"""What every route handler reads from a request: the platform the app serves, and who
is asking (the authenticated identity, and the stable principal the audit chain names)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from mlops_lite import Platform
from mlops_lite.records import Identity


def platform(request: Request[Any, Any, Any]) -> Platform:
    served: Platform = request.app.state.platform
    return served


def identity(request: Request[Any, Any, Any]) -> Identity:
    who: Identity = request.state.identity
    return who


def actor(request: Request[Any, Any, Any]) -> str:
    """``token:<name>`` for a local token, ``oidc:<issuer>#<subject>`` for a federated one."""
    return identity(request).principal
