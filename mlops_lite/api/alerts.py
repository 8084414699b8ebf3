"""``platform.alerts``: alerts raised by rules over monitoring figures, acknowledged by
operators, and silences that hold their notifications back.

Locally ``mlops_lite.alerts.Alerts`` over the metadata store; remotely
``mlops_lite.client.alerts.RemoteAlerts`` over ``server/alerts.py``. Records:
``AlertRecord``, ``SilenceRecord`` and ``AlertRule`` (mlops_lite/alerts/).

Seams off the Protocol, each for a reason:
- ``evaluate``: the monitor feeds figures to the rules where the prediction log is (the
  daemon); a caller that could post observations could fire or resolve any alert. The
  loop's steps (``platform.loop``: check, block, flow_finished) are how a flow reaches it.
- ``set_rules``: the rules come from the home's ``alerts.toml`` when the owner of the
  stores opens them; swapping them is the owning process's to do, not a caller's.
- ``drain``, ``close`` and ``sinks``: the notification threads belong to the process
  that evaluates, and the platform's ``close()`` drains them.
- ``actor=`` on ``acknowledge``, ``silence`` and ``lift_silence``: over HTTP the actor
  is the caller's token; in-process it is the platform's actor unless one is given.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mlops_lite.alerts import AlertRecord, AlertRule, SilenceRecord


class AlertsAPI(Protocol):
    def list(self, state: str | None = None, subject: str | None = None,
             limit: int = 100) -> builtins.list[AlertRecord]:
        """Alerts, newest first, optionally of one ``state`` (pending | firing | resolved)
        and/or ``subject``; at most ``limit`` (1 to 10000). InvalidInput naming ``state``
        or ``limit`` otherwise."""

    def get(self, id: str) -> AlertRecord:
        """One alert with its evidence. NotFound for an unknown id."""

    def open_alerts(self) -> builtins.list[AlertRecord]:
        """Every pending and firing alert, newest first."""

    def acknowledge(self, id: str) -> AlertRecord:
        """Record that the caller has seen the alert (any state). NotFound for an unknown
        id; Conflict when it was acknowledged already."""

    def rules(self) -> builtins.list[AlertRule]:
        """The rules in force, in the order they are applied."""

    def silence(self, rule: str | None = None, subject: str | None = None, *, until: datetime | timedelta,
                reason: str) -> SilenceRecord:
        """Hold back notifications of alerts whose rule and subject match these fnmatch
        patterns (None: any; name at least one, "*" for everything) until ``until`` (a
        time, or a duration from now). InvalidInput naming ``rule``, ``subject``,
        ``until`` or ``reason`` for a bad one."""

    def silences(self, active: bool = True) -> builtins.list[SilenceRecord]:
        """Silences, newest first: only those in force now unless ``active`` is False."""

    def lift_silence(self, id: str) -> SilenceRecord:
        """End a silence now. NotFound for an unknown id; Conflict when already lifted."""
