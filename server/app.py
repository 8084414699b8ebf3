"""The HTTP API. Each route declares the role it needs in ``opt["permission"]``;
one guard checks the bearer token against it. Errors map to statuses in one place."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from types import EllipsisType
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Litestar, Request, Response, Router, get, post, put
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute

import mlops_lite
from mlops_lite import InvalidInput, MlopsLiteError, Platform, Unauthenticated
from mlops_lite.records import (
    DeploymentRecord,
    ModelVersionRecord,
    Prediction,
)
from mlops_lite.security.roles import require
from server.alerts import ALERT_ROUTES
from server.audit import AUDIT_ROUTES
from server.auth import authorize
from server.columnar import arrow_predict
from server.compliance import COMPLIANCE_ROUTES
from server.context import actor as _actor
from server.context import identity as _identity
from server.context import platform as _platform
from server.data import DATA_ROUTES
from server.features import FEATURE_ROUTES
from server.flows import FLOW_ROUTES
from server.hardening import BodyLimit, hide_home, metrics_open, security_headers
from server.inline import inline_ok
from server.keys import KEY_ROUTES
from server.lakefs import lakefs_router
from server.lineage import LINEAGE_ROUTES
from server.metrics import CONTENT_TYPE, Metrics
from server.monitoring import MONITORING_ROUTES
from server.oip import oip_router
from server.policy import POLICY_ROUTES
from server.privacy import PRIVACY_ROUTES
from server.registry import REGISTRY_ROUTES
from server.releases import RELEASE_ROUTES
from server.tokens import TOKEN_ROUTES
from server.tracking import TRACKING_ROUTES

log = logging.getLogger("mlops_lite.server")


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Named features per instance: ``{"instances": [{"income": 52000.0, ...}]}``; or, for a
    model trained from a feature service, entity rows whose features the feature store looks
    up: ``{"entities": [{"customer_id": 42}]}``. Exactly one of the two."""

    instances: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET
    key: str | None = None  # canary stickiness: one key always lands on the same version
    entities: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET


