"""The Open Inference Protocol (KServe v2 REST) over the same deployments as /v1.

Standard clients (tritonclient[http], KServe's) speak it: one typed tensor per
feature, ``[n, 1]`` (or ``[n]``), JSON data. Tensors are built with numpy,
column by column, straight from the request; no per-row dicts. Errors are
answered the KServe way, ``{"error": "..."}``, with 400 for a bad request.
Only the JSON encoding is spoken; the binary tensor extension is refused
with a 400 that says so.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import anyio.to_thread
import msgspec
import numpy as np
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException

from mlops_lite import MlopsLiteError, NotFound, Platform, Unauthenticated
from mlops_lite.errors import InvalidInput
from mlops_lite.inference.session import ModelSession
from mlops_lite.records import DeploymentRecord, Prediction

log = logging.getLogger("mlops_lite.server.oip")

PLATFORM = "onnxruntime_onnx"
NUMERIC_DATATYPES = {"FP32", "FP64", "INT32", "INT64"}
INTEGER_DATATYPES = {"INT32", "INT64"}
OUTPUTS = ("label", "probabilities")


class BadRequest(InvalidInput):
    """An OIP request that does not match the protocol or the model's signature (400)."""

    http_status = 400


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _resolve(platform: Platform, name: str) -> tuple[DeploymentRecord, ModelSession]:
    return platform.deployments._resolve(name)


def _label_datatype(session: ModelSession) -> str:
    classes = session.classes
    if classes and not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "BYTES"
    return "INT64"


# ------------------------------------------------------------------------------------------- health

@get("/health/live", opt={"permission": "viewer"}, sync_to_thread=False)
def server_live() -> dict[str, Any]:
    return {"live": True}


@get("/health/ready", opt={"permission": "viewer"}, sync_to_thread=True)
def server_ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """200 when every deployment's model session is loaded (or loads now), else 503."""
    platform = _platform(request)
    not_ready: dict[str, str] = {}
    for record in platform.deployments.list():
        try:
            _resolve(platform, record.name)
        except Exception as exc:  # a model that cannot load makes the server not ready
            not_ready[record.name] = str(exc)
    if not_ready:
        detail = "; ".join(f"{name}: {why}" for name, why in sorted(not_ready.items()))
        return Response({"ready": False, "error": f"models not ready: {detail}"}, status_code=503)
    return Response({"ready": True}, status_code=200)


# ---------------------------------------------------------------------------------------- metadata

def _check_version(record: DeploymentRecord, version: str | None) -> None:
    served = [v for v in (record.version, record.candidate_version) if v]
    if version is not None and version not in served:
        raise NotFound(f"model {record.name!r} has no version {version!r}; it serves {served}")


def _metadata(platform: Platform, name: str, version: str | None) -> dict[str, Any]:
    record, session = _resolve(platform, name)
    _check_version(record, version)
    inputs = [{"name": spec["name"], "datatype": "FP32" if spec["type"] == "float" else "BYTES",
               "shape": [-1, 1]} for spec in session.inputs]
    outputs = [{"name": "label", "datatype": _label_datatype(session), "shape": [-1]},
               {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(session.classes)]}]
    versions = [record.version] + ([record.candidate_version] if record.candidate_version else [])
    return {"name": record.name, "versions": versions, "platform": PLATFORM,
            "inputs": inputs, "outputs": outputs}


@get("/models/{name:str}", opt={"permission": "viewer"}, sync_to_thread=True)
def model_metadata(request: Request[Any, Any, Any], name: str) -> dict[str, Any]:
    return _metadata(_platform(request), name, None)


@get("/models/{name:str}/versions/{version:str}", opt={"permission": "viewer"}, sync_to_thread=True)
def model_version_metadata(request: Request[Any, Any, Any], name: str, version: str) -> dict[str, Any]:
    return _metadata(_platform(request), name, version)


