"""What ``platform.features`` answers (frozen dataclasses; the wire shape over HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FeatureDefinitionRecord:
    kind: str  # entity | feature_view | on_demand | feature_service
    name: str
    digest: str
    version: str  # a feature service: its plan's version; the others: the digest's head
    spec: dict[str, Any]
    applied_at: datetime
    applied_by: str
    current: bool = True


@dataclass(frozen=True)
class ApplyChange:
    kind: str
    name: str
    action: str  # created | changed | unchanged | retired
    digest: str
    version: str = ""


@dataclass(frozen=True)
class ApplyResult:
    ref: str
    commits: dict[str, str]  # repository -> the commit the sources were validated at
    changes: tuple[ApplyChange, ...]
    services: dict[str, str]  # service -> its version now
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)


@dataclass(frozen=True)
class FeatureServiceRecord:
    name: str
    version: str
    features: tuple[str, ...]
    dtypes: dict[str, str]
    join_keys: dict[str, str]
    request_fields: dict[str, str]
    views: dict[str, dict[str, Any]]  # view -> {ttl_seconds, repository, entities, features}
    applied_at: datetime
    current: bool = True


@dataclass(frozen=True)
class TrainingSetRecord:
    id: str
    service: str
    service_version: str
    commits: dict[str, str]
    entities: dict[str, Any]  # how the entity rows were given: {repository, ref, path} or {inline: rows}
    entity_digest: str
    digest: str
    rows: int
    columns: tuple[str, ...]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class MaterializationRecord:
    id: str
    view: str
    mode: str  # full | incremental
    repository: str
    data_commit: str
    as_of: datetime
    keys: int
    written: int
    deleted: int
    started_at: datetime
    finished_at: datetime
    seconds: float


@dataclass(frozen=True)
class OnlineFeatures:
    """One lookup: per entity row, the values and their status (present, expired, missing)."""

    service: str
    version: str
    features: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    statuses: tuple[dict[str, str], ...]
    at: datetime
    commits: dict[str, list[str]] = field(default_factory=dict)  # view -> [repository, data commit]


@dataclass(frozen=True)
class SkewReport:
    service: str
    checked: int
    mismatched: int
    values_compared: int
    rows: tuple[dict[str, Any], ...]  # the mismatching rows: entity, served, recomputed
    alert: str | None
    checked_at: datetime


@dataclass(frozen=True)
class FeatureOverrideRecord:
    deployment: str
    model: str
    version: str
    service_version: str
    reason: str
    actor: str
    created_at: datetime
