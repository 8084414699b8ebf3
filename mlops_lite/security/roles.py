"""Roles, ordered: each holds every permission of the ones before it, and grants that
add a role on some models or data repositories.

``predictor`` is the narrowest: it may call predict (and health) and nothing else, so
a serving client or replica holding one cannot read data or the registry."""

from __future__ import annotations

from mlops_lite.errors import InvalidInput, PermissionDenied
from mlops_lite.records import Grant, Identity

ROLES: tuple[str, ...] = ("predictor", "viewer", "operator", "approver", "admin")


def role_rank(role: str) -> int:
    try:
        return ROLES.index(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}", field="role", expected=" | ".join(ROLES)) from None


def effective_role(identity: Identity, *, model: str | None = None, repository: str | None = None) -> str:
    """The highest of the global role and every grant covering ``model`` or ``repository``."""
    best = identity.role
    for grant in identity.grants:
        if grant.covers(model=model, repository=repository) and role_rank(grant.role) > role_rank(best):
            best = grant.role
    return best


def highest_role(identity: Identity) -> str:
    """The highest role the identity holds anywhere (its role or any grant's)."""
    return max((identity.role, *(g.role for g in identity.grants)), key=role_rank)


def require(identity: Identity, needed: str, *, model: str | None = None, repository: str | None = None) -> None:
    """Raise PermissionDenied unless ``identity`` holds ``needed`` or a higher role, globally
    or through a grant on ``model`` / ``repository``."""
    held = effective_role(identity, model=model, repository=repository)
    if role_rank(held) >= role_rank(needed):
        return
    where = f" on model {model!r}" if model is not None else f" on repository {repository!r}" if repository else ""
    raise PermissionDenied(
        f"{identity.name} has role {held!r}{where}; this needs {needed!r} or higher",
        details={"needed": needed, "role": held, **({"model": model} if model is not None else {}),
                 **({"repository": repository} if repository is not None else {})},
    )


def parse_grant(text: str) -> Grant:
    """``ROLE:model:GLOB`` or ``ROLE:repo:GLOB``, as the CLI and the toml take a grant."""
    parts = text.split(":", 2)
    if len(parts) != 3 or parts[1] not in ("model", "repo", "repository") or not parts[2]:
        raise InvalidInput(f"a grant is ROLE:model:GLOB or ROLE:repo:GLOB, got {text!r}", field="grant",
                           expected="ROLE:model:GLOB | ROLE:repo:GLOB")
    role_rank(parts[0])
    if parts[1] == "model":
        return Grant(role=parts[0], models=parts[2])
    return Grant(role=parts[0], repositories=parts[2])
