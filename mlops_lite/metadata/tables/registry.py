"""The registry: models and their versions, aliases with their append-only history, and
model cards (``mlops_lite.registry``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index
from sqlmodel import Field, SQLModel

from mlops_lite.metadata.tables.columns import json_column

ALIAS_EVENT_KINDS = ("move", "rollback", "delete", "override")


class Model(SQLModel, table=True):
    __tablename__ = "models"
    name: str = Field(primary_key=True)
    description: str = ""
    created_at: datetime


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_versions"
    model: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    digest: str = Field(index=True)
    size: int = Field(sa_type=BigInteger)
    signature: dict[str, Any] = json_column()
    run_id: str | None = None
    data_commits: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    params: dict[str, Any] = json_column()
    metrics: dict[str, Any] = json_column()
    created_at: datetime
    created_by: str


class ModelAlias(SQLModel, table=True):
    """Where an alias points now. ``version`` is None once the alias was deleted (the
    row stays, so a later move is a compare-and-swap from None like any other)."""

    __tablename__ = "model_aliases"
    model: str = Field(primary_key=True)
    alias: str = Field(primary_key=True)
    version: str | None = Field(default=None, nullable=True)
    moved_at: datetime
    moved_by: str


class AliasEvent(SQLModel, table=True):
    """One move of an alias; append-only. ``seq`` numbers the events of one
    (model, alias) from 1 without gaps; (model, alias, seq) is unique, so two writers
    can never both append the same step of a history."""

    __tablename__ = "alias_events"
    __table_args__ = (
        # alias_at / alias_history: the events of one alias in time order.
        Index("ix_alias_events_model_alias_at", "model", "alias", "occurred_at"),
        Index("ux_alias_events_model_alias_seq", "model", "alias", "seq", unique=True),
        # lineage: the events that moved an alias to one version.
        Index("ix_alias_events_model_to_version", "model", "to_version"),
    )
    id: str = Field(primary_key=True)
    model: str
    alias: str
    seq: int
    kind: str  # one of ALIAS_EVENT_KINDS
    from_version: str | None = Field(default=None, nullable=True)
    to_version: str | None = Field(default=None, nullable=True)
    actor: str
    reason: str
    # "at" is a reserved word in DuckDB's SQL (AT TIME ZONE): the column is occurred_at.
    at: datetime = Field(sa_column=Column("occurred_at", DateTime(timezone=True), nullable=False))


class ModelCard(SQLModel, table=True):
    """A version's model card: intended use, limitations, evaluation and fairness."""

    __tablename__ = "model_cards"
    model: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    card: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime
    updated_by: str
