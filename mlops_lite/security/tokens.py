"""API tokens and access keys: random secrets shown once, stored only as sha256 hashes.

Bearer tokens (``mll_...``) authenticate the /v1 API; access keys (an id like
``AKIAMLL...`` plus a secret) authenticate the lakeFS-compatible /api/v1 API over
HTTP Basic, as lakeFS clients expect.

Each carries a role and may carry grants (a role on some models or repositories, see
``mlops_lite.security.roles``) and an expiry: the role and the grants are its whole scope.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from mlops_lite.clock import as_utc, utcnow
from mlops_lite.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import ApiToken
from mlops_lite.records import Grant, Identity, TokenRecord
from mlops_lite.security.audit import AuditLog
from mlops_lite.security.roles import parse_grant, role_rank
from mlops_lite.security.service import service_role

TOKEN_PREFIX = "mll_"
ACCESS_KEY_PREFIX = "AKIAMLL"
_KEY_ALPHABET = string.ascii_uppercase + string.digits


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# A token may live at most ten years; a longer expiry is a typo.
MAX_LIFETIME = timedelta(days=3650)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d`` or ``2w``, as ``--expires-in`` takes it."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInput(f"a duration is a number and a unit, got {text!r}", field="expires_in",
                           expected="NUMBER s|m|h|d|w, e.g. 30d")
    return _lifetime(timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)]))


def _lifetime(expires_in: timedelta) -> timedelta:
    if not timedelta(0) < expires_in <= MAX_LIFETIME:
        raise InvalidInput(f"a token's lifetime is more than 0 and at most {MAX_LIFETIME.days} days, "
                           f"got {expires_in}", field="expires_in", expected="a positive duration up to 3650d")
    return expires_in


def grants_of(grants: Iterable[Grant | str]) -> tuple[Grant, ...]:
    """Grants as given (records or ``ROLE:model:GLOB`` / ``ROLE:repo:GLOB`` text), checked."""
    out: list[Grant] = []
    for grant in grants:
        if isinstance(grant, str):
            grant = parse_grant(grant)
        elif not isinstance(grant, Grant):
            raise InvalidInput(f"a grant is a Grant or ROLE:model:GLOB text, got {type(grant).__name__}",
                               field="grants", expected="ROLE:model:GLOB | ROLE:repo:GLOB")
        role_rank(grant.role)
        if (grant.models is None) == (grant.repositories is None) or not (grant.models or grant.repositories):
            raise InvalidInput("a grant names models or repositories (one glob, not both)", field="grants",
                               expected="ROLE:model:GLOB | ROLE:repo:GLOB")
        out.append(grant)
    return tuple(out)


def _stored(grants: tuple[Grant, ...]) -> list[dict[str, Any]] | None:
    return [{"role": g.role, "models": g.models, "repositories": g.repositories} for g in grants] or None


def _loaded(stored: list[dict[str, Any]] | None) -> tuple[Grant, ...]:
    return tuple(Grant(role=g["role"], models=g.get("models"), repositories=g.get("repositories"))
                 for g in stored or ())


def _described(grants: tuple[Grant, ...]) -> list[str]:
    return [f"{g.role}:model:{g.models}" if g.models is not None else f"{g.role}:repo:{g.repositories}"
            for g in grants]


class Tokens:
    def __init__(self, store: MetadataStore, audit: AuditLog, actor: str = "system") -> None:
        self._actor = actor  # who creates and revokes when the caller names no one
        self._store = store
        self._audit = audit
        self._cache: dict[str, Identity] = {}
        self._expiry: dict[str, datetime] = {}  # token id -> when it stops being accepted

    def create(self, name: str, role: str, *, grants: Iterable[Grant | str] = (),
               expires_in: timedelta | None = None, service: str | None = None,
               actor: str | None = None) -> tuple[Identity, str]:
        """Create a token; returns the identity and the secret (shown only now). With
        ``service`` (``worker`` or ``replica``), a service identity's token (kind
        ``service``): its role must be the service's (``security.service.SERVICES``), and it
        carries no grants."""
        grants = tuple(grants)
        if service is not None:
            if role != service_role(service):
                raise InvalidInput(f"a {service} identity has role {service_role(service)!r}, not {role!r}",
                                   field="role", expected=service_role(service))
            if grants:
                raise InvalidInput("a service identity carries no grants: its role is its whole scope",
                                   field="grants", expected="none")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        identity = self._insert(name, role, grants, expires_in, secret, None, "token.create", actor, service)
        return identity, secret

    def create_access_key(self, name: str, role: str, *, grants: Iterable[Grant | str] = (),
                          expires_in: timedelta | None = None,
                          actor: str | None = None) -> tuple[Identity, str, str]:
        """Create an access key; returns the identity, the key id and the secret
        access key (shown only now; only its sha256 is stored)."""
        key_id = ACCESS_KEY_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(13))
        secret = secrets.token_urlsafe(30)
        identity = self._insert(name, role, grants, expires_in, secret, key_id, "access_key.create", actor)
        return identity, key_id, secret

    def _insert(self, name: str, role: str, grants: Iterable[Grant | str], expires_in: timedelta | None,
                secret: str, key_id: str | None, action: str, actor: str | None,
                service: str | None = None) -> Identity:
        role_rank(role)
        checked = grants_of(grants)
        expires_at = None if expires_in is None else utcnow() + _lifetime(expires_in)
        row = ApiToken(id=uuid.uuid4().hex, name=name, role=role, token_hash=_hash(secret), access_key_id=key_id,
                       created_at=utcnow(), grants=_stored(checked), expires_at=expires_at, service=service)
        after: dict[str, Any] = {"name": name, "role": role}
        if service is not None:
            after["service"] = service
        if key_id is not None:
            after["access_key_id"] = key_id
        if checked:
            after["grants"] = _described(checked)
        if expires_at is not None:
            after["expires_at"] = expires_at.isoformat()
        with self._store.session() as session:
            session.add(row)
            self._audit.append(session, actor=actor or self._actor, action=action, object=f"token:{row.id}",
                               after=after)
        return Identity(name=name, role=role, token_id=row.id, kind=_kind(key_id, service), grants=checked)

    def _accepted(self, row: ApiToken, kind: str) -> Identity:
        """The identity of a stored token that is neither revoked nor expired."""
        if row.expires_at is not None:
            expires_at = as_utc(row.expires_at)
            if utcnow() >= expires_at:
                raise Unauthenticated(f"the {'access key' if kind == 'access_key' else 'token'} "
                                      f"expired at {expires_at:%Y-%m-%dT%H:%M:%SZ}")
            self._expiry[row.id] = expires_at
        kind = "service" if kind == "token" and row.service is not None else kind
        return Identity(name=row.name, role=row.role, token_id=row.id, kind=kind, grants=_loaded(row.grants))

    def _fresh(self, key: str) -> Identity | None:
        """A cached identity, unless its token has expired since (then it is forgotten)."""
        identity = self._cache.get(key)
        if identity is None or identity.token_id not in self._expiry:
            return identity
        if utcnow() < self._expiry[identity.token_id]:
            return identity
        self._cache.pop(key, None)
        return None

    def authenticate_access_key(self, key_id: str | None, secret: str | None) -> Identity:
        if not key_id or not secret:
            raise Unauthenticated("an access key is required (HTTP Basic: access key id, secret)")
        digest = _hash(secret)
        cache_key = f"{key_id}:{digest}"
        cached = self._fresh(cache_key)
        if cached is not None:
            return cached
        with self._store.session() as session:
            row = session.exec(select(ApiToken).where(ApiToken.access_key_id == key_id)).first()
        if row is None or row.revoked or not hmac.compare_digest(row.token_hash, digest):
            raise Unauthenticated("the access key is not valid")
        identity = self._accepted(row, "access_key")
        self._cache[cache_key] = identity
        return identity

    def cached(self, secret: str) -> Identity | None:
        """The identity of a bearer token this process has already authenticated, or None
        (also once it has expired: ``authenticate`` then says so)."""
        return self._fresh(_hash(secret))

    def authenticate(self, secret: str | None) -> Identity:
        if not secret:
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
        digest = _hash(secret)
        cached = self._fresh(digest)
        if cached is not None:
            return cached
        with self._store.session() as session:
            row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
        # An access key's secret is not a bearer token.
        if row is None or row.revoked or row.access_key_id is not None:
            raise Unauthenticated("the token is not valid")
        identity = self._accepted(row, "token")
        self._cache[digest] = identity
        return identity

    def list(self) -> list[TokenRecord]:
        """Every token and access key (never a secret), oldest first."""
        with self._store.session() as session:
            rows = session.exec(select(ApiToken).order_by(col(ApiToken.created_at))).all()
            return [_record(row) for row in rows]

    def revoke(self, token_id: str, *, actor: str | None = None) -> TokenRecord:
        """Revoke a token or access key at once: this process forgets it now; processes
        that check tokens with the control plane (serving workers) within their cache
        time. NotFound for an unknown id; Conflict when already revoked."""
        with self._store.session() as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"no token {token_id!r}")
            if row.revoked:
                raise Conflict(f"token {token_id!r} ({row.name}) is already revoked")
            row.revoked = True
            session.add(row)
            self._audit.append(session, actor=actor or self._actor, action="token.revoke", object=f"token:{row.id}",
                               before={"revoked": False}, after={"name": row.name, "role": row.role, "revoked": True})
            record = _record(row)
        for key, identity in list(self._cache.items()):
            if identity.token_id == token_id:
                self._cache.pop(key, None)
        return record

    def count(self) -> int:
        with self._store.session() as session:
            return len(session.exec(select(ApiToken.id)).all())


def _kind(key_id: str | None, service: str | None) -> str:
    return "access_key" if key_id is not None else "service" if service is not None else "token"


def _record(row: ApiToken) -> TokenRecord:
    return TokenRecord(id=row.id, name=row.name, role=row.role, created_at=row.created_at, revoked=row.revoked,
                       access_key_id=row.access_key_id, grants=_loaded(row.grants),
                       expires_at=None if row.expires_at is None else as_utc(row.expires_at), service=row.service)