def _ready(platform: Platform, name: str, version: str | None) -> dict[str, Any]:
    record, _ = _resolve(platform, name)
    _check_version(record, version)
    return {"name": record.name, "ready": True}


@get("/models/{name:str}/ready", opt={"permission": "viewer"}, sync_to_thread=True)
def model_ready(request: Request[Any, Any, Any], name: str) -> dict[str, Any]:
    return _ready(_platform(request), name, None)


@get("/models/{name:str}/versions/{version:str}/ready", opt={"permission": "viewer"}, sync_to_thread=True)
def model_version_ready(request: Request[Any, Any, Any], name: str, version: str) -> dict[str, Any]:
    return _ready(_platform(request), name, version)


# ------------------------------------------------------------------------------------------- infer

def _shape(value: Any, where: str) -> list[int]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in value)):
        raise BadRequest(f"{where}.shape must be a list of integers, got {value!r}", field=f"{where}.shape",
                         expected="[n, 1] or [n]")
    if len(value) > 2 or (len(value) == 2 and value[1] != 1):
        raise BadRequest(f"{where}.shape is {value}; each feature is one column",
                         field=f"{where}.shape", expected="[n, 1] or [n]")
    if value[0] < 1:
        raise BadRequest(f"{where}.shape {value} has no rows", field=f"{where}.shape",
                         expected="[n, 1] or [n] with n >= 1")
    return value


def _column(tensor: dict[str, Any], spec: dict[str, Any], where: str, rows: int) -> np.ndarray:
    """One feature's ``[n, 1]`` tensor from its request tensor, validated."""
    name, datatype, data = spec["name"], tensor.get("datatype"), tensor.get("data")
    if not isinstance(datatype, str):
        raise BadRequest(f"{where} ({name!r}) has no datatype", field=f"{where}.datatype",
                         expected="a datatype string")
    if data is None:
        raise BadRequest(f"{where} ({name!r}) has no data", field=f"{where}.data", expected="a list of values")
    if not isinstance(data, list):
        data = [data]
    if spec["type"] == "float":
        if datatype not in NUMERIC_DATATYPES:
            raise BadRequest(f"input {name!r} has datatype {datatype}; it is a numeric feature",
                             field=f"{where}.datatype", expected="one of " + ", ".join(sorted(NUMERIC_DATATYPES)))
        try:
            array = np.asarray(data)
        except ValueError as exc:
            raise BadRequest(f"input {name!r} data is ragged: {exc}", field=f"{where}.data",
                             expected="a flat or regular nested list of numbers") from exc
        integers = datatype in INTEGER_DATATYPES
        kinds = "iu" if integers else "iuf"
        if array.dtype.kind not in kinds:
            what = "integers" if integers else "numbers"
            raise BadRequest(f"input {name!r} data must be {what} for datatype {datatype}",
                             field=f"{where}.data", expected=f"a list of {what}")
        with np.errstate(over="ignore", invalid="ignore"):
            column = array.reshape(-1).astype(np.float32)
        if not np.isfinite(column).all():
            raise BadRequest(f"input {name!r} has a value that is not finite as FP32 (NaN, infinity or "
                             "out of range)", field=f"{where}.data", expected="finite numbers within FP32")
    else:
        if datatype != "BYTES":
            raise BadRequest(f"input {name!r} has datatype {datatype}; it is a string feature",
                             field=f"{where}.datatype", expected="BYTES")
        column = np.asarray(_flatten_strings(data, name, where), dtype=object)
    if column.size != rows:
        raise BadRequest(f"input {name!r} has {column.size} values but its shape says {rows}",
                         field=f"{where}.data", expected=f"{rows} values")
    return column.reshape(-1, 1)


def _flatten_strings(data: list[Any], name: str, where: str) -> list[str]:
    flat: list[str] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if not isinstance(item, str):
                raise BadRequest(f"input {name!r} data must be strings for datatype BYTES, got "
                                 f"{type(item).__name__}", field=f"{where}.data", expected="a list of strings")
            flat.append(item)
        else:
            stack.pop()
    return flat