class DeployRequest(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    version: str
    reason: str = ""


class RecordRunRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A model trained elsewhere (a Prefect worker), recorded as one finished run;
    ``onnx`` is base64 in JSON."""

    name: str
    data_commit: str
    tags: dict[str, str]
    params: dict[str, Any]
    metrics: dict[str, float]
    onnx: bytes
    signature: dict[str, Any]
    experiment: str = "default"




@get("/health", opt={"permission": "predictor"}, sync_to_thread=False)
def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Liveness, the version of mlops-lite, and the execution providers in use."""
    return {"status": "ok", "version": mlops_lite.__version__,
            "providers": _platform(request).deployments.providers}


@get("/whoami", opt={"permission": "predictor"}, sync_to_thread=False)
def whoami(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The caller's identity and role (serving workers check tokens with it)."""
    identity = request.state.identity
    return {"name": identity.name, "role": identity.role, "token_id": identity.token_id, "kind": identity.kind,
            "principal": identity.principal, "issuer": identity.issuer, "subject": identity.subject,
            "grants": [{"role": g.role, "models": g.models, "repositories": g.repositories}
                       for g in identity.grants]}


@get("/status", opt={"permission": "viewer"}, sync_to_thread=True)
def status(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """What this server holds, in counts."""
    return _platform(request).summary()


@get("/deployments", opt={"permission": "viewer"}, sync_to_thread=True)
def list_deployments(request: Request[Any, Any, Any]) -> list[DeploymentRecord]:
    return _platform(request).deployments.list()


@put("/deployments/{name:str}", opt={"permission": "operator", "deployment_param": "name", "resource": "body"}, sync_to_thread=True)
def deploy(request: Request[Any, Any, Any], name: str, data: DeployRequest) -> DeploymentRecord:
    """Point a deployment at a model version; the policy gates must pass (412 otherwise)."""
    require(_identity(request), "operator", model=data.model)
    return _platform(request).deployments.deploy(name, data.model, data.version, reason=data.reason,
                                                 actor=_actor(request))


@post("/runs", opt={"permission": "operator", "body": "upload", "resource": "body"}, status_code=201, sync_to_thread=True)
def record_run(request: Request[Any, Any, Any], data: RecordRunRequest) -> dict[str, Any]:
    """Record a run trained by a worker: params, metrics, the ONNX model and its signature."""
    require(_identity(request), "operator", repository=data.tags.get("repository"))
    result = _platform(request).training.record(
        data.name, data_commit=data.data_commit, tags=data.tags, params=data.params, metrics=data.metrics,
        onnx=data.onnx, signature=data.signature, experiment=data.experiment, actor=_actor(request))
    return {"run": result.run, "model_digest": result.model_digest, "data_commit": result.data_commit}


@post("/deployments/{name:str}/predict", opt={"permission": "predictor", "body": "predict", "deployment_param": "name"}, status_code=200,
      before_request=arrow_predict)
async def predict(request: Request[Any, Any, Any], name: str, data: PredictRequest) -> Prediction:
    """Predict for named-feature instances, or for entity rows through the feature store;
    answers labels, probabilities, version and digest. An Arrow IPC stream body (one column
    per input) is answered by ``arrow_predict`` instead."""
    if not isinstance(data.entities, msgspec.UnsetType):
        return await _predict_entities(request, name, data)
    if isinstance(data.instances, msgspec.UnsetType):
        raise InvalidInput("the body names no instances", field="instances",
                           expected='{"instances": [{...}]}, or {"entities": [{"customer_id": 42}]}')
    instances = data.instances
    pipeline = _platform(request).deployments.pipeline
    metrics = request.app.state.metrics
    if inline_ok(pipeline, name, len(data.instances)):
        return pipeline.predict(name, instances, key=data.key, metrics=metrics)
    result: Prediction = await anyio.to_thread.run_sync(
        lambda: pipeline.predict(name, instances, key=data.key, metrics=metrics))
    return result


async def _predict_entities(request: Request[Any, Any, Any], name: str, data: PredictRequest) -> Prediction:
    """Entity rows: the features are looked up in the control plane's online store (a serving
    replica holds none, and says so), off the event loop."""
    if not isinstance(data.instances, msgspec.UnsetType):
        raise InvalidInput("the body names both instances and entities", field="entities",
                           expected="one of instances and entities")
    features = getattr(_platform(request), "features", None)
    if features is None:
        raise InvalidInput("entity-keyed predictions are answered by the control plane (mlops-lite up), "
                           "which holds the feature store; this serving replica takes instances",
                           field="entities", expected='{"instances": [{...}]} here')
    entities = data.entities
    result: Prediction = await anyio.to_thread.run_sync(lambda: features.predict(name, entities, key=data.key))
    return result


async def public_or_viewer(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """/metrics and /schema: open when ``public_metrics`` says so (by default, when the server
    binds a loopback address), else the bearer guard with the viewer role."""
    if not metrics_open(connection.app):
        await authorize(connection, handler)


@get("/metrics", sync_to_thread=False, include_in_schema=False, guards=[public_or_viewer],
     opt={"permission": "viewer"})
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[str]:
    """Prometheus text format; without a token only where ``public_metrics`` allows it."""
    platform = _platform(request)
    text = request.app.state.metrics.render(log_stats=platform.monitoring.stats(),
                                            providers=platform.deployments.providers,
                                            serving=platform.deployments.serving_stats())
    return Response(text, media_type=CONTENT_TYPE)


class AliasRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: str
    reason: str
    override: bool = False
    decision: str | None = None
    # The version the alias must still point to (null: must be unset); absent: no condition.
    expected: str | msgspec.UnsetType | None = msgspec.UNSET


class ReasonRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


@get("/models/{model:str}/aliases", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def list_aliases(request: Request[Any, Any, Any], model: str) -> dict[str, str]:
    return _platform(request).registry.aliases(model)


@put("/models/{model:str}/aliases/{alias:str}", opt={"permission": "operator", "model_param": "model"}, sync_to_thread=True)
def move_alias(request: Request[Any, Any, Any], model: str, alias: str, data: AliasRequest) -> ModelVersionRecord:
    """Move an alias. A gated alias (the policy's ``[aliases] gated``, default ``production``)
    moves only with a passing policy decision, made now or named by ``decision`` (412 with
    every gate otherwise), or as an admin override with a reason (audited as such). The
    registry enforces it; this route only says who asks."""
    platform = _platform(request)
    identity = request.state.identity
    if data.override:
        platform.policy.override(model, data.version, alias=alias, reason=data.reason, identity=identity)
        return platform.registry.get_alias(model, alias)
    expected: str | EllipsisType | None = ... if data.expected is msgspec.UNSET else data.expected
    return platform.registry.set_alias(model, alias, data.version, reason=data.reason, actor=_actor(request),
                                       expected=expected, decision=data.decision)


@post("/models/{model:str}/aliases/{alias:str}/rollback", opt={"permission": "operator", "model_param": "model"}, status_code=200,
      sync_to_thread=True)
def rollback_alias(request: Request[Any, Any, Any], model: str, alias: str, data: ReasonRequest) -> ModelVersionRecord:
    return _platform(request).registry.rollback(model, alias, reason=data.reason, actor=_actor(request))


def _error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    headers: dict[str, str] = {}
    if isinstance(exc, MlopsLiteError):
        status_code, body = exc.http_status, exc.to_dict()
        headers.update(getattr(exc, "headers", None) or {})  # Retry-After of a 429
        if isinstance(exc, Unauthenticated):
            headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, ValidationException):
        status_code, body = 422, _validation_body(exc)
    elif isinstance(exc, HTTPException) and "JSON is malformed" in str(exc.detail):
        status_code = 400
        body = {"code": "malformed_json", "message": f"the request body is not valid JSON ({exc.detail})",
                "field": "body", "expected": "a JSON object"}
    elif isinstance(exc, HTTPException):
        status_code = exc.status_code
        body = {"code": "http_error", "message": str(exc.detail)}
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status_code, body = 500, {"code": "internal_error", "message": "internal error; see the server log"}
    body["message"] = hide_home(str(body["message"]), _platform(request).settings.home)
    return Response(body, status_code=status_code, headers=headers)


_MSGSPEC_PATH = re.compile(r"at `\$\.?([^`]*)`")
_MSGSPEC_FIELD = re.compile(r"(?:required|unknown) field `([^`]+)`")


_MISSING_PARAMETER = re.compile(r"Missing required (\w+) parameter '([^']+)'")
_EXPECTED = re.compile(r"^Expected (.+?)(?:, got .*)?$")
PARAMETER_SOURCES = ("query", "path", "header", "cookie")


def _validation_body(exc: ValidationException) -> dict[str, Any]:
    """Litestar's validation of the body and parameters, said in our shape: which field,
    what was expected."""
    problems = [e for e in (exc.extra or []) if isinstance(e, dict)]
    message = str(problems[0].get("message", "")) if problems else str(exc.detail)
    if not problems and (match := _MISSING_PARAMETER.search(message)):
        source, name = match.groups()
        return {"code": "invalid_input", "message": f"the {source} parameter {name!r} is required",
                "field": name, "expected": f"a {source} parameter {name!r} (see /schema/openapi.json)"}
    if problems and problems[0].get("source") in PARAMETER_SOURCES:
        source = str(getattr(problems[0]["source"], "value", problems[0]["source"]))  # a ParamType
        name = str(problems[0].get("key", ""))
        wanted = match.group(1) if (match := _EXPECTED.match(message)) else message
        return {"code": "invalid_input", "message": f"the {source} parameter {name!r} is not valid: {message}",
                "field": name, "expected": f"{wanted} (the {source} parameter {name!r}; see /schema/openapi.json)"}
    if not problems or message in ("'data'", "data"):
        return {"code": "invalid_input", "message": "the request body is empty or missing",
                "field": "body", "expected": "a JSON object"}
    field = "body" if problems[0].get("key") in (None, "", "data") else str(problems[0]["key"])
    if match := _MSGSPEC_FIELD.search(message):
        field = match.group(1)
    elif match := _MSGSPEC_PATH.search(message):
        field = match.group(1) or "body"
    schema = "a body matching the schema at /schema/openapi.json"
    wanted = _EXPECTED.match(message.split(" - at `")[0])
    return {"code": "invalid_input", "message": message, "field": field,
            "expected": f"{wanted.group(1)} ({schema})" if wanted else schema}


async def _answer_options(request: Request[Any, Any, Any]) -> Response[None] | None:
    """OPTIONS answers 204 with every method of the path in ``Allow``.

    Litestar's automatic OPTIONS handler lists only the methods of the first handler
    registered on a path (GET /v1/runs, not POST), so the app answers it from the
    finished routing table instead."""
    if request.method != "OPTIONS":
        return None
    allow: dict[int, str] = request.app.state.allow
    methods = allow.get(id(request.route_handler))
    return None if methods is None else Response(None, status_code=204, headers={"Allow": methods})


def _allow_table(app: Litestar) -> dict[int, str]:
    return {id(handler): ", ".join(sorted(route.methods))
            for route in app.routes if isinstance(route, HTTPRoute)
            for handler in route.route_handlers if set(handler.http_methods) == {"OPTIONS"}}


def create_app(platform: Platform, *, cors_origins: Sequence[str] | None = None) -> Litestar:
    """The app over ``platform``; every /v1 route needs a bearer token, every /api/v1
    (lakeFS-compatible) route an access key. ``cors_origins`` (default: the platform's
    ``cors_origins`` setting, empty) are the browser origins allowed to call the API;
    with none, no CORS header is sent."""
    origins = list(platform.settings.cors_origins if cors_origins is None else cors_origins)
    api = Router(path="/v1", guards=[authorize],
                 route_handlers=[health, whoami, status, *REGISTRY_ROUTES, *TRACKING_ROUTES, record_run,
                                 *TOKEN_ROUTES, *KEY_ROUTES, *COMPLIANCE_ROUTES, *AUDIT_ROUTES,
                                 list_deployments, deploy, predict, list_aliases, move_alias, rollback_alias,
                                 *RELEASE_ROUTES, *MONITORING_ROUTES, *ALERT_ROUTES,
                                 *LINEAGE_ROUTES, *POLICY_ROUTES, *PRIVACY_ROUTES, *DATA_ROUTES,
                                 *FLOW_ROUTES, *FEATURE_ROUTES])
    # The lakeFS-compatible API has its own Basic-auth guard and lakeFS-shaped errors;
    # the /v1 bearer guard does not apply to it.
    app = Litestar(
        route_handlers=[api, lakefs_router(), oip_router(guards=[authorize]), metrics_endpoint],
        exception_handlers={Exception: _error},
        openapi_config=OpenAPIConfig(title="mlops-lite", version=mlops_lite.__version__,
                                     openapi_router=Router(path="/schema", route_handlers=[], guards=[public_or_viewer],
                                                           opt={"permission": "viewer"})),
        # A preflight carries no token: the CORS middleware answers it before routing and guards.
        cors_config=CORSConfig(allow_origins=origins, allow_credentials=False) if origins else None,
        before_request=_answer_options,
        # Body limits are BodyLimit's, per class of route (server/hardening.py), not Litestar's one size.
        request_max_body_size=None,
        middleware=[BodyLimit],
        before_send=[security_headers],
        debug=False,
        logging_config=None,
    )
    app.state.allow = _allow_table(app)
    app.state.platform = platform
    app.state.metrics = Metrics()
    return app
