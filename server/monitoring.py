"""Monitoring and closed-loop routes: alerts (list, acknowledge), one monitoring window
on demand, and the loop's steps (``platform.loop``) that a flow run on a Prefect worker
calls over HTTP. Mounted under /v1 with its bearer guard."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import Parameter

from mlops_lite import Platform
from mlops_lite.monitoring.alerts import AlertRecord


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


@get("/alerts", opt={"permission": "viewer"}, sync_to_thread=True)
def list_alerts(request: Request[Any, Any, Any],
                alert_state: Annotated[str | None, Parameter(query="state")] = None,
                subject: str | None = None,
                limit: Annotated[int, Parameter(ge=1, le=10_000, description="alerts to answer, newest first")] = 100,
                ) -> list[AlertRecord]:
    """Alerts, newest first, with their evidence (window, figures); ``?state=firing`` filters."""
    return _platform(request).monitoring.alerts.list(state=alert_state, subject=subject, limit=limit)


@post("/alerts/{alert_id:str}/acknowledge", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def acknowledge(request: Request[Any, Any, Any], alert_id: str) -> AlertRecord:
    return _platform(request).monitoring.alerts.acknowledge(alert_id, f"token:{request.state.identity.name}")


class MonitorRequest(msgspec.Struct, forbid_unknown_fields=True):
    since: str | None = None
    debounce_s: Annotated[float, msgspec.Meta(ge=0)] = 600.0


class GateRequest(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    version: str
    since: str | None = None
    target: str = "label"
    # At least one row: with none required, an empty window reached the scorer and failed.
    min_rows: Annotated[int, msgspec.Meta(ge=1)] = 30


class BlockRequest(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    version: str
    reasons: list[str]
    scores: dict[str, Any] = {}


class CanaryRequest(msgspec.Struct, forbid_unknown_fields=True):
    since: str
    min_requests: Annotated[int, msgspec.Meta(ge=1)] = 20


class FinishRequest(msgspec.Struct, forbid_unknown_fields=True):
    decision: str
    reasons: list[str] = []


class FlowFinished(msgspec.Struct, forbid_unknown_fields=True):
    failed: bool
    details: dict[str, Any] = {}


@post("/deployments/{name:str}/monitor", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def monitor(request: Request[Any, Any, Any], name: str, data: MonitorRequest | None = None) -> dict[str, Any]:
    """Check one window of the deployment now: drift, quality, latency, alert transitions."""
    data = data or MonitorRequest()
    return _platform(request).loop.check(name, since=data.since, debounce_s=data.debounce_s)


@post("/deployments/{name:str}/gate", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def gate(request: Request[Any, Any, Any], name: str, data: GateRequest) -> dict[str, Any]:
    """A candidate through the policy gates and no regression on fresh labelled rows."""
    return _platform(request).loop.gate(name, data.model, data.version, since=data.since, target=data.target,
                                        min_rows=data.min_rows)


@post("/deployments/{name:str}/block", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def block(request: Request[Any, Any, Any], name: str, data: BlockRequest) -> dict[str, Any]:
    _platform(request).loop.block(name, data.model, data.version, data.reasons, data.scores)
    return {"blocked": True}


@post("/deployments/{name:str}/judge-canary", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def judge(request: Request[Any, Any, Any], name: str, data: CanaryRequest) -> dict[str, Any]:
    """The canary against the primary since ``since``: promote, rollback or wait."""
    return _platform(request).loop.judge_canary(name, since=data.since, min_requests=data.min_requests)


@post("/deployments/{name:str}/finish", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def finish(request: Request[Any, Any, Any], name: str, data: FinishRequest) -> dict[str, Any]:
    return _platform(request).loop.finish(name, data.decision, data.reasons)


@post("/flows/{flow:str}/finished", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def flow_finished(request: Request[Any, Any, Any], flow: str, data: FlowFinished) -> dict[str, Any]:
    """A flow run's end: a failure fires the ``flow-failed`` alert, a clean run resolves it."""
    _platform(request).loop.flow_finished(flow, failed=data.failed, details=data.details)
    return {"flow": flow, "failed": data.failed}


MONITORING_ROUTES = [list_alerts, acknowledge, monitor, gate, block, judge, finish, flow_finished]
