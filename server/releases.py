"""Release routes: canary, blue-green, shadow, promote, rollback, and the routing feed
that stateless serving processes poll. Mounted under /v1 with its bearer guard."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post

from mlops_lite.records import DeploymentRecord, DeploymentRevisionRecord
from mlops_lite.security.roles import require
from server.context import actor as _actor
from server.context import identity as _identity
from server.context import platform as _platform


class VersionRequest(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    version: str
    reason: str = ""


class CanaryRequest(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    version: str
    weight: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.1
    reason: str = ""


class ChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    to_revision: Annotated[int, msgspec.Meta(ge=1)] | None = None
    reason: str = ""






@get("/deployments/{name:str}", opt={"permission": "viewer", "deployment_param": "name"}, sync_to_thread=True)
def get_deployment(request: Request[Any, Any, Any], name: str) -> DeploymentRecord:
    return _platform(request).deployments.get(name)


@get("/deployments/{name:str}/revisions", opt={"permission": "viewer", "deployment_param": "name"}, sync_to_thread=True)
def revisions(request: Request[Any, Any, Any], name: str) -> list[DeploymentRevisionRecord]:
    """Every revision of the deployment, newest first."""
    return _platform(request).deployments.revisions(name)


@post("/deployments/{name:str}/canary", opt={"permission": "operator", "deployment_param": "name", "resource": "body"}, status_code=200, sync_to_thread=True)
def canary(request: Request[Any, Any, Any], name: str, data: CanaryRequest) -> DeploymentRecord:
    """Send ``weight`` of the traffic to a candidate; it passes the policy gates first (412)."""
    require(_identity(request), "operator", model=data.model)
    return _platform(request).deployments.canary(name, data.model, data.version, weight=data.weight,
                                                 actor=_actor(request), reason=data.reason)


@post("/deployments/{name:str}/shadow", opt={"permission": "operator", "deployment_param": "name", "resource": "body"}, status_code=200, sync_to_thread=True)
def shadow(request: Request[Any, Any, Any], name: str, data: VersionRequest) -> DeploymentRecord:
    """Mirror the traffic to a candidate that answers nobody; both answers are logged."""
    require(_identity(request), "operator", model=data.model)
    return _platform(request).deployments.shadow(name, data.model, data.version, actor=_actor(request),
                                                 reason=data.reason)


@post("/deployments/{name:str}/stage", opt={"permission": "operator", "deployment_param": "name", "resource": "body"}, status_code=200, sync_to_thread=True)
def stage(request: Request[Any, Any, Any], name: str, data: VersionRequest) -> DeploymentRecord:
    """Blue-green: load a version into the standby slot."""
    require(_identity(request), "operator", model=data.model)
    return _platform(request).deployments.stage(name, data.model, data.version, actor=_actor(request),
                                                reason=data.reason)


@post("/deployments/{name:str}/switch", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def switch(request: Request[Any, Any, Any], name: str, data: ChangeRequest | None = None) -> DeploymentRecord:
    """Blue-green: swap the live and standby slots at once (again to switch back)."""
    return _platform(request).deployments.switch(name, actor=_actor(request), reason=data.reason if data else "")


@post("/deployments/{name:str}/promote", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def promote(request: Request[Any, Any, Any], name: str, data: ChangeRequest | None = None) -> DeploymentRecord:
    """The candidate becomes the only version, through the policy gates."""
    return _platform(request).deployments.promote(name, actor=_actor(request), reason=data.reason if data else "")


@post("/deployments/{name:str}/rollback", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def rollback(request: Request[Any, Any, Any], name: str, data: RollbackRequest | None = None) -> DeploymentRecord:
    """Restore an earlier revision (the one before by default) as a new revision."""
    data = data or RollbackRequest()
    return _platform(request).deployments.rollback(name, to_revision=data.to_revision, actor=_actor(request),
                                                   reason=data.reason)


@get("/routing", opt={"permission": "predictor"}, sync_to_thread=True)
def routing(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """What a stateless serving process needs: every deployment and the signatures of
    the versions it serves, by digest. Serving processes poll this (see ``mlops-lite serve``)
    with a replica's service identity, role predictor: what a caller of predict may know."""
    deployments = _platform(request).deployments
    return {"deployments": [{"record": asdict(record), "signatures": deployments.signatures(record)}
                            for record in deployments.list()]}


RELEASE_ROUTES = [get_deployment, revisions, canary, shadow, stage, switch, promote, rollback, routing]
