"""Security: API tokens and access keys, and the audit hash chain (``mlops_lite.security``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from mlops_lite.metadata.tables.columns import json_column


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"
    id: str = Field(primary_key=True)
    name: str
    role: str
    token_hash: str = Field(index=True)
    created_at: datetime
    revoked: bool = False
    # Set for lakeFS-style access keys (HTTP Basic: key id + secret); the secret's
    # sha256 is in token_hash. None for bearer tokens.
    access_key_id: str | None = Field(default=None, index=True, nullable=True)
    # Roles on some models or data repositories beyond ``role``: a list of
    # {"role", "models", "repositories"}; None (homes made before grants) means none.
    grants: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Refused from this moment on; None: never expires.
    expires_at: datetime | None = Field(default=None, nullable=True)
    # A service identity's service ("worker", "replica"; its Identity's kind is "service");
    # None for a person's or a script's token (and every token of homes made before).
    service: str | None = Field(default=None, nullable=True)


class AuditEvent(SQLModel, table=True):
    """One link of the audit hash chain; ``seq`` is assigned by the writer."""

    __tablename__ = "audit_events"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    id: str
    occurred_at: datetime
    actor: str
    action: str
    object: str = Field(index=True)
    before: dict[str, Any] = json_column()
    after: dict[str, Any] = json_column()
    prev_hash: str
    hash: str
