"""The Open Inference Protocol (KServe v2 REST) over the same deployments as /v1.

Standard clients (tritonclient[http], KServe's) speak it: one typed tensor per
feature, ``[n, 1]`` (or ``[n]``), as JSON data or as raw bytes by the binary
tensor data extension (tritonclient's default): an ``Inference-Header-Content-Length``
header gives the length of the JSON header, the tensors' little-endian bytes
follow it in the order of the inputs that carry ``parameters.binary_data_size``
(BYTES elements each with a 4-byte length). Outputs come back as bytes when asked
(``parameters.binary_data`` per output, ``parameters.binary_data_output`` per
request), with the same header and ``application/octet-stream``.

Tensors are built with numpy, column by column, straight from the request
(``np.frombuffer`` for binary numbers); no per-row dicts. Errors are answered
the KServe way, ``{"error": "..."}``, with 400 for a bad request. This module parses
and formats only: the prediction pipeline (``platform.deployments.pipeline``) answers,
logs and counts an inference as it does a /v1 predict.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from itertools import chain
from typing import Any

import anyio.to_thread
import msgspec
import numpy as np
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.types import Guard

import mlops_lite
from mlops_lite import MlopsLiteError, NotFound, Platform, Unauthenticated
from mlops_lite.errors import InvalidInput
from mlops_lite.inference.columnar import bytes_column, numeric_column, serialize_bytes
from mlops_lite.inference.pipeline import ColumnFeed, PredictionPipeline, RequestMetrics
from mlops_lite.inference.routing import Route
from mlops_lite.inference.session import ModelSession
from mlops_lite.records import DeploymentRecord
from server.context import platform as _platform
from server.inline import inline_ok

log = logging.getLogger("mlops_lite.server.oip")

PLATFORM = "onnxruntime_onnx"
NUMERIC_DATATYPES = {"FP32", "FP64", "INT32", "INT64"}
INTEGER_DATATYPES = {"INT32", "INT64"}
OUTPUTS = ("label", "probabilities")
HEADER_LENGTH = "Inference-Header-Content-Length"
OCTET_STREAM = "application/octet-stream"
MAX_INFLATED = 256 * 1024 * 1024  # a compressed body may not grow past this


class BadRequest(InvalidInput):
    """An OIP request that does not match the protocol or the model's signature (400)."""

    http_status = 400




def _label_datatype(session: ModelSession) -> str:
    classes = session.classes
    if classes and not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "BYTES"
    return "INT64"


# ------------------------------------------------------------------------------------------- health

@get("/", opt={"permission": "predictor"}, sync_to_thread=False)
def server_metadata() -> dict[str, Any]:
    return {"name": "mlops-lite", "version": mlops_lite.__version__, "extensions": ["binary_tensor_data"]}


@get("/health/live", opt={"permission": "predictor"}, sync_to_thread=False)
def server_live() -> dict[str, Any]:
    return {"live": True}


@get("/health/ready", opt={"permission": "predictor"}, sync_to_thread=True)
def server_ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """200 when every deployment's model session is loaded (or loads now), else 503."""
    platform = _platform(request)
    not_ready: dict[str, str] = {}
    for record in platform.deployments.list():
        try:
            platform.deployments.route(record.name)
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
    route: Route = platform.deployments.route(name)
    record, session = route.record, route.primary.session
    _check_version(record, version)
    inputs = [{"name": spec["name"], "datatype": "FP32" if spec["type"] == "float" else "BYTES",
               "shape": [-1, 1]} for spec in session.inputs]
    outputs = [{"name": "label", "datatype": _label_datatype(session), "shape": [-1]},
               {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(session.classes)]}]
    versions = [record.version] + ([record.candidate_version] if record.candidate_version else [])
    return {"name": record.name, "versions": versions, "platform": PLATFORM,
            "inputs": inputs, "outputs": outputs}


@get("/models/{name:str}", opt={"permission": "predictor", "deployment_param": "name"}, sync_to_thread=True)
def model_metadata(request: Request[Any, Any, Any], name: str) -> dict[str, Any]:
    return _metadata(_platform(request), name, None)


@get("/models/{name:str}/versions/{version:str}", opt={"permission": "predictor", "deployment_param": "name"}, sync_to_thread=True)
def model_version_metadata(request: Request[Any, Any, Any], name: str, version: str) -> dict[str, Any]:
    return _metadata(_platform(request), name, version)


def _ready(platform: Platform, name: str, version: str | None) -> dict[str, Any]:
    record = platform.deployments.route(name).record
    _check_version(record, version)
    return {"name": record.name, "ready": True}


