"""Data-subject rights and retention (``mlops_lite.privacy``): what an erasure or a
retention run rewrote, and the model versions it left trained on data that is gone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from mlops_lite.metadata.tables.columns import json_column


class PrivacyErasure(SQLModel, table=True):
    """One erasure or retention rewrite. ``subject_digest`` is a keyed digest of the
    subject (never the identifier); ``purge`` the digests of the objects that held the
    removed rows, deleted from the object store once ``purged`` is set."""

    __tablename__ = "privacy_erasures"
    id: str = Field(primary_key=True)
    kind: str  # "erase" | "retention"
    repository: str = Field(index=True)
    subject_digest: str | None = None
    erased_at: datetime
    actor: str
    counts: dict[str, Any] = json_column()
    purge: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    purged: bool = False


class PrivacyCommitMap(SQLModel, table=True):
    """A commit an erasure or retention run replaced, and the commit that replaced it."""

    __tablename__ = "privacy_commit_map"
    old_commit: str = Field(primary_key=True)
    new_commit: str = Field(index=True)
    repository: str = Field(index=True)
    erasure: str
    mapped_at: datetime


class PrivacyFlag(SQLModel, table=True):
    """A model version trained on data an erasure or retention run removed: a retrain is
    suggested (never forced)."""

    __tablename__ = "privacy_flags"
    model: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    erasure: str = Field(primary_key=True)
    note: str
    data_commits: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    flagged_at: datetime
