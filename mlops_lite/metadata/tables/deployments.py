"""Deployments: where each one stands and every revision it went through (``mlops_lite.inference``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Double
from sqlmodel import Field, SQLModel


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