@get("/models/{name:str}/ready", opt={"permission": "predictor", "deployment_param": "name"}, sync_to_thread=True)
def model_ready(request: Request[Any, Any, Any], name: str) -> dict[str, Any]:
    return _ready(_platform(request), name, None)


@get("/models/{name:str}/versions/{version:str}/ready", opt={"permission": "predictor", "deployment_param": "name"}, sync_to_thread=True)
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


def _column(tensor: dict[str, Any], spec: dict[str, Any], where: str, rows: int,
            raw: memoryview | None = None) -> np.ndarray:
    """One feature's ``[n, 1]`` tensor from its request tensor (JSON data or its binary
    bytes, ``raw``), validated."""
    name, datatype, data = spec["name"], tensor.get("datatype"), tensor.get("data")
    if not isinstance(datatype, str):
        raise BadRequest(f"{where} ({name!r}) has no datatype", field=f"{where}.datatype",
                         expected="a datatype string")
    if raw is not None:
        return _binary_column(raw, datatype, spec, where, rows)
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


def _binary_column(raw: memoryview, datatype: str, spec: dict[str, Any], where: str, rows: int) -> np.ndarray:
    name, field = spec["name"], f"{where}.parameters.binary_data_size"
    try:
        if spec["type"] == "float":
            if datatype == "BYTES":
                raise BadRequest(f"input {name!r} has datatype BYTES; it is a numeric feature",
                                 field=f"{where}.datatype", expected="a numeric datatype such as FP32")
            return numeric_column(raw, datatype, rows, name, field)
        if datatype != "BYTES":
            raise BadRequest(f"input {name!r} has datatype {datatype}; it is a string feature",
                             field=f"{where}.datatype", expected="BYTES")
        return bytes_column(raw, rows, name, field)
    except BadRequest:
        raise
    except InvalidInput as exc:  # the columnar helpers' errors, counted as this protocol's 400
        raise BadRequest(exc.message, details=exc.details) from exc


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


def _binary_slices(tensors: list[Any], binary: memoryview | None) -> dict[int, memoryview]:
    """Each binary input's bytes, by its index in ``inputs``: the tensors' data follow the
    JSON header in the order of the inputs that carry ``binary_data_size``."""
    slices: dict[int, memoryview] = {}
    offset = 0
    for index, tensor in enumerate(tensors):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        if parameters is None:
            continue
        where = f"inputs[{index}]"
        name = tensor.get("name")
        if not isinstance(parameters, dict):
            raise BadRequest(f"{where} ({name!r}) parameters must be an object", field=f"{where}.parameters",
                             expected='{"binary_data_size": <bytes>}')
        if "binary_data_size" not in parameters:
            continue
        size = parameters["binary_data_size"]
        field = f"{where}.parameters.binary_data_size"
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BadRequest(f"input {name!r} has binary_data_size {size!r}", field=field,
                             expected="a number of bytes >= 0")
        if binary is None:
            raise BadRequest(f"input {name!r} has binary_data_size but the request has no {HEADER_LENGTH} header",
                             field=HEADER_LENGTH, expected="the length of the JSON header, binary data after it")
        if "data" in tensor:
            raise BadRequest(f"input {name!r} has both data and binary_data_size", field=f"{where}.data",
                             expected="one of them")
        if offset + size > len(binary):
            raise BadRequest(f"input {name!r} has binary_data_size {size} but only {len(binary) - offset} bytes "
                             "of binary data are left in the body", field=field,
                             expected=f"at most {len(binary) - offset} bytes")
        slices[index] = binary[offset:offset + size]
        offset += size
    return slices


def _check_claimed(slices: dict[int, memoryview], binary: memoryview | None) -> None:
    """Bytes after the tensors that no input claims. Checked after the tensors themselves,
    so that a wrong binary_data_size is answered as that input's error."""
    claimed = sum(len(chunk) for chunk in slices.values())
    if binary is not None and claimed != len(binary):
        raise BadRequest(f"the body has {len(binary) - claimed} bytes of binary data that no input's "
                         "binary_data_size accounts for", field=HEADER_LENGTH,
                         expected=f"{claimed} bytes of binary data after the JSON header")


def build_feed(session: ModelSession, body: Any, binary: memoryview | None = None
               ) -> tuple[dict[str, np.ndarray], int]:
    """Validate an OIP request body (and the binary data after its JSON header) against the
    signature; answer the feed and the batch size."""
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
    slices = _binary_slices(tensors, binary)
    missing = [name for name in specs if name not in by_name]
    if missing:
        raise BadRequest(f"missing input {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                             else ""),
                         field="inputs", expected=f"every model input: {sorted(specs)}")
    if not slices:
        fast = _float_feed(session, [by_name[spec["name"]][1] for spec in session.inputs])
        if fast is not None:
            return fast
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
        feed[spec["name"]] = _column(tensor, spec, where, n, slices.get(index))
    _check_claimed(slices, binary)
    assert rows is not None
    return feed, rows


