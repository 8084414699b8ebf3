"""Tracking: experiments, runs, their params and metrics (``mlops_lite.tracking``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Double
from sqlmodel import Field, SQLModel

from mlops_lite.metadata.tables.columns import json_column


class Experiment(SQLModel, table=True):
    """A named group of runs. ``start_run(experiment=...)`` creates one when missing."""

    __tablename__ = "experiments"
    name: str = Field(primary_key=True)
    created_at: datetime
    created_by: str | None = None
    description: str = ""
    tags: dict[str, Any] = json_column()


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    id: str = Field(primary_key=True)
    name: str
    experiment: str = "default"
    status: str = "running"
    started_at: datetime
    ended_at: datetime | None = None
    data_commits: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    tags: dict[str, Any] = json_column()
    artifacts: dict[str, Any] = json_column()
    # Added by the tracking release (nullable: additive upgrades add them to old databases).
    git_commit: str | None = None  # HEAD of the code directory's git checkout, when it is one
    git_dirty: bool | None = None  # tracked files differ from HEAD
    environment: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    pid: int | None = None  # the process that started the run, and its host: mark_crashed() reads them
    host: str | None = None
    heartbeat_at: datetime | None = None  # the run's last write (start, flush, artifact)


class Param(SQLModel, table=True):
    __tablename__ = "params"
    run_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    value: str


class Metric(SQLModel, table=True):
    __tablename__ = "metrics"
    run_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    step: int = Field(default=0, primary_key=True)
    # sqlalchemy's Float is 32-bit REAL on DuckDB; metrics need double precision.
    value: float = Field(sa_type=Double)
    timestamp: datetime
