"""Roles, ordered: each holds every permission of the ones before it."""

from __future__ import annotations

from mlops_lite.errors import InvalidInput, PermissionDenied
from mlops_lite.records import Identity

ROLES: tuple[str, ...] = ("viewer", "operator", "approver", "admin")


def role_rank(role: str) -> int:
    try:
        return ROLES.index(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}", field="role", expected=" | ".join(ROLES)) from None


def require(identity: Identity, needed: str) -> None:
    """Raise PermissionDenied unless ``identity`` holds ``needed`` or a higher role."""
    if role_rank(identity.role) < role_rank(needed):
        raise PermissionDenied(
            f"{identity.name} has role {identity.role!r}; this needs {needed!r} or higher",
            details={"needed": needed, "role": identity.role},
        )