_FLOAT_TYPES = {"FP32", "FP64"}


def _float_feed(session: ModelSession, tensors: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], int] | None:
    """The common JSON request, checked as one array: every input a number feature sent
    as FP32/FP64 with a flat list of floats, all of one batch size within the limit. None
    for anything else, which the per-input path checks (and names the bad field of);
    per input it costs three numpy calls, most of a one-row request's time."""
    rows = -1
    data: list[list[Any]] = []
    for spec, tensor in zip(session.inputs, tensors, strict=True):
        values, shape = tensor.get("data"), tensor.get("shape")
        if spec["type"] != "float" or tensor.get("datatype") not in _FLOAT_TYPES or not isinstance(values, list):
            return None
        if rows < 0:
            rows = len(values)
        if len(values) != rows or shape not in ([rows], [rows, 1]) or {type(d) for d in shape} != {int}:
            return None
        data.append(values)
    if not 0 < rows <= session.max_batch_size or set(map(type, chain.from_iterable(data))) != {float}:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        tensor32 = np.array(data, dtype=np.float64).astype(np.float32)
    if not np.isfinite(tensor32).all():
        return None
    return {spec["name"]: tensor32[i].reshape(-1, 1) for i, spec in enumerate(session.inputs)}, rows


def _flag(parameters: Any, key: str, where: str) -> bool | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where} must be an object", field=where, expected=f'{{"{key}": true|false}}')
    if "classification" in parameters:
        raise BadRequest("the classification extension is not supported; ask for 'label' and "
                         "'probabilities'", field=f"{where}.classification", expected=f"outputs among {list(OUTPUTS)}")
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{where}.{key} must be true or false, got {value!r}", field=f"{where}.{key}",
                         expected="a boolean")
    return value


