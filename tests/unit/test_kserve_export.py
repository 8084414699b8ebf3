"""The KServe export's layout: config.pbtxt read from real ONNX graphs (parsed back with
Triton's own ModelConfig protobuf, as tritonclient ships it), and the InferenceService
validated against KServe's CRD schema (a pruned copy, tests/fixtures/kserve)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
import pytest

from mlops_lite import InvalidInput, TrainingSpec
from mlops_lite.inference import kserve
from mlops_lite.training import train_classifier

from ..conftest import DATA, FEATURE_EXCLUDE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kserve"
DIGEST = "a" * 64


def model_config_pb2() -> Any:
    """Triton's ModelConfig message, from the copy of model_config_pb2 that tritonclient ships.
    Loaded by path: tritonclient.grpc's package imports grpc, which the http extra lacks."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tritonclient (the dev extra) is not installed: it carries Triton's model_config.proto")
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def parse_pbtxt(text: str) -> Any:
    """config.pbtxt as Triton reads it: text_format refuses unknown fields and bad enums."""
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2().ModelConfig())


@pytest.fixture(scope="module")
def loan_model() -> tuple[bytes, TrainingSpec]:
    """The loan classifier as training converts it (skl2onnx, numeric and string inputs)."""
    table = pacsv.read_csv(DATA / "loans.csv")
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE)
    return train_classifier(table, spec).onnx, spec


def _onnx_types(onnx_bytes: bytes) -> dict[str, tuple[int, list[int]]]:
    import onnx

    graph = onnx.load_model_from_string(onnx_bytes).graph
    return {v.name: (v.type.tensor_type.elem_type,
                     [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim])
            for v in [*graph.input, *graph.output]}


# ------------------------------------------------------------------------------ config.pbtxt

def test_config_of_the_trained_loan_model_matches_its_graph(loan_model: tuple[bytes, TrainingSpec]) -> None:
    import onnx

    onnx_bytes, spec = loan_model
    config = kserve.triton_config(onnx_bytes, "loans", max_batch_size=64)
    parsed = parse_pbtxt(config.to_pbtxt(comment="loan-default@1.0.0"))
    pb2 = model_config_pb2()
    assert parsed.name == "loans" and parsed.platform == "onnxruntime_onnx" and parsed.max_batch_size == 64
    graph = _onnx_types(onnx_bytes)
    elem = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.STRING: "TYPE_STRING",
            onnx.TensorProto.INT64: "TYPE_INT64"}
    # every graph input, in the graph's order: numeric features FP32, categorical STRING, [batch, 1]
    assert [i.name for i in parsed.input] == [*spec.numeric, *spec.categorical]
    for tensor in parsed.input:
        elem_type, shape = graph[tensor.name]
        assert pb2.DataType.Name(tensor.data_type) == elem[elem_type]
        assert [-1, *tensor.dims] == shape == [-1, 1]
        assert not tensor.HasField("reshape")
    assert {pb2.DataType.Name(i.data_type) for i in parsed.input} == {"TYPE_FP32", "TYPE_STRING"}
    # outputs: label is [batch] in the graph, so dims [1] with an empty reshape; probabilities [batch, 2]
    outputs = {o.name: o for o in parsed.output}
    assert list(outputs) == ["label", "probabilities"]
    assert pb2.DataType.Name(outputs["label"].data_type) == "TYPE_INT64" == elem[graph["label"][0]]
    assert graph["label"][1] == [-1] and list(outputs["label"].dims) == [1]
    assert outputs["label"].HasField("reshape") and list(outputs["label"].reshape.shape) == []
    assert pb2.DataType.Name(outputs["probabilities"].data_type) == "TYPE_FP32"
    assert graph["probabilities"][1] == [-1, 2] and list(outputs["probabilities"].dims) == [2]
    # the protocol names a client sends
    assert {t.name: t.datatype for t in config.inputs} == {
        **{n: "FP32" for n in spec.numeric}, **{n: "BYTES" for n in spec.categorical}}


