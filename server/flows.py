"""Flow run routes: the Prefect server's flow runs and their logs, read by the daemon for
a caller with a token (Prefect's own API listens on loopback behind the home's auth
string, which no client is given). Mounted under /v1 with its bearer guard.

Roles, and why:
- ``GET /flows/runs``: viewer. Which flows ran, when, and how they ended is what the
  Prefect UI shows anyone who can open it; the same as the tracking runs a viewer reads.
- ``GET /flows/runs/{id}/logs``: operator. Log lines carry what a flow did with the data
  and models (paths, figures, errors with their details): an operator's evidence, as the
  audit events are.

With no Prefect server (``up --no-prefect``, or none running), both answer 503 saying so."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import Parameter

from mlops_lite.clock import parse_time
from mlops_lite.flow_runs import MAX_LOG_LINES, MAX_RUNS
from mlops_lite.records import FlowLogRecord, FlowRunRecord
from server.context import platform as _platform


@get("/flows/runs", opt={"permission": "viewer"}, sync_to_thread=True)
def flow_runs(request: Request[Any, Any, Any],
              limit: Annotated[int, Parameter(ge=0, le=MAX_RUNS, description="runs to answer, newest first")] = 50,
              flow: Annotated[str | None, Parameter(min_length=1, description="only the runs of this flow, "
                                                    "e.g. monitor")] = None) -> list[FlowRunRecord]:
    """The newest flow runs, newest first."""
    return _platform(request).flows.runs(limit=limit, flow=flow)


@get("/flows/runs/{flow_run_id:str}/logs", opt={"permission": "operator"}, sync_to_thread=True)
def flow_run_logs(request: Request[Any, Any, Any], flow_run_id: str,
                  after: Annotated[str | None, Parameter(description="only lines at or after this ISO 8601 time "
                                                         "(UTC if no offset)",
                                                         schema_extra={"format": "date-time"})] = None,
                  limit: Annotated[int, Parameter(ge=0, le=MAX_LOG_LINES, description="lines to answer, oldest "
                                                  "first")] = 500) -> list[FlowLogRecord]:
    """A flow run's log lines, oldest first."""
    moment = None if after is None else parse_time(after, "after")
    return _platform(request).flows.logs(flow_run_id, after=moment, limit=limit)


FLOW_ROUTES = [flow_runs, flow_run_logs]
