"""Records: the frozen values the Platform facets return, local or remote alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CommitRecord:
    id: str
    repository: str
    parents: tuple[str, ...]
    tree: str
    message: str
    author: str
    created_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def parent(self) -> str | None:
        """The first parent (the branch's previous head), or None for a first commit."""
        return self.parents[0] if self.parents else None


@dataclass(frozen=True)
class RepositoryRecord:
    name: str
    default_branch: str
    created_at: datetime
    branches: dict[str, str | None] = field(default_factory=dict)
    protected_branches: tuple[str, ...] = ()


@dataclass(frozen=True)
class BranchRecord:
    repository: str
    name: str
    head: str | None


@dataclass(frozen=True)
class TagRecord:
    repository: str
    name: str
    commit: str


@dataclass(frozen=True)
class ObjectRecord:
    """An object at a path: its digest, size, and whether it is staged (uncommitted)."""

    path: str
    digest: str
    size: int
    staged: bool = False


@dataclass(frozen=True)
class Listing:
    """A page of objects and folder prefixes; ``next_after`` continues it."""

    objects: tuple[ObjectRecord, ...]
    prefixes: tuple[str, ...]
    has_more: bool
    next_after: str


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    experiment: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    data_commits: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersionRecord:
    model: str
    version: str
    digest: str
    size: int
    signature: dict[str, Any]
    run_id: str | None
    data_commits: tuple[str, ...]
    params: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class ModelRecord:
    name: str
    description: str
    created_at: datetime
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    model: str
    version: str
    digest: str
    strategy: str
    revision: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class Prediction:
    """The answer to one predict call."""

    request_id: str
    deployment: str
    model: str
    version: str
    digest: str
    predictions: tuple[Any, ...]
    probabilities: tuple[tuple[float, ...], ...]
    classes: tuple[Any, ...]


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    measured: Any
    bound: Any
    detail: str = ""


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    id: str
    at: datetime
    actor: str
    action: str
    object: str
    before: dict[str, Any]
    after: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Identity:
    """Who is calling, and with which role."""

    name: str
    role: str
    token_id: str | None = None
