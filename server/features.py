"""Feature store routes (``platform.features``, docs/features.md): definitions applied and
read, feature services and their versions, point-in-time training sets (the record and its
Parquet table), materialization, online lookups (``POST /v1/features/{service}``), the skew
check and the audited override of a deployment's feature service version. Mounted under
/v1 with its bearer guard; reads need viewer, writes operator, lookups predictor (as
predict), the override admin. Entity-keyed predictions are app.py's predict route.

A feature service may not be named like a static segment of these paths (``apply``,
``materialize``, ...): ``FeatureService.validate`` refuses it, so ``POST /v1/features/apply``
is never a lookup."""

from __future__ import annotations

import io
from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post
from litestar.params import Parameter

from mlops_lite.features.definitions import Definitions
from mlops_lite.features.records import (
    ApplyResult,
    FeatureDefinitionRecord,
    FeatureOverrideRecord,
    FeatureServiceRecord,
    MaterializationRecord,
    OnlineFeatures,
    SkewReport,
    TrainingSetRecord,
)
from server.context import actor as _actor
from server.context import platform as _platform

PARQUET = "application/vnd.apache.parquet"


class ApplyRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The whole set, as ``Definitions.specs()`` writes it; validated against the sources at ``ref``."""

    definitions: list[dict[str, Any]]
    ref: str = "main"
    dry_run: bool = False


class TrainingSetRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The entity rows: table ``path`` of ``repository``, read at ``ref`` with the features."""

    repository: str
    path: str
    ref: str = "main"
    timestamp_field: str = "event_timestamp"


class MaterializeRequest(msgspec.Struct, forbid_unknown_fields=True):
    views: list[str] | None = None  # null: every current view
    ref: str = "main"
    mode: str = "incremental"
    as_of: str | None = None  # ISO 8601; null: now


class OnlineRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Entity rows (join keys, and the request fields on-demand features read)."""

    entities: list[dict[str, Any]]
    at: str | None = None  # ISO 8601; null: now


class SkewRequest(msgspec.Struct, forbid_unknown_fields=True):
    sample: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 200
    since: str | None = None


class AllowRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


# --- definitions ---------------------------------------------------------------------------


@get("/features", opt={"permission": "viewer"}, sync_to_thread=True)
def list_definitions(request: Request[Any, Any, Any],
                     kind: Annotated[str | None, Parameter(description="entity | feature_view | on_demand | "
                                                           "feature_service")] = None
                     ) -> list[FeatureDefinitionRecord]:
    """The current definitions (of one kind)."""
    return _platform(request).features.list(kind)


@get("/features/{kind:str}/{name:str}/history", opt={"permission": "viewer"}, sync_to_thread=True)
def definition_history(request: Request[Any, Any, Any], kind: str, name: str) -> list[FeatureDefinitionRecord]:
    """Every version of one definition, newest first."""
    return _platform(request).features.history(kind, name)


@post("/features/apply", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def apply(request: Request[Any, Any, Any], data: ApplyRequest) -> ApplyResult:
    """Validate the whole set against its sources at ``ref`` and make it current (a dry run
    says what would change and changes nothing)."""
    definitions = Definitions.from_specs(data.definitions)
    return _platform(request).features.apply(definitions, ref=data.ref, dry_run=data.dry_run, actor=_actor(request))


# --- feature services ------------------------------------------------------------------------


@get("/features/services", opt={"permission": "viewer"}, sync_to_thread=True)
def services(request: Request[Any, Any, Any]) -> list[str]:
    return _platform(request).features.services()


@get("/features/services/{name:str}", opt={"permission": "viewer"}, sync_to_thread=True)
def service(request: Request[Any, Any, Any], name: str,
            version: Annotated[str | None, Parameter(description="a version it had; default the current")] = None
            ) -> FeatureServiceRecord:
    return _platform(request).features.service(name, version)


@get("/features/services/{name:str}/versions", opt={"permission": "viewer"}, sync_to_thread=True)
def versions(request: Request[Any, Any, Any], name: str) -> list[str]:
    """The service's versions, newest first."""
    return _platform(request).features.versions(name)


