"""A model version as a KServe ``InferenceService`` over a Triton model repository.

KServe's Triton runtime (``kserve-tritonserver``) serves a *model repository*: one folder
per model holding ``config.pbtxt`` and a numbered version folder with the model file::

    model-repository/
      <name>/
        config.pbtxt          platform "onnxruntime_onnx", max_batch_size, inputs, outputs
        1/model.onnx          the registry's bytes for the version, unchanged

``triton_config`` reads the inputs and outputs (names, element types, shapes) from the
ONNX graph itself, mapped as Triton's model configuration documents them (ONNX FLOAT ->
TYPE_FP32, STRING -> TYPE_STRING, ...; a dynamic first dimension is the batch dimension
when ``max_batch_size`` > 0, and a tensor that is only ``[batch]`` gets ``dims: [1]`` with
``reshape: { shape: [] }``). ``inference_service`` makes the ``serving.kserve.io/v1beta1``
document that points KServe at the uploaded repository, with the version, its digest and
its lineage in annotations. Both speak the Open Inference Protocol (``/v2``), as
``mlops-lite serve`` does, so one client works against either.

Plain values in, plain values out: the caller reads the registry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlops_lite.errors import InvalidInput

PLATFORM = "onnxruntime_onnx"
MODEL_FILE = "model.onnx"
REPOSITORY = "model-repository"
MANIFEST = "inferenceservice.yaml"
TRITON_VERSION = "1"  # Triton's version folders are integers; the registry's version is in the annotations
RUNTIME = "kserve-tritonserver"
MODEL_FORMAT = {"name": "triton", "version": "2"}  # a model repository, as kserve-tritonserver declares it
ANNOTATION = "mlops-lite.io"
DEFAULT_MAX_BATCH_SIZE = 10_000  # mlops-lite serve's own default (settings.max_batch_size)

# Triton's datatype table (docs/user_guide/model_configuration.md, "Datatypes"): the ONNX
# Runtime column, by onnx.TensorProto element type number.
_ONNX_TO_TRITON = {
    1: "TYPE_FP32",     # FLOAT
    2: "TYPE_UINT8",    # UINT8
    3: "TYPE_INT8",     # INT8
    4: "TYPE_UINT16",   # UINT16
    5: "TYPE_INT16",    # INT16
    6: "TYPE_INT32",    # INT32
    7: "TYPE_INT64",    # INT64
    8: "TYPE_STRING",   # STRING
    9: "TYPE_BOOL",     # BOOL
    10: "TYPE_FP16",    # FLOAT16
    11: "TYPE_FP64",    # DOUBLE
    12: "TYPE_UINT32",  # UINT32
    13: "TYPE_UINT64",  # UINT64
}
# The Open Inference Protocol's name for each (what a client sends as "datatype").
PROTOCOL_DATATYPE = {triton: triton.removeprefix("TYPE_").replace("STRING", "BYTES") for triton in
                     _ONNX_TO_TRITON.values()}

# Kubernetes: an InferenceService name is a DNS-1035 label (KServe makes Services of it);
# label values are at most 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends.
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?"
                       r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")  # the CRD's resource quantity pattern
_STORAGE_SCHEMES = ("s3://", "gs://", "pvc://", "https://", "http://", "hdfs://", "webhdfs://", "oci://",
                    "hf://")
MAX_NAME = 45  # KServe's webhook refuses longer InferenceService names (the generated host names grow)


@dataclasses.dataclass(frozen=True)
class TensorConfig:
    """One input or output of config.pbtxt. ``reshape`` is the shape the model itself
    takes or gives when it differs from ``dims`` (``()`` for a batch-only tensor)."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None

    @property
    def datatype(self) -> str:
        """The protocol datatype a client sends (FP32, INT64, BYTES, ...)."""
        return PROTOCOL_DATATYPE[self.data_type]


@dataclasses.dataclass(frozen=True)
class TritonConfig:
    name: str
    max_batch_size: int
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    platform: str = PLATFORM

    def to_pbtxt(self, *, comment: str = "") -> str:
        """The protobuf text form of Triton's ModelConfig (config.pbtxt)."""
        lines = [f"# {text}" for text in comment.splitlines()]
        lines += [f"name: {_pb_string(self.name)}", f"platform: {_pb_string(self.platform)}",
                  f"max_batch_size: {self.max_batch_size}"]
        for key, tensors in (("input", self.inputs), ("output", self.outputs)):
            lines.append(f"{key} [")
            for i, tensor in enumerate(tensors):
                lines += ["  {", f"    name: {_pb_string(tensor.name)}", f"    data_type: {tensor.data_type}",
                          f"    dims: {_pb_dims(tensor.dims)}"]
                if tensor.reshape is not None:
                    lines.append(f"    reshape: {{ shape: {_pb_dims(tensor.reshape)} }}")
                lines.append("  }," if i < len(tensors) - 1 else "  }")
            lines.append("]")
        return "\n".join(lines) + "\n"


