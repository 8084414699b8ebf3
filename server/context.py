"""What every route handler reads from a request: the platform the app serves, and who
is asking (the bearer token's identity, as the audit chain names it)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from mlops_lite import Platform


def platform(request: Request[Any, Any, Any]) -> Platform:
    served: Platform = request.app.state.platform
    return served


def actor(request: Request[Any, Any, Any]) -> str:
    return f"token:{request.state.identity.name}"
