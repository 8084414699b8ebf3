"""Policy: decisions and approval requests (``mlops_lite.policy``).

Decisions and votes are append-only; a request row changes only its status (and who
completed it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

APPROVAL_STATUSES = ("pending", "approved", "rejected", "completed")
VOTES = ("approve", "reject")


class PolicyDecisionRow(SQLModel, table=True):
    """One evaluation of every gate for ``model@version`` going to ``alias``.

    ``gates`` is a list of {gate, passed, measured, bound, detail}. ``passed`` is what
    the gates said; an admin override keeps it honest and sets ``override_reason``.
    ``digest`` pins the exact ONNX file decided on; ``policy`` is the effective policy
    (the merged TOML) the gates were evaluated under.
    """

    __tablename__ = "policy_decisions"
    __table_args__ = (Index("ix_policy_decisions_model_version_at", "model", "version", "decided_at"),)
    id: str = Field(primary_key=True)
    model: str
    version: str
    alias: str
    decided_at: datetime  # ("at" is a keyword in DuckDB's SQL)
    passed: bool
    gates: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    actor: str
    override_reason: str | None = Field(default=None, nullable=True)
    digest: str | None = Field(default=None, nullable=True)
    policy: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ApprovalRequestRow(SQLModel, table=True):
    """A request to move ``alias`` of ``model`` to ``version``; ``status`` is one of
    APPROVAL_STATUSES. ``decision_id`` is the decision that completed it."""

    __tablename__ = "approval_requests"
    __table_args__ = (Index("ix_approval_requests_model_version_alias", "model", "version", "alias"),)
    id: str = Field(primary_key=True)
    model: str
    version: str
    alias: str
    status: str
    requested_by: str
    requested_at: datetime
    comment: str = ""
    updated_at: datetime
    completed_at: datetime | None = Field(default=None, nullable=True)
    completed_by: str | None = Field(default=None, nullable=True)
    decision_id: str | None = Field(default=None, nullable=True)


class ApprovalVoteRow(SQLModel, table=True):
    """One approver's vote on a request (append-only); ``vote`` is one of VOTES and
    ``role`` the role the approver held when voting."""

    __tablename__ = "approval_votes"
    __table_args__ = (Index("ix_approval_votes_request", "request_id", "voted_at"),)
    id: str = Field(primary_key=True)
    request_id: str
    approver: str
    role: str
    vote: str
    comment: str = ""
    voted_at: datetime
