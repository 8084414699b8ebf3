"""SQLModel tables: the storage shape. Keys are digests, UUIDs or names.

DuckDB (the embedded default) rejects SERIAL keys and most foreign-key tricks, so
no table here has an auto-increment key or a foreign key; the services keep
referential rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Double, Table
from sqlmodel import Field, SQLModel


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON))


def core_table(model: type[SQLModel]) -> Table:
    """The Core ``Table`` of a table model, for Core statements (upserts, bulk inserts)."""
    table: Table = model.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models; its types omit it
    return table


class DataRepository(SQLModel, table=True):
    __tablename__ = "data_repositories"
    name: str = Field(primary_key=True)
    default_branch: str = "main"
    created_at: datetime
    created_by: str
    config: dict[str, Any] = _json()


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
    meta: dict[str, Any] = _json()


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    id: str = Field(primary_key=True)
    name: str
    experiment: str = "default"
    status: str = "running"
    started_at: datetime
    ended_at: datetime | None = None
    data_commits: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    tags: dict[str, Any] = _json()
    artifacts: dict[str, Any] = _json()
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
    signature: dict[str, Any] = _json()
    run_id: str | None = None
    data_commits: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    params: dict[str, Any] = _json()
    metrics: dict[str, Any] = _json()
    created_at: datetime
    created_by: str


class Deployment(SQLModel, table=True):
    __tablename__ = "deployments"
    name: str = Field(primary_key=True)
    model: str
    version: str
    digest: str
    strategy: str = "single"  # single | canary | blue_green | shadow
    revision: int = 1
    updated_at: datetime
    updated_by: str
    # The second slot: the canary, the shadow, or blue-green's standby. Nullable so
    # that an older database gains them by the additive upgrade.
    candidate_model: str | None = None
    candidate_version: str | None = None
    candidate_digest: str | None = None
    weight: float | None = Field(default=None, sa_type=Double)  # the canary's share of traffic
    live_slot: str | None = None  # blue-green: "blue" or "green", the colour of the primary


class DeploymentRevision(SQLModel, table=True):
    """Every state a deployment has been in, for status, audit and rollback."""

    __tablename__ = "deployment_revisions"
    name: str = Field(primary_key=True)
    revision: int = Field(primary_key=True)
    action: str  # deploy | canary | shadow | stage | switch | promote | rollback
    strategy: str
    model: str
    version: str
    digest: str
    candidate_model: str | None = None
    candidate_version: str | None = None
    candidate_digest: str | None = None
    weight: float | None = Field(default=None, sa_type=Double)
    live_slot: str | None = None
    changed_at: datetime
    changed_by: str
    reason: str = ""


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


class AuditEvent(SQLModel, table=True):
    """One link of the audit hash chain; ``seq`` is assigned by the writer."""

    __tablename__ = "audit_events"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    id: str
    occurred_at: datetime
    actor: str
    action: str
    object: str = Field(index=True)
    before: dict[str, Any] = _json()
    after: dict[str, Any] = _json()
    prev_hash: str
    hash: str
