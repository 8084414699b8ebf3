"""Registry routes: models, versions (register, read, latest, the ONNX bytes), artifacts by
digest, aliases read and deleted, their history and where they pointed at a time,
comparison, lineage and model cards. Mounted under /v1 with its bearer guard; reads need
viewer, writes operator. Moving and rolling back an alias are app.py's routes (the gated
alias is decided by the core; the route only says who asks)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import Parameter

import mlops_lite
from mlops_lite.clock import parse_time
from mlops_lite.records import AliasEventRecord, Lineage, ModelRecord, ModelVersionRecord, VersionComparison
from server.context import actor as _actor
from server.context import platform as _platform

OCTET_STREAM = "application/octet-stream"






class RegisterRequest(msgspec.Struct, forbid_unknown_fields=True):
    run_id: str
    version: str | None = None
    description: str = ""


class DeleteAliasRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``expected``: delete only if the alias still points at this version (409 otherwise);
    left out, whatever it points at."""

    reason: str
    expected: str | msgspec.UnsetType | None = msgspec.UNSET


class ModelCardRequest(msgspec.Struct, forbid_unknown_fields=True):
    card: dict[str, Any]


# --- models and versions ----------------------------------------------------------------------


@get("/models", opt={"permission": "viewer"}, sync_to_thread=True)
def list_models(request: Request[Any, Any, Any]) -> list[ModelRecord]:
    return _platform(request).registry.list_models()


@get("/versions", opt={"permission": "viewer"}, sync_to_thread=True)
def list_all_versions(request: Request[Any, Any, Any],
                      model: Annotated[str | None, Parameter(description="only this model's versions")] = None
                      ) -> list[ModelVersionRecord]:
    """Versions by model and semantic version ([] for a model with none, as the facet answers)."""
    return _platform(request).registry.list_versions(model)


@get("/models/{model:str}/versions", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def list_versions(request: Request[Any, Any, Any], model: str) -> list[ModelVersionRecord]:
    """One model's versions; 404 for a model with none."""
    versions = _platform(request).registry.list_versions(model)
    if not versions:
        raise mlops_lite.NotFound(f"model {model!r} has no versions")
    return versions


@post("/models/{model:str}/versions", opt={"permission": "operator", "model_param": "model"}, status_code=201, sync_to_thread=True)
def register_version(request: Request[Any, Any, Any], model: str, data: RegisterRequest) -> ModelVersionRecord:
    """Register a finished run's ONNX model; the same digest answers its existing version."""
    return _platform(request).registry.register_from_run(model, data.run_id, version=data.version,
                                                         description=data.description, actor=_actor(request))


@get("/models/{model:str}/latest", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def latest_version(request: Request[Any, Any, Any], model: str) -> ModelVersionRecord:
    """The highest semantic version of the model."""
    return _platform(request).registry.latest_version(model)


@get("/models/{model:str}/versions/{version:str}", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def get_version(request: Request[Any, Any, Any], model: str, version: str) -> ModelVersionRecord:
    return _platform(request).registry.get_version(model, version)


@get("/models/{model:str}/versions/{version:str}/onnx", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True,
     media_type=OCTET_STREAM)
def model_bytes(request: Request[Any, Any, Any], model: str, version: str) -> Response[bytes]:
    """The version's ONNX file, verified against its digest."""
    return Response(_platform(request).registry.model_bytes(model, version), media_type=OCTET_STREAM)


@get("/artifacts/{digest:str}", opt={"permission": "viewer"}, sync_to_thread=True, media_type=OCTET_STREAM)
def artifact_bytes(request: Request[Any, Any, Any], digest: str) -> Response[bytes]:
    """An ONNX file by its sha256 digest, verified against it."""
    return Response(_platform(request).registry.artifact_bytes(digest), media_type=OCTET_STREAM)


@get("/models/{model:str}/compare", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def compare_versions(request: Request[Any, Any, Any], model: str,
                     a: Annotated[str, Parameter(description="the version compared against")],
                     b: Annotated[str, Parameter(description="the version compared")]) -> VersionComparison:
    """``b`` against ``a``: metric deltas (b - a), signature diff, data commits, params changed."""
    return _platform(request).registry.compare_versions(model, a, b)


@get("/models/{model:str}/lineage/{ref:str}", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def lineage(request: Request[Any, Any, Any], model: str, ref: str,
            at: Annotated[str | None, Parameter(description="where an alias pointed at this ISO 8601 time (UTC "
                                                "if no offset)", schema_extra={"format": "date-time"})] = None
            ) -> Lineage:
    moment = None if at is None else parse_time(at, "at")
    return _platform(request).registry.lineage(model, ref, at=moment)


@get("/models/{model:str}/versions/{version:str}/card", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def model_card(request: Request[Any, Any, Any], model: str, version: str) -> dict[str, Any]:
    """The version's model card; {} when none was set."""
    return _platform(request).registry.model_card(model, version)


@put("/models/{model:str}/versions/{version:str}/card", opt={"permission": "operator", "model_param": "model"}, sync_to_thread=True)
def set_model_card(request: Request[Any, Any, Any], model: str, version: str,
                   data: ModelCardRequest) -> dict[str, Any]:
    """Store the version's model card (intended_use, limitations, evaluation, fairness),
    replacing any earlier one; audited."""
    return _platform(request).registry.set_model_card(model, version, data.card, actor=_actor(request))


# --- aliases (reads, history, deletion) -------------------------------------------------------


@get("/models/{model:str}/aliases/{alias:str}", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def get_alias(request: Request[Any, Any, Any], model: str, alias: str) -> ModelVersionRecord:
    """The version the alias points to now; 404 when it is not set."""
    return _platform(request).registry.get_alias(model, alias)


@get("/models/{model:str}/aliases/{alias:str}/at", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def alias_at(request: Request[Any, Any, Any], model: str, alias: str,
             when: Annotated[str, Parameter(description="an ISO 8601 time (UTC if no offset)",
                                            schema_extra={"format": "date-time"})]
             ) -> ModelVersionRecord | None:
    """The version the alias pointed to at ``when``; null when it pointed nowhere then."""
    return _platform(request).registry.alias_at(model, alias, parse_time(when, "when"))


@get("/models/{model:str}/alias-history", opt={"permission": "viewer", "model_param": "model"}, sync_to_thread=True)
def alias_history(request: Request[Any, Any, Any], model: str,
                  alias: Annotated[str | None, Parameter(description="only this alias's moves")] = None
                  ) -> list[AliasEventRecord]:
    """Every move of the model's aliases (or of one), oldest first: who, when, from, to, why."""
    return _platform(request).registry.alias_history(model, alias)


@delete("/models/{model:str}/aliases/{alias:str}", opt={"permission": "operator", "model_param": "model"}, status_code=200,
        sync_to_thread=True)
def delete_alias(request: Request[Any, Any, Any], model: str, alias: str,
                 data: DeleteAliasRequest) -> AliasEventRecord:
    """Unset the alias (its history stays); answers the deletion's history event."""
    registry = _platform(request).registry
    if data.expected is msgspec.UNSET:
        return registry.delete_alias(model, alias, reason=data.reason, actor=_actor(request))
    return registry.delete_alias(model, alias, reason=data.reason, actor=_actor(request), expected=data.expected)


REGISTRY_ROUTES = [list_models, list_all_versions, list_versions, register_version, latest_version, get_version,
                   model_bytes, artifact_bytes, compare_versions, lineage, model_card, set_model_card, get_alias,
                   alias_at, alias_history, delete_alias]
