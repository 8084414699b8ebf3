"""API tokens: random secrets shown once, stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlmodel import select

from mlops_lite.clock import utcnow
from mlops_lite.errors import Unauthenticated
from mlops_lite.metadata.store import MetadataStore
from mlops_lite.metadata.tables import ApiToken
from mlops_lite.records import Identity
from mlops_lite.security.audit import AuditLog
from mlops_lite.security.roles import role_rank

TOKEN_PREFIX = "mll_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Tokens:
    def __init__(self, store: MetadataStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit
        self._cache: dict[str, Identity] = {}

    def create(self, name: str, role: str, *, actor: str = "system") -> tuple[Identity, str]:
        """Create a token; returns the identity and the secret (shown only now)."""
        role_rank(role)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(id=uuid.uuid4().hex, name=name, role=role, token_hash=_hash(secret),
                       created_at=utcnow())
        with self._store.session() as session:
            session.add(row)
            self._audit.append(session, actor=actor, action="token.create", object=f"token:{row.id}",
                               after={"name": name, "role": role})
        return Identity(name=name, role=role, token_id=row.id), secret

    def authenticate(self, secret: str | None) -> Identity:
        if not secret:
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
        digest = _hash(secret)
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        with self._store.session() as session:
            row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
        if row is None or row.revoked:
            raise Unauthenticated("the token is not valid")
        identity = Identity(name=row.name, role=row.role, token_id=row.id)
        self._cache[digest] = identity
        return identity

    def count(self) -> int:
        with self._store.session() as session:
            return len(session.exec(select(ApiToken.id)).all())
