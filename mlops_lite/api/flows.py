"""``platform.flows``: the flow runs of the Prefect server ``mlops-lite up`` runs beside the
API, and their logs, read through the platform so that a console or script with a token
sees them too (the Prefect API itself listens on loopback, behind the home's auth string).

Where the Prefect server is found (mlops_lite/flow_runs.py): ``PREFECT_API_URL`` when the
process has one (a worker, a test harness), else the running daemon's (its daemon file).
With none, or when it does not answer, every call raises ``BackendUnavailable`` saying so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from mlops_lite.records import FlowLogRecord, FlowRunRecord


class FlowsAPI(Protocol):
    def runs(self, *, limit: int = 50, flow: str | None = None) -> list[FlowRunRecord]:
        """The newest flow runs due by now (of the flow named ``flow`` only, when given), newest
        first by when each was due: running, finished and late ones; those a schedule made
        for later are left out."""

    def logs(self, flow_run_id: str, *, after: datetime | None = None, limit: int = 500) -> list[FlowLogRecord]:
        """A flow run's log lines, oldest first: those at or after ``after`` when given (so a
        tail asks again from the last time it saw; lines at that instant come again)."""
