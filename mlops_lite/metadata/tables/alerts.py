"""Alerts: one row per alert occurrence, and silences (``mlops_lite.alerts``).

Floats are ``Double`` (sqlalchemy's Float is a 32-bit REAL on DuckDB). No column is
named ``at`` (a keyword in DuckDB's SQL).

An alert row is born ``pending`` (or ``firing`` when its rule has no hold time),
may become ``firing``, and ends ``resolved``; a condition seen again after that
opens a new row. At most one row per (rule, subject) is open (pending or firing):
``mlops_lite.alerts.Alerts`` keeps that rule, under one lock per store.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Double, Index, Text
from sqlmodel import Field, SQLModel

ALERT_STATES = ("pending", "firing", "resolved")
OPEN_STATES = ("pending", "firing")
# The delivery of the alert's latest notification (fire or resolve); None while
# there was nothing to send (a pending alert, or no sinks).
DELIVERY_STATES = ("pending", "delivered", "undelivered", "silenced")


class AlertRow(SQLModel, table=True):
    """One alert occurrence of ``rule`` on ``subject`` (a deployment name, or "").

    ``value`` is the latest observed figure and ``threshold``/``op`` the rule's bound
    when it was last evaluated. ``evidence`` is JSON text: the observation's window
    (start, end) and figures, as last seen. ``notice_seq`` counts the notifications
    sent for this alert, so a late delivery report of an older notification never
    overwrites the newer one's status.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_rule_subject_state", "rule", "subject", "state"),
        Index("ix_alerts_state_started", "state", "started_at"),
    )
    id: str = Field(primary_key=True)
    rule: str
    metric: str
    subject: str
    op: str
    state: str
    severity: str
    value: float = Field(sa_type=Double)
    threshold: float = Field(sa_type=Double)
    description: str = ""
    started_at: datetime
    last_seen_at: datetime
    fired_at: datetime | None = Field(default=None, nullable=True)
    resolved_at: datetime | None = Field(default=None, nullable=True)
    acknowledged_by: str | None = Field(default=None, nullable=True)
    acknowledged_at: datetime | None = Field(default=None, nullable=True)
    evidence: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    silenced: bool = False
    silence_id: str | None = Field(default=None, nullable=True)
    delivery: str | None = Field(default=None, nullable=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    notice_seq: int = 0


class AlertSilenceRow(SQLModel, table=True):
    """Notifications for alerts whose rule and subject match these fnmatch patterns
    (None matches any) are held back until ``until`` (or until lifted)."""

    __tablename__ = "alert_silences"
    __table_args__ = (Index("ix_alert_silences_until", "until"),)
    id: str = Field(primary_key=True)
    rule_pattern: str | None = Field(default=None, nullable=True)
    subject_pattern: str | None = Field(default=None, nullable=True)
    until: datetime
    reason: str
    created_by: str
    created_at: datetime
    lifted_at: datetime | None = Field(default=None, nullable=True)
    lifted_by: str | None = Field(default=None, nullable=True)