def _pb_dims(dims: Sequence[int]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]" if dims else "[ ]"


def _pb_string(value: str) -> str:
    """A protobuf text-format string literal: printable ASCII as is, the rest as octal escapes."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char in "\"\\":
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


# ------------------------------------------------------------------------------ ONNX -> config

def _tensor_shape(value_info: Any, where: str) -> tuple[int, str, list[int]]:
    """(element type, Triton type, full shape with -1 for a dynamic dimension)."""
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":
        raise InvalidInput(
            f"{where} {value_info.name!r} is a {kind or 'value of no type'}, not a tensor; Triton's onnxruntime "
            "backend serves tensors only (for a scikit-learn classifier, convert with zipmap disabled)",
            field=where, expected="tensor inputs and outputs")
    tensor = value_info.type.tensor_type
    triton = _ONNX_TO_TRITON.get(tensor.elem_type)
    if triton is None:
        raise InvalidInput(f"{where} {value_info.name!r} has ONNX element type {tensor.elem_type}, which Triton "
                           "does not serve", field=where, expected=", ".join(sorted(set(_ONNX_TO_TRITON.values()))))
    if not tensor.HasField("shape"):
        raise InvalidInput(f"{where} {value_info.name!r} has no shape in the ONNX graph", field=where,
                           expected="a tensor of known rank")
    shape = [dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else -1
             for dim in tensor.shape.dim]
    return tensor.elem_type, triton, shape


def _tensor_config(value_info: Any, where: str, max_batch_size: int) -> TensorConfig:
    _, triton, shape = _tensor_shape(value_info, where)
    if max_batch_size > 0:
        if not shape or shape[0] != -1:
            raise InvalidInput(
                f"{where} {value_info.name!r} has shape {shape}: no dynamic first (batch) dimension, so Triton "
                "cannot batch this model", field="max_batch_size", expected="0 for a model that does not batch")
        shape = shape[1:]
    if not shape:  # Triton needs non-empty dims: the batch-only tensor is [batch, 1] on the wire
        return TensorConfig(value_info.name, triton, (1,), ())
    return TensorConfig(value_info.name, triton, tuple(shape))


def triton_config(onnx_bytes: bytes, name: str, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> TritonConfig:
    """Triton's model configuration for an ONNX file, read from its graph."""
    import onnx

    check_name(name)
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 0:
        raise InvalidInput(f"max_batch_size must be a whole number >= 0, not {max_batch_size!r}",
                           field="max_batch_size", expected="0 (no batching) or a batch size >= 1")
    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InvalidInput(f"not an ONNX model: {exc}", field="onnx") from exc
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(_tensor_config(v, "input", max_batch_size) for v in graph.input if v.name not in initializers)
    outputs = tuple(_tensor_config(v, "output", max_batch_size) for v in graph.output)
    if not inputs or not outputs:
        raise InvalidInput("the ONNX graph has no inputs or no outputs", field="onnx")
    return TritonConfig(name=name, max_batch_size=max_batch_size, inputs=inputs, outputs=outputs)


# ------------------------------------------------------------------------------ InferenceService

def check_name(name: str, field: str = "name") -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not _DNS_1035.match(name):
        raise InvalidInput(f"bad {field} {name!r}", field=field,
                           expected=f"a DNS-1035 label of at most {MAX_NAME} characters: lowercase letters, digits "
                                    "and '-', starting with a letter (it names the InferenceService and the "
                                    "Triton model)")
    return name


def default_name(model: str) -> str:
    """The served name for a registry model: its name with '_' as '-' (DNS-1035)."""
    return model.replace("_", "-")


def default_storage_uri(name: str) -> str:
    """A placeholder: a PersistentVolumeClaim named ``models`` holding the exported
    ``model-repository`` folder. Point ``--storage-uri`` at wherever it is uploaded."""
    return f"pvc://models/{name}/{REPOSITORY}"