def test_no_batching_keeps_the_full_shapes(loan_model: tuple[bytes, TrainingSpec]) -> None:
    onnx_bytes, _ = loan_model
    parsed = parse_pbtxt(kserve.triton_config(onnx_bytes, "loans", max_batch_size=0).to_pbtxt())
    assert parsed.max_batch_size == 0
    assert all(list(i.dims) == [-1, 1] for i in parsed.input)
    assert {o.name: list(o.dims) for o in parsed.output} == {"label": [-1], "probabilities": [-1, 2]}


def _graph(inputs: list[Any], outputs: list[Any]) -> bytes:
    """A tiny real ONNX model: each output is an Identity of the first input of its type."""
    import onnx
    from onnx import helper

    nodes = []
    for out in outputs:
        source = next(i for i in inputs if i.type.tensor_type.elem_type == out.type.tensor_type.elem_type)
        nodes.append(helper.make_node("Identity", [source.name], [out.name]))
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def test_string_int64_double_and_fixed_shapes_map_to_triton_types() -> None:
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"]),
              helper.make_tensor_value_info("count", TensorProto.INT64, ["batch", 3]),
              helper.make_tensor_value_info("score", TensorProto.DOUBLE, [None, 2, 4]),
              helper.make_tensor_value_info("flag", TensorProto.BOOL, ["n", 1])]
    outputs = [helper.make_tensor_value_info("text_out", TensorProto.STRING, ["batch"]),
               helper.make_tensor_value_info("count_out", TensorProto.INT64, ["batch", 3])]
    model = _graph(inputs, outputs)
    # onnxruntime runs it: the graph is real, not only well-formed
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    text = np.asarray(["a", "b"], dtype=object)
    result = session.run(None, {"text": text, "count": np.ones((2, 3), np.int64),
                                "score": np.zeros((2, 2, 4)), "flag": np.ones((2, 1), bool)})
    assert list(result[0]) == ["a", "b"]
    parsed = parse_pbtxt(kserve.triton_config(model, "m", max_batch_size=8).to_pbtxt())
    pb2 = model_config_pb2()
    got = {t.name: (pb2.DataType.Name(t.data_type), list(t.dims), t.HasField("reshape")) for t in parsed.input}
    assert got == {"text": ("TYPE_STRING", [1], True), "count": ("TYPE_INT64", [3], False),
                   "score": ("TYPE_FP64", [2, 4], False), "flag": ("TYPE_BOOL", [1], False)}
    assert [(o.name, pb2.DataType.Name(o.data_type)) for o in parsed.output] == [
        ("text_out", "TYPE_STRING"), ("count_out", "TYPE_INT64")]
    assert onnx.TensorProto.STRING == 8  # the element number the mapping keys on


def test_a_fixed_batch_dimension_needs_max_batch_size_zero() -> None:
    from onnx import TensorProto, helper

    model = _graph([helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])])
    with pytest.raises(InvalidInput) as caught:
        kserve.triton_config(model, "m", max_batch_size=8)
    assert caught.value.field == "max_batch_size" and "'x'" in caught.value.message
    parsed = parse_pbtxt(kserve.triton_config(model, "m", max_batch_size=0).to_pbtxt())
    assert list(parsed.input[0].dims) == [4, 3] and parsed.max_batch_size == 0


def test_a_zipmap_output_is_refused_naming_it() -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    zipmapped = convert_sklearn(clf, initial_types=[("x", FloatTensorType([None, 3]))]).SerializeToString()
    with pytest.raises(InvalidInput) as caught:
        kserve.triton_config(zipmapped, "m")
    assert caught.value.field == "output" and "sequence_type" in caught.value.message
    plain = convert_sklearn(clf, initial_types=[("x", FloatTensorType([None, 3]))],
                            options={id(clf): {"zipmap": False}}).SerializeToString()
    parsed = parse_pbtxt(kserve.triton_config(plain, "m").to_pbtxt())
    assert [(i.name, list(i.dims)) for i in parsed.input] == [("x", [3])]


@pytest.mark.parametrize("value, field", [(b"not onnx at all", "onnx"), (-1, "max_batch_size"),
                                          (True, "max_batch_size"), ("Bad_Name", "name")])
