"""Security: identities, roles, tokens and the audit chain."""

from mlops_lite.security.audit import AuditLog
from mlops_lite.security.roles import ROLES, require, role_rank
from mlops_lite.security.tokens import Tokens

__all__ = ["ROLES", "AuditLog", "Tokens", "require", "role_rank"]
