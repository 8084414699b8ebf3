"""Tracking routes: experiments, runs recorded over HTTP (start, batches of buffered
params and metrics, artifacts, end), and reads (runs, metric history, comparison,
read-only SQL). Mounted under /v1 with its bearer guard; reads need viewer, writes operator.

A client's run handle (``mlops_lite/client/tracking.py``) buffers points as the local one
does and sends each batch in one request, written in one transaction by a handle on the
run here. Names a user types freely (experiments, metric keys, artifact names: any text,
'/' included) travel as query parameters, never as path segments.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, BinaryIO, TypeVar, cast

import anyio.to_thread
import msgspec
from litestar import Request, Response, get, post, put
from litestar.params import Parameter

from mlops_lite import InvalidInput
from mlops_lite.records import RunRecord
from mlops_lite.security.audit import statement_summary
from mlops_lite.tracking import ActiveRun
from mlops_lite.tracking.provenance import Provenance
from mlops_lite.tracking.records import ExperimentRecord, MetricPoint, RunComparison
from server.audit import record_read
from server.columnar import arrow_stream
from server.context import actor as _actor
from server.context import platform as _platform
from server.hardening import StreamedBody

MAX_LIMIT = 10_000  # the most runs one list answers
MAX_SQL_SECONDS = 86_400.0  # the longest time limit a query may ask for
DEFAULT_SQL_ROWS = 1000  # the rows /v1/sql answers when the body does not say
_N = TypeVar("_N", int, float)
OCTET_STREAM = "application/octet-stream"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A metric point's time in microseconds since the epoch, bounded to years 1-9999.
_MICROS = (-62_135_596_800_000_000, 253_402_300_799_999_999)






# --- wire shapes ------------------------------------------------------------------------------


class CreateExperimentRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str = ""
    tags: dict[str, Any] = {}
    exist_ok: bool = True


class StartRunRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    experiment: str = "default"
    data_commits: list[str] = []
    tags: dict[str, Any] = {}
    # The caller's code version, environment, pid and host (``provenance.collect`` where its
    # code runs), checked and recorded; absent, the run records this server's own.
    provenance: dict[str, Any] | None = None


class MetricPointIn(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """``[key, value, step, timestamp_us]``: one point, its step and its time (microseconds
    since the epoch) already chosen by the client, as the local handle chooses them."""

    key: str
    value: float
    step: int
    timestamp_us: Annotated[int, msgspec.Meta(ge=_MICROS[0], le=_MICROS[1])]


class RunBatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    metrics: list[MetricPointIn] = []
    params: dict[str, str] = {}


class EndRunRequest(msgspec.Struct, forbid_unknown_fields=True):
    status: str = "finished"
    metrics: list[MetricPointIn] = []
    params: dict[str, str] = {}


class SqlRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``max_rows`` absent answers up to 1,000 rows, null as many as the server allows
    (``sql_max_rows``); ``timeout_s`` null runs the query for at most the server's
    ``sql_timeout_s``. Asking for more than either is a 422 naming the field."""

    query: str
    max_rows: Annotated[int, msgspec.Meta(ge=0)] | msgspec.UnsetType | None = msgspec.UNSET
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_SQL_SECONDS)] | None = None


