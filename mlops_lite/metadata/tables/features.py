"""The feature store (``mlops_lite.features``): definitions by content hash with history,
training sets, the online store's rows, materializations, served vectors and overrides.

Times the online path compares are integers of microseconds since the epoch (UTC), so
the online store and the offline point-in-time join apply a TTL to the same numbers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel


class FeatureDefinitionRow(SQLModel, table=True):
    """One version of one definition (entity, feature_view, on_demand, feature_service):
    ``digest`` is the sha256 of its canonical spec. ``version`` is, for a feature service,
    the digest of everything it reads (its plan); for the others, the digest's head."""

    __tablename__ = "feature_definitions"
    __table_args__ = (Index("ix_feature_definitions_kind_name", "kind", "name", "applied_at"),)
    kind: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    digest: str = Field(primary_key=True)
    version: str
    spec: str = Field(sa_column=Column(Text, nullable=False))
    applied_at: datetime
    applied_by: str
    current: bool = True
    retired_at: datetime | None = Field(default=None, nullable=True)


class FeatureServiceVersionRow(SQLModel, table=True):
    """A feature service version: the plan (every definition it reads) as applied."""

    __tablename__ = "feature_service_versions"
    service: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    plan: str = Field(sa_column=Column(Text, nullable=False))
    applied_at: datetime
    applied_by: str


class FeatureTrainingSetRow(SQLModel, table=True):
    """A point-in-time training set: ``id`` is the digest of (data commits, service
    version, entity rows); ``digest`` addresses its Parquet bytes in the artifact store."""

    __tablename__ = "feature_training_sets"
    id: str = Field(primary_key=True)
    service: str
    service_version: str
    commits: str = Field(sa_column=Column(Text, nullable=False))  # JSON repository -> commit
    entities: str = Field(sa_column=Column(Text, nullable=False))  # JSON: how the entity rows were given
    entity_digest: str
    digest: str
    rows: int
    columns: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    created_at: datetime
    created_by: str


class FeatureOnlineRow(SQLModel, table=True):
    """The latest row of one entity key in one feature view, as last materialized."""

    __tablename__ = "feature_online"
    view: str = Field(primary_key=True)
    entity_key: str = Field(primary_key=True)
    event_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON object feature -> value


class FeatureMaterializationRow(SQLModel, table=True):
    """One materialization of a view into the online store."""

    __tablename__ = "feature_materializations"
    __table_args__ = (Index("ix_feature_materializations_view", "view", "finished_at"),)
    id: str = Field(primary_key=True)
    view: str
    view_digest: str
    mode: str  # full | incremental
    repository: str
    data_commit: str
    as_of_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The latest event time in the source at that commit (NULL before this column existed):
    # when it is not after ``as_of_us``, the next incremental run may read only added files.
    max_event_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    keys: int
    written: int
    deleted: int
    started_at: datetime
    finished_at: datetime
    actor: str


class FeatureServedRow(SQLModel, table=True):
    """One served feature vector (an online lookup), for the skew check."""

    __tablename__ = "feature_served"
    __table_args__ = (Index("ix_feature_served_service", "service", "served_us"),)
    id: str = Field(primary_key=True)
    service: str
    service_version: str
    served_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    entity: str = Field(sa_column=Column(Text, nullable=False))  # JSON: keys and request fields
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON feature -> value
    statuses: str = Field(sa_column=Column(Text, nullable=False))  # JSON feature -> status
    commits: str = Field(sa_column=Column(Text, nullable=False))  # JSON view -> [repository, commit]
    deployment: str | None = Field(default=None, nullable=True)


class FeatureOverrideRow(SQLModel, table=True):
    """A deployment allowed to serve a model version whose feature service version is not
    the current one (audited ``features.version_override``)."""

    __tablename__ = "feature_overrides"
    deployment: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    version: str = Field(primary_key=True)
    service_version: str = Field(primary_key=True)
    reason: str
    actor: str
    created_at: datetime
