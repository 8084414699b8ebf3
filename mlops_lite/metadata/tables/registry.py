"""The registry: models and their versions (``mlops_lite.registry``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from mlops_lite.metadata.tables.columns import json_column


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
