"""What a feature package needs of the audit chain, as an interface.

A change and its audit event commit together: the package appends the event in the
metadata transaction that makes the change. The Platform passes the chain it owns
(``mlops_lite.security.audit.AuditLog``), so a package depends on this interface and
not on the security package.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlmodel import Session


class AuditTrail(Protocol):
    def append(self, session: Session, *, actor: str, action: str, object: str,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
        """Append one event inside ``session``'s transaction (it exists exactly when that commits)."""
