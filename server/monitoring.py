"""Monitoring and closed-loop routes: one monitoring window on demand, the loop's steps
(``platform.loop``) that a flow run on a Prefect worker calls over HTTP, and
``platform.monitoring``: feedback labels, the log's counters and read-only SQL over the
prediction log. Mounted under /v1 with its bearer guard (alerts: server/alerts.py)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post

from mlops_lite import InvalidInput
from mlops_lite.inference.columnar import ARROW_STREAM
from mlops_lite.records import TrafficWindow
from mlops_lite.tracking.sql import ALLOWED_TABLE_FUNCTIONS, check_select
from server.columnar import arrow_stream
from server.context import platform as _platform


class MonitorRequest(msgspec.Struct, forbid_unknown_fields=True):
    since: str | None = None
    debounce_s: Annotated[float, msgspec.Meta(ge=0)] = 600.0


class RetrainQuestion(msgspec.Struct, forbid_unknown_fields=True):
    now: str | None = None
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


class RetrainRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: str = ""


class FlowFinished(msgspec.Struct, forbid_unknown_fields=True):
    failed: bool
    details: dict[str, Any] = {}


@post("/deployments/{name:str}/monitor", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def monitor(request: Request[Any, Any, Any], name: str, data: MonitorRequest | None = None) -> dict[str, Any]:
    """Check one window of the deployment now: drift, quality, latency, alert transitions."""
    data = data or MonitorRequest()
    return _platform(request).loop.check(name, since=data.since, debounce_s=data.debounce_s)


@post("/deployments/{name:str}/should-retrain", opt={"permission": "operator", "deployment_param": "name"}, status_code=200,
      sync_to_thread=True)
def should_retrain(request: Request[Any, Any, Any], name: str, data: RetrainQuestion | None = None) -> dict[str, Any]:
    """The one retrain decision (every trigger and guard); a yes is recorded."""
    data = data or RetrainQuestion()
    return _platform(request).loop.should_retrain(name, now=data.now, debounce_s=data.debounce_s)


@post("/deployments/{name:str}/gate", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def gate(request: Request[Any, Any, Any], name: str, data: GateRequest) -> dict[str, Any]:
    """A candidate through the policy gates and no regression on fresh labelled rows."""
    return _platform(request).loop.gate(name, data.model, data.version, since=data.since, target=data.target,
                                        min_rows=data.min_rows)


@post("/deployments/{name:str}/block", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def block(request: Request[Any, Any, Any], name: str, data: BlockRequest) -> dict[str, Any]:
    _platform(request).loop.block(name, data.model, data.version, data.reasons, data.scores)
    return {"blocked": True}


@post("/deployments/{name:str}/judge-canary", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def judge(request: Request[Any, Any, Any], name: str, data: CanaryRequest) -> dict[str, Any]:
    """The canary against the primary since ``since``: promote, rollback or wait."""
    return _platform(request).loop.judge_canary(name, since=data.since, min_requests=data.min_requests)


@post("/deployments/{name:str}/finish", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def finish(request: Request[Any, Any, Any], name: str, data: FinishRequest) -> dict[str, Any]:
    return _platform(request).loop.finish(name, data.decision, data.reasons)


@post("/deployments/{name:str}/retrain", opt={"permission": "operator", "deployment_param": "name"}, status_code=200,
      sync_to_thread=True)
def request_retrain(request: Request[Any, Any, Any], name: str, data: RetrainRequest | None = None) -> dict[str, Any]:
    """Retrain the deployment now (the daemon runs ``retrain-release``), unless a release is
    in progress; audited as the caller (``loop.retrain_requested``)."""
    return _platform(request).loop.request_retrain(name, reason=data.reason if data is not None else "",
                                                   actor=request.state.identity.principal)


@post("/flows/{flow:str}/finished", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def flow_finished(request: Request[Any, Any, Any], flow: str, data: FlowFinished) -> dict[str, Any]:
    """A flow run's end: a failure fires the ``flow-failed`` alert, a clean run resolves it."""
    _platform(request).loop.flow_finished(flow, failed=data.failed, details=data.details)
    return {"flow": flow, "failed": data.failed}


class FeedbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    """True labels for logged predictions: ``{"labels": [{"request_id": "...", "label": 1}]}``
    or ``{"labels": [["<request id>", 1]]}``; each item is checked by the core, which names
    the bad one (``labels[i]``, ``labels[i].label``)."""

    labels: Any


@post("/deployments/{name:str}/feedback", opt={"permission": "operator", "deployment_param": "name"}, status_code=200, sync_to_thread=True)
def feedback(request: Request[Any, Any, Any], name: str, data: FeedbackRequest) -> dict[str, Any]:
    """Record true labels by request id, for monitoring to join with the prediction log."""
    labels = data.labels
    if isinstance(labels, list):
        labels = [(item.get("request_id"), item.get("label")) if isinstance(item, dict) else item for item in labels]
    return {"deployment": name, "recorded": _platform(request).monitoring.record_feedback(name, labels)}


@get("/monitoring/stats", opt={"permission": "viewer"}, sync_to_thread=False)
def monitoring_stats(request: Request[Any, Any, Any]) -> dict[str, int]:
    """The prediction log's counters in this server: rows logged, dropped (queue full),
    written, queued; write errors and batches written."""
    return _platform(request).monitoring.stats()


