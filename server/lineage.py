"""Lineage routes: what served a deployment at a time, and one logged prediction
traced back to it. Mounted under /v1 with its bearer guard; viewer role."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from mlops_lite.records import DeploymentLineage, PredictionTrace
from server.context import platform as _platform


@get("/deployments/{name:str}/lineage", opt={"permission": "viewer", "deployment_param": "name"}, sync_to_thread=True)
def deployment_lineage(request: Request[Any, Any, Any], name: str, at: str | None = None) -> DeploymentLineage:
    """The revision in force at ``at`` (ISO time; default now), each slot's version with
    its run, data commits, gates, decisions and approvals, and the revisions up to then."""
    return _platform(request).deployments.lineage(name, at)


@get("/predictions/{request_id:str}/trace", opt={"permission": "viewer"}, sync_to_thread=True)
def prediction_trace(request: Request[Any, Any, Any], request_id: str) -> PredictionTrace:
    """One logged request: slot, version, time, input rows, answers, feedback, and the
    deployment's lineage at that time."""
    return _platform(request).monitoring.trace(request_id)


LINEAGE_ROUTES = [deployment_lineage, prediction_trace]
