"""What the console's user may do, from ``platform.whoami()``: the console hides what the
role may not do (``check_action``), and the server still enforces every rule.

Roles rank ``predictor < viewer < operator < approver < admin`` (mlops_lite.security.roles);
a grant gives a higher role on some models or repositories."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_lite.records import Identity
from mlops_lite.security.roles import ROLES


@dataclass(frozen=True)
class Access:
    """The identity the console acts as, and whether it was opened read-only."""

    identity: Identity
    read_only: bool = False

    @property
    def role(self) -> str:
        return self.identity.role

    def can(self, needed: str, *, model: str | None = None, repository: str | None = None) -> bool:
        """True when ``needed`` (a role name) is within reach: globally, or by a grant on
        ``model``/``repository``. Read-only consoles can do nothing that writes."""
        if self.read_only and needed != "viewer":
            return False
        if _rank(self.identity.role) >= _rank(needed):
            return True
        return any(_rank(g.role) >= _rank(needed)
                   and ((model is None and repository is None) or g.covers(model=model, repository=repository))
                   for g in self.identity.grants)

    def describe(self) -> str:
        who = self.identity.name
        return f"{who} ({self.identity.role}{', read-only' if self.read_only else ''})"


def _rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1