def _moment(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _handle(request: Request[Any, Any, Any], run_id: str) -> ActiveRun:
    """A handle on a run started earlier (here or by a client), for one request: it buffers
    without writing (no size or time trigger), so the request decides when it writes."""
    return ActiveRun(_platform(request).tracking, run_id, _actor(request), flush_every=sys.maxsize,
                     flush_interval=math.inf)


# --- experiments ------------------------------------------------------------------------------


@get("/experiments", opt={"permission": "viewer"}, sync_to_thread=True)
def list_experiments(request: Request[Any, Any, Any]) -> list[ExperimentRecord]:
    """Every experiment, by name, with its number of runs."""
    return _platform(request).tracking.experiments()


@post("/experiments", opt={"permission": "operator", "resource": "any"}, status_code=200, sync_to_thread=True)
def create_experiment(request: Request[Any, Any, Any], data: CreateExperimentRequest) -> ExperimentRecord:
    """Create an experiment; an existing one answers as it is (``exist_ok``) or 409."""
    return _platform(request).tracking.create_experiment(data.name, description=data.description, tags=data.tags,
                                                         exist_ok=data.exist_ok, actor=_actor(request))


@get("/experiment", opt={"permission": "viewer"}, sync_to_thread=True)
def get_experiment(request: Request[Any, Any, Any],
                   name: Annotated[str, Parameter(description="the experiment's name (any text)")]
                   ) -> ExperimentRecord:
    return _platform(request).tracking.get_experiment(name)


# --- runs: reads ------------------------------------------------------------------------------


@get("/runs", opt={"permission": "viewer"}, sync_to_thread=True)
def list_runs(request: Request[Any, Any, Any],
              limit: Annotated[int, Parameter(ge=0, le=MAX_LIMIT, description="runs to answer, newest first "
                                              "(0 answers none, as the local facet does)")] = 50,
              experiment: Annotated[str | None, Parameter(description="only this experiment's runs")] = None,
              ) -> list[RunRecord]:
    return _platform(request).tracking.list_runs(limit=limit, experiment=experiment)


@get("/runs/count", opt={"permission": "viewer"}, sync_to_thread=True)
def count_runs(request: Request[Any, Any, Any]) -> dict[str, int]:
    return {"count": _platform(request).tracking.count()}


@get("/runs/{run_id:str}", opt={"permission": "viewer"}, sync_to_thread=True)
def get_run(request: Request[Any, Any, Any], run_id: str) -> RunRecord:
    return _platform(request).tracking.get_run(run_id)


@get("/runs/{run_id:str}/metrics", opt={"permission": "viewer"}, sync_to_thread=True)
def metric_history(request: Request[Any, Any, Any], run_id: str,
                   key: Annotated[str, Parameter(description="the metric's key (any text)")]) -> list[MetricPoint]:
    """Every point of one metric of a run, by step."""
    return _platform(request).tracking.metric_history(run_id, key)


@get("/runs/{run_id:str}/artifacts", opt={"permission": "viewer"}, sync_to_thread=True,
     media_type=OCTET_STREAM)
def read_artifact(request: Request[Any, Any, Any], run_id: str,
                  name: Annotated[str, Parameter(description="the artifact's name (any text)")]) -> Response[bytes]:
    """An artifact's bytes, verified against their digest."""
    return Response(_platform(request).tracking.read_artifact(run_id, name), media_type=OCTET_STREAM)


@get("/compare", opt={"permission": "viewer"}, sync_to_thread=True)
def compare_runs(request: Request[Any, Any, Any], runs: list[str]) -> RunComparison:
    """Runs side by side (``?runs=a&runs=b``): params, latest metrics, which differ."""
    return _platform(request).tracking.compare(runs)


@post("/sql", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def sql(request: Request[Any, Any, Any], data: SqlRequest) -> Any:
    """Read-only SQL over the metadata (one SELECT): columns and rows as JSON, or the table
    as an Arrow IPC stream (its types kept) when ``Accept`` asks for one."""
    settings = _platform(request).settings
    asked = min(DEFAULT_SQL_ROWS, settings.sql_max_rows) if data.max_rows is msgspec.UNSET else data.max_rows
    max_rows = _within(asked, settings.sql_max_rows, "max_rows", "sql_max_rows")
    timeout_s = _within(data.timeout_s, settings.sql_timeout_s, "timeout_s", "sql_timeout_s")
    # One row past the cap tells whether rows were left out.
    table = _platform(request).tracking.sql(data.query, max_rows=max_rows + 1, timeout_s=timeout_s)
    truncated = table.num_rows > max_rows
    record_read(request, "sql.query", "metadata", {"sql": statement_summary(data.query),
                                                   "rows": min(table.num_rows, max_rows)})
    table = table.slice(0, max_rows)
    if ARROW_STREAM in request.headers.get("accept", ""):
        return arrow_stream(table, truncated=truncated)
    return {"columns": table.column_names, "rows": [list(row.values()) for row in table.to_pylist()],
            "truncated": truncated}


def _within(asked: _N | None, most: _N, field: str, setting: str) -> _N:
    """What the client asked for, or the server's most when it asked nothing; a 422 naming
    the field when it asked for more than the server allows."""
    if asked is None:
        return most
    if asked > most:
        raise InvalidInput(f"{field} {asked} is more than this server allows ({most}, its setting {setting})",
                           field=field, expected=f"at most {most}")
    return asked


# --- runs: recording --------------------------------------------------------------------------


@post("/runs/start", opt={"permission": "operator", "resource": "any"}, status_code=201, sync_to_thread=True)
def start_run(request: Request[Any, Any, Any], data: StartRunRequest) -> RunRecord:
    """Start a run (its experiment created when missing); answers the run, ``running``. It
    records the provenance the caller sent (checked: 422 naming the field), else this server's."""
    tracking = _platform(request).tracking
    provenance = None if data.provenance is None else Provenance.from_json(data.provenance)
    run = tracking.start_run(data.name, experiment=data.experiment, data_commits=tuple(data.data_commits),
                             tags=data.tags, actor=_actor(request), provenance=provenance)
    return tracking.get_run(run.id)


@post("/runs/{run_id:str}/batch", opt={"permission": "operator", "resource": "any"}, status_code=200, sync_to_thread=True)
def log_batch(request: Request[Any, Any, Any], run_id: str, data: RunBatchRequest) -> dict[str, int]:
    """Write params and metric points in one transaction; nothing when any is invalid. A
    run that has ended answers 409, one that does not exist 404."""
    points = [(p.key, p.value, p.step, _moment(p.timestamp_us)) for p in data.metrics]
    return {"written": _handle(request, run_id).log_batch(points, data.params)}


@post("/runs/{run_id:str}/end", opt={"permission": "operator", "resource": "any"}, status_code=200, sync_to_thread=True)
def end_run(request: Request[Any, Any, Any], run_id: str, data: EndRunRequest) -> RunRecord:
    """Write the last params and points and end the run ``finished`` or ``failed``, in one
    transaction; answers the ended run."""
    run = _handle(request, run_id)
    for point in data.metrics:
        run.log_metric(point.key, point.value, point.step, _moment(point.timestamp_us))
    run.log_params(data.params)
    return run.end(data.status)


@put("/runs/{run_id:str}/artifacts", opt={"permission": "operator", "body": "upload", "resource": "any"}, status_code=200)
async def log_artifact(request: Request[Any, Any, Any], run_id: str,
                       name: Annotated[str, Parameter(description="the artifact's name (any text)")]
                       ) -> dict[str, str]:
    """Store the body (``application/octet-stream``) content-addressed and attach it to the
    run under ``name``; answers its digest."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != OCTET_STREAM:
        raise InvalidInput("an artifact is sent as raw bytes", field="body",
                           expected=f"Content-Type: {OCTET_STREAM}")
    run = _handle(request, run_id)
    # Stored as it arrives, never whole in memory; read like a binary file.
    body = cast(BinaryIO, StreamedBody(request.stream().__aiter__()))
    digest: str = await anyio.to_thread.run_sync(run.log_artifact, name, body)
    return {"name": name, "digest": digest}


TRACKING_ROUTES = [list_experiments, create_experiment, get_experiment, list_runs, count_runs, get_run,
                   metric_history, read_artifact, compare_runs, sql, start_run, log_batch, end_run, log_artifact]