# --- training sets -------------------------------------------------------------------------


@post("/features/services/{service:str}/training-sets", opt={"permission": "operator"}, status_code=201,
      sync_to_thread=True)
def training_set(request: Request[Any, Any, Any], service: str, data: TrainingSetRequest) -> TrainingSetRecord:
    """A stored point-in-time training set of the current service version, pinned at the
    data commits ``ref`` names now."""
    return _platform(request).features.training_set(service, repository=data.repository, path=data.path,
                                                     ref=data.ref, timestamp_field=data.timestamp_field,
                                                     actor=_actor(request))


@get("/features/training-sets", opt={"permission": "viewer"}, sync_to_thread=True)
def training_sets(request: Request[Any, Any, Any],
                  service: Annotated[str | None, Parameter(description="only this service's")] = None
                  ) -> list[TrainingSetRecord]:
    return _platform(request).features.training_sets(service)


@get("/features/training-sets/{training_set_id:str}", opt={"permission": "viewer"}, sync_to_thread=True)
def get_training_set(request: Request[Any, Any, Any], training_set_id: str) -> TrainingSetRecord:
    return _platform(request).features.get_training_set(training_set_id)


@get("/features/training-sets/{training_set_id:str}/parquet", opt={"permission": "operator"}, sync_to_thread=True,
     media_type=PARQUET)
def training_set_parquet(request: Request[Any, Any, Any], training_set_id: str) -> Response[bytes]:
    """The training set's table as Parquet (what a remote ``train_features`` trains on)."""
    import pyarrow.parquet as pq

    table = _platform(request).features.training_set_table(training_set_id)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return Response(sink.getvalue(), media_type=PARQUET)


# --- materialization and lookups --------------------------------------------------------------


@post("/features/materialize", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def materialize(request: Request[Any, Any, Any], data: MaterializeRequest) -> list[MaterializationRecord]:
    """Write the latest row per key of each view (default every current view) to the online store."""
    return _platform(request).features.materialize(data.views, ref=data.ref, mode=data.mode, as_of=data.as_of,
                                                   actor=_actor(request))


@get("/features/materializations", opt={"permission": "viewer"}, sync_to_thread=True)
def materializations(request: Request[Any, Any, Any],
                     view: Annotated[str | None, Parameter(description="only this view's")] = None,
                     limit: Annotated[int, Parameter(ge=1, le=10000, description="at most this many")] = 50
                     ) -> list[MaterializationRecord]:
    """The materializations, newest first."""
    return _platform(request).features.materializations(view, limit=limit)


@post("/features/{service:str}", opt={"permission": "predictor"}, status_code=200)
async def online(request: Request[Any, Any, Any], service: str, data: OnlineRequest) -> OnlineFeatures:
    """The service's features for each entity row, from the online store, with a status per
    value (present, expired, missing); the served vectors are logged for the skew check."""
    features = _platform(request).features
    found: OnlineFeatures = await anyio.to_thread.run_sync(
        lambda: features.online(service, data.entities, at=data.at))
    return found


@post("/features/services/{service:str}/skew", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def skew(request: Request[Any, Any, Any], service: str, data: SkewRequest) -> SkewReport:
    """Recompute a sample of the served vectors point-in-time and compare value by value
    (raises or resolves the ``feature-skew`` alert)."""
    return _platform(request).features.check_skew(service, sample=data.sample, since=data.since)


@post("/deployments/{name:str}/features/allow", opt={"permission": "admin", "deployment_param": "name"},
      status_code=200, sync_to_thread=True)
def allow(request: Request[Any, Any, Any], name: str, data: AllowRequest) -> FeatureOverrideRecord:
    """Let the deployment serve its version although its feature service version is no
    longer current (audited as the caller)."""
    return _platform(request).features.allow(name, reason=data.reason, actor=_actor(request))


FEATURE_ROUTES = [list_definitions, definition_history, apply, services, service, versions, training_set,
                  training_sets, get_training_set, training_set_parquet, materialize, materializations, online, skew,
                  allow]