@get("/monitoring/windows", opt={"permission": "viewer"}, sync_to_thread=True)
def monitoring_windows(request: Request[Any, Any, Any], count: int = 12, width_s: int = 300,
                       until: str | None = None, deployment: str | None = None) -> list[TrafficWindow]:
    """Served traffic per window (requests, failures, p50/p99 latency) per deployment and
    slot: figures only, no row's content, so a viewer may read them (a dashboard's pulse)."""
    return _platform(request).monitoring.windows(count=count, width_s=width_s, until=until, deployment=deployment)


QUERY_MAX_ROWS = 100_000
LOG_VIEWS = frozenset({"predictions", "feedback", "errors"})
QUERY_EXPECTED = "one SELECT or WITH statement over the views predictions and feedback"


class QueryRequest(msgspec.Struct, forbid_unknown_fields=True):
    sql: str
    max_rows: Annotated[int, msgspec.Meta(ge=0, le=QUERY_MAX_ROWS)] = 10_000


@post("/monitoring/query", opt={"permission": "operator"}, status_code=200, sync_to_thread=True)
def monitoring_query(request: Request[Any, Any, Any], data: QueryRequest) -> Any:
    """Read-only SQL over the prediction log: one SELECT or WITH reading only the views
    ``predictions`` and ``feedback`` (422 naming the rule otherwise), answered as at most
    ``max_rows`` rows. As JSON: ``columns`` (names), ``types`` (Arrow types), ``rows``
    (lists of JSON values; NaN and infinities become null) and ``truncated``. As an Arrow
    IPC stream when ``Accept`` asks for one: the table with its types and values exact,
    its schema metadata holding ``mlops_lite.truncated`` when rows were left out."""
    # One row past max_rows tells whether rows were left out; the server's sql_timeout_s stops it.
    table = _platform(request).monitoring.query(read_only_log_query(data.sql), max_rows=data.max_rows + 1,
                                                timeout_s=_platform(request).settings.sql_timeout_s)
    kept = table.slice(0, data.max_rows)
    truncated = table.num_rows > data.max_rows
    if ARROW_STREAM in request.headers.get("accept", ""):
        return arrow_stream(kept, truncated=truncated)
    values = [column.to_pylist() for column in kept.columns]
    return {"columns": kept.column_names, "types": [str(kind) for kind in kept.schema.types],
            "rows": [list(row) for row in zip(*values, strict=True)], "truncated": truncated}


def read_only_log_query(sql: str) -> str:
    """``sql`` when it only reads the prediction log; InvalidInput (field ``sql``, the rule
    in ``details["rule"]``) otherwise.

    The in-process facet runs any SQL over the caller's own files; over HTTP a query runs
    in the server's process, so it passes two fences first: the text rules of read-only
    SQL (``mlops_lite.tracking.sql.check_select``: one SELECT/WITH, no words that write or
    reach outside, no functions that read files or the environment), then DuckDB's parse
    tree: the only tables are the two views and the query's own CTEs (never a file or URL
    named as a table), and no table function but range, generate_series and unnest. Text
    that does not parse goes on, to fail in ``Monitoring.query`` with the error the
    in-process facet gives."""
    try:
        statement = check_select(sql)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="sql",
                           expected=QUERY_EXPECTED, details=exc.details) from exc
    import duckdb

    with duckdb.connect(":memory:") as con:
        serialized = con.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()
    tree = msgspec.json.decode(serialized[0]) if serialized else {}
    if tree.get("error"):
        return statement
    tables: list[str] = []
    functions: list[str] = []
    ctes: set[str] = set()
    _read_tree(tree.get("statements", []), tables, functions, ctes)
    for name in tables:
        if name.lower() not in LOG_VIEWS | ctes:
            raise _refuse("log_views_only", f"{name!r} is not one of the views predictions, feedback and errors")
    for name in functions:
        if name.lower() not in ALLOWED_TABLE_FUNCTIONS:
            raise _refuse("no_table_functions", f"the table function {name}() is not allowed (only "
                                                f"{', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})")
    return statement


def _refuse(rule: str, message: str) -> InvalidInput:
    return InvalidInput(f"refused by the read-only SQL rule {rule!r}: {message}", field="sql",
                        expected=QUERY_EXPECTED, details={"rule": rule})


def _read_tree(node: Any, tables: list[str], functions: list[str], ctes: set[str]) -> None:
    """Collect the tables (``schema.name`` when qualified), table functions and CTE names
    of a ``json_serialize_sql`` tree."""
    if isinstance(node, list):
        for item in node:
            _read_tree(item, tables, functions, ctes)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "BASE_TABLE":
        parts = (node.get("catalog_name"), node.get("schema_name"), node.get("table_name"))
        tables.append(".".join(str(part) for part in parts if part))
    elif node.get("type") == "TABLE_FUNCTION":
        functions.append(str((node.get("function") or {}).get("function_name") or "?"))
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        ctes.update(str(entry["key"]).lower() for entry in cte_map.get("map") or () if isinstance(entry, dict)
                    and "key" in entry)
    for value in node.values():
        if isinstance(value, dict | list):
            _read_tree(value, tables, functions, ctes)


MONITORING_ROUTES = [monitor, should_retrain, gate, block, judge, finish, request_retrain, flow_finished, feedback,
                     monitoring_stats, monitoring_windows, monitoring_query]