def _check_label(value: str, field: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise InvalidInput(f"{field} {value!r} is not a valid Kubernetes label value", field=field,
                           expected="at most 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends")
    return value


def inference_service(*, name: str, model: str, version: str, digest: str, run_id: str | None,
                      data_commits: Sequence[str], storage_uri: str, namespace: str | None = None,
                      cpu: str = "1", memory: str = "2Gi", runtime: str = RUNTIME,
                      min_replicas: int = 1, max_replicas: int = 1) -> dict[str, Any]:
    """The ``serving.kserve.io/v1beta1`` InferenceService for an exported repository."""
    check_name(name)
    if not isinstance(storage_uri, str) or not storage_uri.startswith(_STORAGE_SCHEMES):
        raise InvalidInput(f"bad storage_uri {storage_uri!r}", field="storage_uri",
                           expected="a URI KServe's storage initializer reads: " + ", ".join(_STORAGE_SCHEMES))
    for field, quantity in (("cpu", cpu), ("memory", memory)):
        if not isinstance(quantity, str) or not _QUANTITY.match(quantity):
            raise InvalidInput(f"bad {field} {quantity!r}", field=field,
                               expected="a Kubernetes quantity such as 500m, 1, 2Gi")
    if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
        raise InvalidInput(f"bad replicas: min {min_replicas}, max {max_replicas}", field="min_replicas",
                           expected="0 <= min_replicas <= max_replicas, max_replicas >= 1")
    if namespace is not None:
        check_name(namespace, "namespace")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InvalidInput(f"bad digest {digest!r}", field="digest", expected="a sha256 hex digest")
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/managed-by": "mlops-lite",
        f"{ANNOTATION}/model": _check_label(model, "model"),
        f"{ANNOTATION}/model-version": _check_label(version, "version"),
    }
    metadata["annotations"] = {
        f"{ANNOTATION}/model": model,
        f"{ANNOTATION}/model-version": version,
        f"{ANNOTATION}/model-digest": f"sha256:{digest}",
        f"{ANNOTATION}/run": run_id or "",
        f"{ANNOTATION}/data-commits": ",".join(data_commits),
    }
    resources = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": {
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "model": {
                "modelFormat": dict(MODEL_FORMAT),
                "runtime": runtime,
                "protocolVersion": "v2",
                "storageUri": storage_uri,
                "resources": resources,
            },
        }},
    }


def to_yaml(document: Mapping[str, Any], *, comment: str = "") -> str:
    """Block YAML for a document of mappings, lists, strings, numbers and booleans.

    Strings are written as JSON strings, which are YAML double-quoted scalars (YAML 1.2 is a
    superset of JSON), so no value is ever read back as another type ("1.0" stays a string)."""
    lines = [f"# {text}" for text in comment.splitlines()]
    _yaml_lines(document, 0, lines)
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"no YAML form for {type(value).__name__}")


def _yaml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z][A-Za-z0-9_./-]*", key) else json.dumps(key)


def _yaml_lines(value: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{_yaml_key(str(key))}:")
                _yaml_lines(item, indent + 1, lines)
            else:
                empty = "{}" if isinstance(item, Mapping) else "[]" if isinstance(item, list) else None
                lines.append(f"{pad}{_yaml_key(str(key))}: {empty or _yaml_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping | list) and item:
                nested: list[str] = []
                _yaml_lines(item, indent + 1, nested)
                first = nested[0].lstrip()
                lines.append(f"{pad}- {first}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        lines.append(pad + _yaml_scalar(value))


# ------------------------------------------------------------------------------ the folder

@dataclasses.dataclass(frozen=True)
class ExportLayout:
    out: Path
    config: Path
    model_file: Path
    manifest: Path


def layout(out: Path, name: str) -> ExportLayout:
    model_dir = out / REPOSITORY / name
    return ExportLayout(out=out, config=model_dir / "config.pbtxt", model_file=model_dir / TRITON_VERSION / MODEL_FILE,
                        manifest=out / MANIFEST)


def write_export(out: Path, *, name: str, onnx_bytes: bytes, digest: str, config_text: str, manifest_text: str,
                 force: bool = False) -> ExportLayout:
    """Write the repository and the manifest under ``out``. The ONNX bytes must hash to
    ``digest``, and read back so once written. A folder that exists and holds anything is
    refused unless ``force``; then ``out/model-repository`` is replaced whole and the
    manifest overwritten (nothing else in ``out`` is touched)."""
    if hashlib.sha256(onnx_bytes).hexdigest() != digest:
        raise InvalidInput("the ONNX bytes do not match the version's digest", field="digest",
                           expected=f"sha256:{digest}")
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out} exists and is not a folder", field="out", expected="a new or empty folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InvalidInput(f"--out {out} exists and is not empty", field="out",
                           expected="a new or empty folder, or --force to replace the export in it")
    paths = layout(out, name)
    if (out / REPOSITORY).is_dir():  # only with force: a stale model left beside ours would be served too
        shutil.rmtree(out / REPOSITORY)
    for path, data in ((paths.model_file, onnx_bytes), (paths.config, config_text.encode()),
                       (paths.manifest, manifest_text.encode())):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    if hashlib.sha256(paths.model_file.read_bytes()).hexdigest() != digest:
        raise InvalidInput(f"{paths.model_file} does not read back as sha256:{digest}", field="out")
    return paths