def _requested(body: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    """The outputs to answer, in order, each with whether it goes back as binary data."""
    everything = _flag(body.get("parameters"), "binary_data_output", "parameters") or False
    outputs = body.get("outputs")
    if outputs is None:
        return tuple((name, everything) for name in OUTPUTS)
    if not isinstance(outputs, list):
        raise BadRequest("'outputs' must be a list of {\"name\": ...}", field="outputs",
                         expected=f"names among {list(OUTPUTS)}")
    names: list[tuple[str, bool]] = []
    for index, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS:
            raise BadRequest(f"unknown output {name!r}", field=f"outputs[{index}].name",
                             expected=f"one of {list(OUTPUTS)}")
        binary = _flag(output.get("parameters"), "binary_data", f"outputs[{index}].parameters")
        names.append((name, everything if binary is None else binary))
    return tuple(names) or tuple((name, everything) for name in OUTPUTS)


def _output(name: str, binary: bool, labels: np.ndarray, probabilities: np.ndarray, rows: int
            ) -> tuple[dict[str, Any], bytes | None]:
    """One output tensor: JSON data, or its binary bytes and their size in the header."""
    if name == "label":
        flat = labels.reshape(-1)
        datatype = "INT64" if flat.dtype.kind in "iub" else "BYTES"
        shape = [rows]
        if binary:
            blob = flat.astype("<i8").tobytes() if datatype == "INT64" else serialize_bytes(flat.tolist())
        else:
            data = flat.tolist() if datatype == "INT64" else [str(v) for v in flat]
    else:
        probs = np.asarray(probabilities, dtype=np.float32)
        datatype, shape = "FP32", [rows, int(probs.shape[1])]
        if binary:
            blob = probs.astype("<f4", copy=False).tobytes()
        else:
            data = probs.reshape(-1).tolist()
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if binary:
        tensor["parameters"] = {"binary_data_size": len(blob)}
        return tensor, blob
    tensor["data"] = data
    return tensor, None


def infer(pipeline: PredictionPipeline, name: str, version: str | None, body: Any,
          metrics: RequestMetrics | None = None, binary: memoryview | None = None
          ) -> tuple[dict[str, Any], list[bytes]]:
    """Infer on the deployment's route: a named version answers from its slot, else the
    strategy picks (a canary gets its share). The pipeline logs and counts it as it does
    a /v1 predict; a body that does not parse counts as the request's failure.

    Answers the response's JSON and the binary data of its binary outputs, in order."""
    requested: list[tuple[tuple[str, bool], ...]] = []

    def parse(session: ModelSession) -> ColumnFeed:
        feed = build_feed(session, body, binary)[0]
        requested.append(_requested(body))
        return feed, feed

    request_id = body.get("id") if isinstance(body, dict) else None
    # The answer is made of tensors: no per-row tuples in the prediction.
    answer = pipeline.predict_columns(name, parse, version=version, tuples=False, metrics=metrics,
                                      request_id=str(request_id) if request_id is not None else None)
    labels, probabilities, rows = answer.labels, answer.probabilities, answer.rows
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for output, as_binary in requested[0]:
        tensor, blob = _output(output, as_binary, labels, probabilities, rows)
        outputs.append(tensor)
        if blob is not None:
            blobs.append(blob)
    prediction = answer.prediction
    return {"model_name": prediction.deployment, "model_version": prediction.version, "id": prediction.request_id,
            "outputs": outputs}, blobs


def _inflate(raw: bytes, encoding: str) -> bytes:
    """A gzip or deflate request body (tritonclient's request compression), bounded."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None:
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported", field="Content-Encoding",
                         expected="gzip, deflate or none")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, MAX_INFLATED)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {encoding} data ({exc})", field="Content-Encoding",
                         expected=f"a {encoding} body") from exc
    if inflater.unconsumed_tail:
        raise BadRequest(f"the body inflates to more than {MAX_INFLATED} bytes", field="body",
                         expected=f"at most {MAX_INFLATED} bytes uncompressed")
    return out


def _split(request: Request[Any, Any, Any], raw: bytes) -> tuple[Any, memoryview | None]:
    """The JSON header, decoded, and the binary data after it (None without the extension)."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding and encoding != "identity":
        raw = _inflate(raw, encoding)
    length = request.headers.get(HEADER_LENGTH.lower())
    binary: memoryview | None = None
    header: bytes | memoryview = raw
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            size = -1
        if size < 0:
            raise BadRequest(f"{HEADER_LENGTH} is {length!r}", field=HEADER_LENGTH,
                             expected="the length of the JSON header in bytes")
        if size > len(raw):
            raise BadRequest(f"{HEADER_LENGTH} says the JSON header is {size} bytes but the body has only "
                             f"{len(raw)}", field=HEADER_LENGTH, expected=f"at most {len(raw)}")
        view = memoryview(raw)
        header, binary = view[:size], view[size:]
    try:
        body = msgspec.json.decode(header)
    except msgspec.DecodeError as exc:
        what = f"the first {HEADER_LENGTH} bytes of the body are" if binary is not None else "the request body is"
        raise BadRequest(f"{what} not valid JSON ({exc})", field="body", expected="a JSON object") from exc
    return body, binary


def _render(answer: dict[str, Any], blobs: list[bytes]) -> Response[Any]:
    if not blobs:
        return Response(answer, status_code=200)
    header = msgspec.json.encode(answer)
    return Response(b"".join([header, *blobs]), status_code=200, media_type=OCTET_STREAM,
                    headers={HEADER_LENGTH: str(len(header))})


async def _infer(request: Request[Any, Any, Any], name: str, version: str | None) -> Response[Any]:
    body, binary = _split(request, await request.body())
    pipeline = _platform(request).deployments.pipeline
    inputs = body.get("inputs") if isinstance(body, dict) else None
    first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
    shape = first.get("shape") if isinstance(first, dict) else None
    rows = shape[0] if isinstance(shape, list) and shape and isinstance(shape[0], int) else 1 << 30
    metrics = request.app.state.metrics
    if inline_ok(pipeline, name, rows):
        return _render(*infer(pipeline, name, version, body, metrics, binary))
    answer, blobs = await anyio.to_thread.run_sync(infer, pipeline, name, version, body, metrics, binary)
    return _render(answer, blobs)


@post("/models/{name:str}/infer", opt={"permission": "predictor", "deployment_param": "name"}, status_code=200)
async def model_infer(request: Request[Any, Any, Any], name: str) -> Response[Any]:
    return await _infer(request, name, None)


@post("/models/{name:str}/versions/{version:str}/infer", opt={"permission": "predictor", "deployment_param": "name"}, status_code=200)
async def model_version_infer(request: Request[Any, Any, Any], name: str, version: str) -> Response[Any]:
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


def oip_router(*, guards: Sequence[Guard]) -> Router:
    """The /v2 router, behind ``guards`` (the app's bearer guard, the same as /v1's)."""
    return Router(path="/v2", guards=list(guards), exception_handlers={Exception: _error},
                  route_handlers=[server_metadata, server_live, server_ready, model_metadata, model_version_metadata,
                                  model_ready, model_version_ready, model_infer, model_version_infer])

