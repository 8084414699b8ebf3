"""Tracking tables beyond runs, params and metrics (see tables.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class Experiment(SQLModel, table=True):
    """A named group of runs. ``start_run(experiment=...)`` creates one when missing."""

    __tablename__ = "experiments"
    name: str = Field(primary_key=True)
    created_at: datetime
    created_by: str | None = None
    description: str = ""
    tags: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
