"""Policy routes: the effective policy of a model, gates measured, decisions stored, admin
overrides, and the approval workflow. Mounted under /v1 with its bearer guard; the rules
(four-eyes, roles, the gated aliases) are the core's (mlops_lite/policy), the routes only
say who asks."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post

from mlops_lite.policy import PolicySpec
from mlops_lite.records import ApprovalRequest, GateResult, PolicyDecision
from server.context import platform as _platform


class PromotionRequest(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    version: str
    alias: str = "production"
    comment: str = ""


class CommentRequest(msgspec.Struct, forbid_unknown_fields=True):
    comment: str = ""


class ApproveRequest(msgspec.Struct, forbid_unknown_fields=True):
    comment: str = ""
    complete: bool = False


class DecideRequest(msgspec.Struct, forbid_unknown_fields=True):
    alias: str = "production"


class OverrideRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str
    alias: str = "production"
    move: bool = True


@get("/models/{model:str}/policy", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def effective_policy(request: Request[Any, Any, Any], model: str) -> PolicySpec:
    """The model's effective policy (base <- default.toml <- <model>.toml)."""
    return _platform(request).policy.load(model)


@get("/models/{model:str}/versions/{version:str}/gates", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def evaluate(request: Request[Any, Any, Any], model: str, version: str, alias: str = "production",
             baseline: str | None = None) -> list[GateResult]:
    """Every gate measured now for ``model@version`` going to ``alias``; nothing is stored.
    ``baseline``: a version of the same model the regression gate compares against."""
    platform = _platform(request)
    return platform.policy.evaluate(platform.registry.get_version(model, version), alias=alias, baseline=baseline)


@post("/models/{model:str}/versions/{version:str}/decisions", opt={"permission": "operator", "model_param": "model"}, status_code=201,
      sync_to_thread=True)
def decide(request: Request[Any, Any, Any], model: str, version: str, data: DecideRequest) -> PolicyDecision:
    """Measure every gate and store the decision (passed or not)."""
    return _platform(request).policy.decide(model, version, alias=data.alias, actor=request.state.identity)


@post("/models/{model:str}/versions/{version:str}/override", opt={"permission": "admin", "model_param": "model"}, status_code=201,
      sync_to_thread=True)
def override(request: Request[Any, Any, Any], model: str, version: str, data: OverrideRequest) -> PolicyDecision:
    """An admin override, with its reason; the alias moves unless ``move`` is false."""
    return _platform(request).policy.override(model, version, alias=data.alias, reason=data.reason,
                                              identity=request.state.identity, move=data.move)


@get("/models/{model:str}/decisions", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def decisions(request: Request[Any, Any, Any], model: str, version: str | None = None,
              alias: str | None = None) -> list[PolicyDecision]:
    return _platform(request).policy.decisions(model, version, alias=alias)


@get("/models/{model:str}/versions/{version:str}/decisions/latest", opt={"permission": "viewer", "model_param": "model"},
     sync_to_thread=True)
def latest_decision(request: Request[Any, Any, Any], model: str, version: str,
                    alias: str = "production") -> PolicyDecision | None:
    return _platform(request).policy.latest_decision(model, version, alias=alias)


@get("/decisions/{decision_id:str}", opt={"permission": "viewer"}, sync_to_thread=True)
def get_decision(request: Request[Any, Any, Any], decision_id: str) -> PolicyDecision:
    return _platform(request).policy.get_decision(decision_id)


@post("/approvals", opt={"permission": "operator", "resource": "body"}, status_code=201, sync_to_thread=True)
def request_promotion(request: Request[Any, Any, Any], data: PromotionRequest) -> ApprovalRequest:
    return _platform(request).policy.request_promotion(data.model, data.version, alias=data.alias,
                                                       requested_by=request.state.identity, comment=data.comment)


@get("/approvals", opt={"permission": "viewer"}, sync_to_thread=True)
def list_requests(request: Request[Any, Any, Any], model: str | None = None,
                  status: str | None = None) -> list[ApprovalRequest]:
    return _platform(request).policy.requests(model, status)


@get("/approvals/{request_id:str}", opt={"permission": "viewer"}, sync_to_thread=True)
def get_request(request: Request[Any, Any, Any], request_id: str) -> ApprovalRequest:
    return _platform(request).policy.get_request(request_id)


@post("/approvals/{request_id:str}/approve", opt={"permission": "approver", "resource": "body"}, status_code=200, sync_to_thread=True)
def approve(request: Request[Any, Any, Any], request_id: str, data: ApproveRequest) -> ApprovalRequest:
    return _platform(request).policy.approve(request_id, identity=request.state.identity, comment=data.comment,
                                             complete=data.complete)


@post("/approvals/{request_id:str}/reject", opt={"permission": "approver", "resource": "body"}, status_code=200, sync_to_thread=True)
def reject(request: Request[Any, Any, Any], request_id: str, data: CommentRequest) -> ApprovalRequest:
    return _platform(request).policy.reject(request_id, identity=request.state.identity, comment=data.comment)


@post("/approvals/{request_id:str}/complete", opt={"permission": "operator", "resource": "body"}, status_code=200, sync_to_thread=True)
def complete(request: Request[Any, Any, Any], request_id: str, data: CommentRequest | None = None) -> ApprovalRequest:
    """Promote once the request has its approvals and every gate passes (412 otherwise)."""
    return _platform(request).policy.complete(request_id, identity=request.state.identity,
                                              comment=data.comment if data is not None else "")


POLICY_ROUTES = [effective_policy, evaluate, decide, override, decisions, latest_decision, get_decision,
                 request_promotion, list_requests, get_request, approve, reject, complete]
