"""Monitoring routes: alerts (list, acknowledge) and one monitoring window on demand.
Mounted under /v1 with its bearer guard."""

from __future__ import annotations

from typing import Annotated, Any

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
                subject: str | None = None, limit: int = 100) -> list[AlertRecord]:
    """Alerts, newest first, with their evidence (window, figures); ``?state=firing`` filters."""
    return _platform(request).monitoring.alerts.list(state=alert_state, subject=subject, limit=limit)


@post("/alerts/{alert_id:str}/acknowledge", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def acknowledge(request: Request[Any, Any, Any], alert_id: str) -> AlertRecord:
    return _platform(request).monitoring.alerts.acknowledge(alert_id, f"token:{request.state.identity.name}")


@post("/deployments/{name:str}/monitor", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def monitor(request: Request[Any, Any, Any], name: str) -> dict[str, Any]:
    """Check one window of the deployment now: drift, quality, latency, alert transitions."""
    from mlops_lite.monitoring.loop import check_deployment

    check = check_deployment(_platform(request), name)
    return {"report": check.report.as_dict(), "retrain": check.retrain, "reason": check.reason,
            "transitions": [{"rule": t.alert.rule, "state": t.state, "value": t.alert.value}
                            for t in check.transitions]}


MONITORING_ROUTES = [list_alerts, acknowledge, monitor]
