"""Versioned data: repositories, branches, tags, staged changes and commits (``mlops_lite.data``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel

from mlops_lite.metadata.tables.columns import json_column


class DataRepository(SQLModel, table=True):
    __tablename__ = "data_repositories"
    name: str = Field(primary_key=True)
    default_branch: str = "main"
    created_at: datetime
    created_by: str
    config: dict[str, Any] = json_column()


class DataBranch(SQLModel, table=True):
    __tablename__ = "data_branches"
    repository: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    head: str | None = None
    created_at: datetime


class DataTag(SQLModel, table=True):
    __tablename__ = "data_tags"
    repository: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    commit: str
    created_at: datetime


class DataStaged(SQLModel, table=True):
    """Uncommitted changes on a branch: path -> object digest (None = deleted)."""

    __tablename__ = "data_staged"
    repository: str = Field(primary_key=True)
    branch: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    digest: str | None = None
    size: int = Field(default=0, sa_type=BigInteger)  # objects of 2 GiB and more


class DataCommit(SQLModel, table=True):
    """A commit: its root tree, its parents (two for a merge) and who made it."""

    __tablename__ = "data_commits"
    id: str = Field(primary_key=True)
    repository: str = Field(index=True)
    parents: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    tree: str
    message: str
    author: str
    created_at: datetime
    meta: dict[str, Any] = json_column()


class DataTombstone(SQLModel, table=True):
    """A deleted repository: who deleted it, its classification, and the records of its
    commits, so that lineage naming one of them still resolves (and says it was deleted),
    and a repository made again under the name is held to the same classification."""

    __tablename__ = "data_tombstones"
    repository: str = Field(primary_key=True)
    deleted_at: datetime = Field(primary_key=True)
    deleted_by: str
    classification: str
    commits: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