def build_feed(session: ModelSession, body: Any) -> tuple[dict[str, np.ndarray], int]:
    """Validate an OIP request body against the signature; answer the feed and the batch size."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", field="body",
                         expected='{"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise BadRequest("'inputs' must be a non-empty list of tensors", field="inputs",
                         expected="one tensor per feature")
    specs = {spec["name"]: spec for spec in session.inputs}
    by_name: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, tensor in enumerate(tensors):
        where = f"inputs[{index}]"
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise BadRequest(f"{where} must be an object with a name", field=where,
                             expected='{"name", "shape", "datatype", "data"}')
        name = tensor["name"]
        if name not in specs:
            raise BadRequest(f"unknown input {name!r}", field=f"{where}.name",
                             expected=f"only the model's inputs: {sorted(specs)}")
        if name in by_name:
            raise BadRequest(f"input {name!r} is given twice", field=f"{where}.name", expected="each input once")
        by_name[name] = (index, tensor)
    missing = [name for name in specs if name not in by_name]
    if missing:
        raise BadRequest(f"missing input {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                             else ""),
                         field="inputs", expected=f"every model input: {sorted(specs)}")
    rows: int | None = None
    first = ""
    feed: dict[str, np.ndarray] = {}
    for spec in session.inputs:
        index, tensor = by_name[spec["name"]]
        where = f"inputs[{index}]"
        n = _shape(tensor.get("shape"), where)[0]
        if rows is None:
            rows, first = n, spec["name"]
            if rows > session.max_batch_size:
                raise BadRequest(f"batch of {rows} rows is more than the limit", field=f"{where}.shape",
                                 expected=f"at most {session.max_batch_size} rows")
        elif n != rows:
            raise BadRequest(f"input {spec['name']!r} has batch size {n} but {first!r} has {rows}",
                             field=f"{where}.shape", expected="the same batch size for every input")
        feed[spec["name"]] = _column(tensor, spec, where, n)
    assert rows is not None
    return feed, rows


def _side_of(route: Any, slot: Any) -> str | None:
    if route is None or slot is None:
        return None
    return "primary" if slot is route.primary else "canary"


def _requested(body: dict[str, Any]) -> tuple[str, ...]:
    outputs = body.get("outputs")
    if outputs is None:
        return OUTPUTS
    if not isinstance(outputs, list):
        raise BadRequest("'outputs' must be a list of {\"name\": ...}", field="outputs",
                         expected=f"names among {list(OUTPUTS)}")
    names: list[str] = []
    for index, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS:
            raise BadRequest(f"unknown output {name!r}", field=f"outputs[{index}].name",
                             expected=f"one of {list(OUTPUTS)}")
        names.append(name)
    return tuple(names) or OUTPUTS


def infer(platform: Platform, name: str, version: str | None, body: Any, metrics: Any = None) -> dict[str, Any]:
    """Infer on the deployment's route: a named version answers from its slot, else the
    strategy picks (a canary gets its share). Logged and counted like /v1 predict."""
    started = time.perf_counter()
    route: Any = None
    slot: Any = None
    try:
        route = platform.deployments.route(name)
        slot = route.slot_for_version(version) if version is not None else route.pick(None)[0]
        session = slot.session
        feed, rows = build_feed(session, body)
        requested = _requested(body)
        labels, probabilities = slot.run(feed)
    except Exception as exc:
        status = int(getattr(exc, "http_status", 500))
        if metrics is not None:
            metrics.observe(name, version or "", str(status), time.perf_counter() - started)
        if platform.deployments.router.route(name) is not None:
            platform.monitoring.record_error(name, status, _side_of(route, slot))
        raise
    latency = time.perf_counter() - started
    side = "primary" if slot is route.primary else "canary"
    request_id = body.get("id")
    request_id = str(request_id) if request_id is not None else uuid.uuid4().hex
    prediction = Prediction(request_id=request_id, deployment=name, model=slot.model, version=slot.version,
                            digest=slot.digest, predictions=tuple(v.item() for v in labels.reshape(-1)),
                            probabilities=tuple(tuple(float(p) for p in row) for row in probabilities),
                            classes=session.classes, slot=side)
    columns = {spec["name"]: feed[spec["name"]].reshape(-1).tolist() for spec in session.inputs}
    instances = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    platform.monitoring.record(prediction, instances, latency)
    if metrics is not None:
        metrics.observe(name, slot.version, "200", latency, rows)
    record = route.record
    outputs: list[dict[str, Any]] = []
    for output in requested:
        if output == "label":
            datatype = "INT64" if labels.dtype.kind in "iub" else "BYTES"
            data = labels.reshape(-1).tolist() if datatype == "INT64" else [str(v) for v in labels.reshape(-1)]
            outputs.append({"name": "label", "datatype": datatype, "shape": [rows], "data": data})
        else:
            probs = np.asarray(probabilities, dtype=np.float32)
            outputs.append({"name": "probabilities", "datatype": "FP32", "shape": [rows, int(probs.shape[1])],
                            "data": probs.reshape(-1).tolist()})
    return {"model_name": record.name, "model_version": slot.version, "id": request_id, "outputs": outputs}


async def _infer(request: Request[Any, Any, Any], name: str, version: str | None) -> dict[str, Any]:
    if request.headers.get("inference-header-content-length") is not None:
        raise BadRequest("the binary tensor data extension is not supported; send JSON tensors "
                         "(tritonclient: binary_data=False)", field="body", expected="a JSON body")
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON ({exc})", field="body",
                         expected="a JSON object") from exc
    platform = _platform(request)
    from server.app import inline_ok

    inputs = body.get("inputs") if isinstance(body, dict) else None
    first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
    shape = first.get("shape") if isinstance(first, dict) else None
    rows = shape[0] if isinstance(shape, list) and shape and isinstance(shape[0], int) else 1 << 30
    if inline_ok(platform, name, rows):
        return infer(platform, name, version, body, request.app.state.metrics)
    result: dict[str, Any] = await anyio.to_thread.run_sync(infer, platform, name, version, body,
                                                            request.app.state.metrics)
    return result


@post("/models/{name:str}/infer", opt={"permission": "viewer"}, status_code=200)
async def model_infer(request: Request[Any, Any, Any], name: str) -> dict[str, Any]:
    return await _infer(request, name, None)


@post("/models/{name:str}/versions/{version:str}/infer", opt={"permission": "viewer"}, status_code=200)
async def model_version_infer(request: Request[Any, Any, Any], name: str, version: str) -> dict[str, Any]:
    return await _infer(request, name, version)


# ------------------------------------------------------------------------------------------ errors

def _error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """KServe-shaped errors: ``{"error": "..."}``; bad input is 400, not 422."""
    headers: dict[str, str] = {}
    if isinstance(exc, MlopsLiteError):
        status_code = 400 if isinstance(exc, InvalidInput) else exc.http_status
        body: dict[str, Any] = {"error": exc.message, "code": exc.code}
        body.update({k: v for k, v in exc.details.items() if k in ("field", "expected")})
        if isinstance(exc, Unauthenticated):
            headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, HTTPException):
        status_code = 400 if exc.status_code == 422 else exc.status_code
        body = {"error": str(exc.detail)}
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status_code, body = 500, {"error": "internal error; see the server log"}
    return Response(body, status_code=status_code, headers=headers)


def oip_router() -> Router:
    """The /v2 router; the same bearer guard as /v1 (imported here to keep one guard)."""
    from server.app import authorize

    return Router(path="/v2", guards=[authorize], exception_handlers={Exception: _error},
                  route_handlers=[server_live, server_ready, model_metadata, model_version_metadata,
                                  model_ready, model_version_ready, model_infer, model_version_infer])