def test_bad_input_names_the_field(loan_model: tuple[bytes, TrainingSpec], value: Any, field: str) -> None:
    onnx_bytes, _ = loan_model
    kwargs: dict[str, Any] = {"onnx_bytes": onnx_bytes, "name": "loans"}
    if field == "onnx":
        kwargs["onnx_bytes"] = value
    elif field == "name":
        kwargs["name"] = value
    else:
        kwargs["max_batch_size"] = value
    with pytest.raises(InvalidInput) as caught:
        kserve.triton_config(**kwargs)
    assert caught.value.field == field


def test_names_with_quotes_survive_the_text_format() -> None:
    from onnx import TensorProto, helper

    odd = 'a "quoted" name\\ é'
    model = _graph([helper.make_tensor_value_info(odd, TensorProto.FLOAT, [None, 1])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])])
    parsed = parse_pbtxt(kserve.triton_config(model, "m").to_pbtxt(comment="line one\nline two"))
    assert parsed.input[0].name == odd


# ------------------------------------------------------------------------------ InferenceService

def _schema() -> dict[str, Any]:
    return json.loads((FIXTURES / "inferenceservice-v1beta1.schema.json").read_text())


def _unknown_fields(document: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """What the API server's strict field validation (kubectl apply --validate=strict)
    refuses: a key a structural schema does not declare."""
    if not isinstance(document, dict) or schema.get("x-pruned") or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    properties = schema.get("properties")
    if properties is None:
        return []
    found = []
    for key, value in document.items():
        if key not in properties:
            found.append(f"{path}.{key}".lstrip("."))
        else:
            found += _unknown_fields(value, properties[key], f"{path}.{key}")
    return found


def _validate(document: dict[str, Any]) -> None:
    import jsonschema

    schema = _schema()
    jsonschema.Draft7Validator(schema).validate(document)
    assert _unknown_fields(document, schema) == []
    # ObjectMeta, which the CRD leaves to the API server: a DNS-1035 name, label and annotation syntax
    meta = document["metadata"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 63
    qualified = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
    for key, value in meta["labels"].items():
        assert re.fullmatch(qualified, key) and re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", value)
        assert len(value) <= 63
    assert all(re.fullmatch(qualified, key) and isinstance(v, str) for key, v in meta["annotations"].items())


def _service(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"name": "loans", "model": "loan-default", "version": "1.0.0", "digest": DIGEST,
                              "run_id": "run-1", "data_commits": ["c1", "c2"],
                              "storage_uri": "s3://bucket/loans/model-repository"}
    values.update(overrides)
    return kserve.inference_service(**values)


def test_the_fixture_is_kserves_crd_schema() -> None:
    schema = _schema()
    source = schema["x-source"]
    assert source["repository"] == "https://github.com/kserve/kserve" and re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert source["group"] == "serving.kserve.io" and source["kind"] == "InferenceService"
    model = schema["properties"]["spec"]["properties"]["predictor"]["properties"]["model"]
    assert model["properties"]["modelFormat"]["required"] == ["name"]


def test_inference_service_validates_against_the_crd() -> None:
    document = _service(namespace="ml", cpu="500m", memory="1Gi", min_replicas=1, max_replicas=3)
    _validate(document)
    assert document["apiVersion"] == "serving.kserve.io/v1beta1" and document["kind"] == "InferenceService"
    model = document["spec"]["predictor"]["model"]
    assert model == {"modelFormat": {"name": "triton", "version": "2"}, "runtime": "kserve-tritonserver",
                     "protocolVersion": "v2", "storageUri": "s3://bucket/loans/model-repository",
                     "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                   "limits": {"cpu": "500m", "memory": "1Gi"}}}
    meta = document["metadata"]
    assert meta["name"] == "loans" and meta["namespace"] == "ml"
    assert meta["labels"]["mlops-lite.io/model"] == "loan-default"
    assert meta["labels"]["mlops-lite.io/model-version"] == "1.0.0"
    assert meta["annotations"] == {"mlops-lite.io/model": "loan-default", "mlops-lite.io/model-version": "1.0.0",
                                   "mlops-lite.io/model-digest": f"sha256:{DIGEST}", "mlops-lite.io/run": "run-1",
                                   "mlops-lite.io/data-commits": "c1,c2"}


def test_the_validation_can_fail() -> None:
    """The checks above refuse what the API server would: a misspelt field, a wrong type,
    a missing required field, a bad quantity."""
    import jsonschema

    for breaking in (
        lambda d: d["spec"]["predictor"]["model"].update(storageURI="s3://x"),
        lambda d: d["spec"]["predictor"].update(minReplicas="one"),
        lambda d: d["spec"]["predictor"]["model"]["modelFormat"].pop("name"),
        lambda d: d["spec"]["predictor"]["model"]["resources"]["limits"].update(cpu="lots"),
        lambda d: d["spec"]["predictor"].update(scaleMetric="latency"),
    ):
        document = _service()
        breaking(document)
        with pytest.raises((jsonschema.ValidationError, AssertionError)):
            _validate(document)


def test_yaml_reads_back_as_the_document() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML (installed with prefect) reads the manifest back")
    document = _service(version="1.10.0", run_id=None, data_commits=[])
    text = kserve.to_yaml(document, comment="loan-default@1.10.0")
    assert text.startswith("# loan-default@1.10.0\n")
    assert yaml.safe_load(text) == document
    assert yaml.safe_load(kserve.to_yaml({"a": [{"b": 1, "c": [True, None]}, "x: y"], "e": {}, "f": []})) == {
        "a": [{"b": 1, "c": [True, None]}, "x: y"], "e": {}, "f": []}


@pytest.mark.parametrize("override, field", [
    ({"name": "Loans"}, "name"), ({"name": "9loans"}, "name"), ({"name": "x" * 46}, "name"),
    ({"storage_uri": "/tmp/models"}, "storage_uri"), ({"cpu": "lots"}, "cpu"), ({"memory": ""}, "memory"),
    ({"namespace": "Bad_NS"}, "namespace"), ({"digest": "abc"}, "digest"),
    ({"min_replicas": 3, "max_replicas": 1}, "min_replicas"), ({"version": "-1.0"}, "version"),
])
def test_bad_service_values_name_the_field(override: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _service(**override)
    assert caught.value.field == field


# ------------------------------------------------------------------------------ the folder

def test_write_export_lays_out_a_triton_repository(tmp_path: Path) -> None:
    data = b"onnx bytes"
    digest = hashlib.sha256(data).hexdigest()
    out = tmp_path / "export"
    paths = kserve.write_export(out, name="loans", onnx_bytes=data, digest=digest, config_text="c\n",
                                manifest_text="m\n")
    assert paths.model_file == out / "model-repository" / "loans" / "1" / "model.onnx"
    assert paths.model_file.read_bytes() == data
    assert (out / "model-repository" / "loans" / "config.pbtxt").read_text() == "c\n"
    assert (out / "inferenceservice.yaml").read_text() == "m\n"
    # not empty: refused, nothing changed
    with pytest.raises(InvalidInput) as caught:
        kserve.write_export(out, name="other", onnx_bytes=data, digest=digest, config_text="x", manifest_text="y")
    assert caught.value.field == "out" and "--force" in (caught.value.expected or "")
    assert (out / "inferenceservice.yaml").read_text() == "m\n" and not (out / "model-repository" / "other").exists()
    # --force replaces the repository whole (no stale model beside the new one), keeps other files
    (out / "notes.txt").write_text("mine")
    kserve.write_export(out, name="other", onnx_bytes=data, digest=digest, config_text="x", manifest_text="y",
                        force=True)
    assert sorted(p.name for p in (out / "model-repository").iterdir()) == ["other"]
    assert (out / "notes.txt").read_text() == "mine"


def test_write_export_refuses_bytes_that_miss_the_digest(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        kserve.write_export(tmp_path / "x", name="loans", onnx_bytes=b"tampered", digest=DIGEST, config_text="",
                            manifest_text="")
    assert caught.value.field == "digest"
    assert not (tmp_path / "x").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInput) as caught:
        kserve.write_export(tmp_path / "file", name="loans", onnx_bytes=b"", digest=hashlib.sha256(b"").hexdigest(),
                            config_text="", manifest_text="")
    assert caught.value.field == "out"

