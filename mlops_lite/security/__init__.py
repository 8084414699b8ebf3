"""Security: identities, roles, tokens, TLS material and the audit chain.

The names load on first use: a client that only needs ``security.tls`` (its SSL
contexts) does not load the stores that the audit chain and tokens sit on."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_lite.security.audit import AuditLog
    from mlops_lite.security.roles import ROLES, require, role_rank
    from mlops_lite.security.tokens import Tokens

__all__ = ["ROLES", "AuditLog", "Tokens", "require", "role_rank"]

_WHERE = {"AuditLog": "audit", "ROLES": "roles", "require": "roles", "role_rank": "roles", "Tokens": "tokens"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"mlops_lite.security.{_WHERE[name]}"), name)
