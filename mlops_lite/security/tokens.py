"""API tokens and access keys: random secrets shown once, stored only as sha256 hashes.

Bearer tokens (``mll_...``) authenticate the /v1 API; access keys (an id like
``AKIAMLL...`` plus a secret) authenticate the lakeFS-compatible /api/v1 API over
HTTP Basic, as lakeFS clients expect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import uuid

from sqlmodel import col, select

from mlops_lite.clock import utcnow
from mlops_lite.errors import Conflict, NotFound, Unauthenticated
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import ApiToken
from mlops_lite.records import Identity, TokenRecord
from mlops_lite.security.audit import AuditLog
from mlops_lite.security.roles import role_rank

TOKEN_PREFIX = "mll_"
ACCESS_KEY_PREFIX = "AKIAMLL"
_KEY_ALPHABET = string.ascii_uppercase + string.digits


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens:
    def __init__(self, store: MetadataStore, audit: AuditLog, actor: str = "system") -> None:
        self._actor = actor  # who creates and revokes when the caller names no one
        self._store = store
        self._audit = audit
        self._cache: dict[str, Identity] = {}

    def create(self, name: str, role: str, *, actor: str | None = None) -> tuple[Identity, str]:
        """Create a token; returns the identity and the secret (shown only now)."""
        role_rank(role)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(id=uuid.uuid4().hex, name=name, role=role, token_hash=_hash(secret),
                       created_at=utcnow())
        with self._store.session() as session:
            session.add(row)
            self._audit.append(session, actor=actor or self._actor, action="token.create", object=f"token:{row.id}",
                               after={"name": name, "role": role})
        return Identity(name=name, role=role, token_id=row.id, kind="token"), secret

    def create_access_key(self, name: str, role: str, *,
                          actor: str | None = None) -> tuple[Identity, str, str]:
        """Create an access key; returns the identity, the key id and the secret
        access key (shown only now; only its sha256 is stored)."""
        role_rank(role)
        key_id = ACCESS_KEY_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(13))
        secret = secrets.token_urlsafe(30)
        row = ApiToken(id=uuid.uuid4().hex, name=name, role=role, token_hash=_hash(secret),
                       access_key_id=key_id, created_at=utcnow())
        with self._store.session() as session:
            session.add(row)
            self._audit.append(session, actor=actor or self._actor, action="access_key.create",
                               object=f"token:{row.id}",
                               after={"name": name, "role": role, "access_key_id": key_id})
        return Identity(name=name, role=role, token_id=row.id, kind="access_key"), key_id, secret

    def authenticate_access_key(self, key_id: str | None, secret: str | None) -> Identity:
        if not key_id or not secret:
            raise Unauthenticated("an access key is required (HTTP Basic: access key id, secret)")
        digest = _hash(secret)
        cache_key = f"{key_id}:{digest}"
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        with self._store.session() as session:
            row = session.exec(select(ApiToken).where(ApiToken.access_key_id == key_id)).first()
        if row is None or row.revoked or not hmac.compare_digest(row.token_hash, digest):
            raise Unauthenticated("the access key is not valid")
        identity = Identity(name=row.name, role=row.role, token_id=row.id, kind="access_key")
        self._cache[cache_key] = identity
        return identity

    def cached(self, secret: str) -> Identity | None:
        """The identity of a bearer token this process has already authenticated, or None."""
        return self._cache.get(_hash(secret))

    def authenticate(self, secret: str | None) -> Identity:
        if not secret:
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
        digest = _hash(secret)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        with self._store.session() as session:
            row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
        # An access key's secret is not a bearer token.
        if row is None or row.revoked or row.access_key_id is not None:
            raise Unauthenticated("the token is not valid")
        identity = Identity(name=row.name, role=row.role, token_id=row.id, kind="token")
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


def _record(row: ApiToken) -> TokenRecord:
    return TokenRecord(id=row.id, name=row.name, role=row.role, created_at=row.created_at, revoked=row.revoked,
                       access_key_id=row.access_key_id)
