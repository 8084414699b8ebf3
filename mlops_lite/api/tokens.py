"""``platform.tokens``: bearer tokens (the /v1 API) and access keys (the lakeFS-compatible
/api/v1 API), created with a secret shown once, listed without secrets, revoked.

Seams off the Protocol, each for a reason:
- ``authenticate``, ``authenticate_access_key`` and ``cached``: the server's guard turns
  a presented secret into an identity. A client proves who it is by sending its own
  secret with each request; an API that answered "is this secret valid?" for any secret
  would be an oracle for guessing them.
- ``actor=`` on ``create``, ``create_access_key`` and ``revoke``: over HTTP the actor is
  the caller's token; in-process it is given by the caller (the CLI passes its own).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

from mlops_lite.records import Grant, Identity, TokenRecord


class TokensAPI(Protocol):
    def create(self, name: str, role: str, *, grants: Iterable[Grant | str] = (),
               expires_in: timedelta | None = None, service: str | None = None) -> tuple[Identity, str]:
        """A bearer token for ``name`` with ``role``: its identity and its secret (shown
        only now; only its sha256 is stored). ``grants`` add a role on some models or
        repositories (``Grant`` records or ``ROLE:model:GLOB`` / ``ROLE:repo:GLOB``);
        ``expires_in``: refused (401, saying when it expired) from then on. The role and
        the grants are the token's whole scope. InvalidInput (``role``, ``grant``,
        ``grants``, ``expires_in``) for an unknown role, a bad grant or a lifetime
        outside (0, 3650 days]. ``service`` (``worker`` | ``replica``) issues a service
        identity (kind ``service``), whose role must be that service's (operator,
        predictor) and which carries no grants (InvalidInput ``service``, ``role``,
        ``grants``)."""

    def create_access_key(self, name: str, role: str, *, grants: Iterable[Grant | str] = (),
                          expires_in: timedelta | None = None) -> tuple[Identity, str, str]:
        """An access key for a lakeFS client: its identity, the key id and the secret
        access key (shown only now); ``grants`` and ``expires_in`` as ``create``."""

    def list(self) -> list[TokenRecord]:
        """Every token and access key, oldest first, never a secret."""

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token or access key at once. NotFound for an unknown id; Conflict when
        it is already revoked."""

    def count(self) -> int:
        """How many tokens and access keys exist (revoked ones too)."""
