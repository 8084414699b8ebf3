"""The OIP binary tensor data extension end to end: the unmodified tritonclient with its
defaults (binary inputs and outputs) against a real server on 127.0.0.1, compared with
the JSON encoding of the same rows; hand-made binary bodies for the malformed cases."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import holdout_rows
from tests.e2e.test_oip import DEPLOYMENT, INFER, VERSION, Oip, _features, _request, oip  # noqa: F401

httpclient = pytest.importorskip("tritonclient.http")

HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def admin(oip: Oip) -> Iterator[httpx.Client]:  # noqa: F811
    with oip.client(oip.token) as client:
        yield client


@pytest.fixture
def triton(oip: Oip) -> Iterator[Any]:  # noqa: F811
    client = httpclient.InferenceServerClient(url=oip.url.removeprefix("http://"))
    try:
        yield client
    finally:
        client.close()


def _auth(oip: Oip) -> dict[str, str]:  # noqa: F811
    # A fresh dict each call: tritonclient writes its own headers into the one it is given.
    return {"Authorization": f"Bearer {oip.token}"}


def _triton_inputs(spec: Any, rows: list[dict[str, Any]], numeric_type: str = "FP32") -> list[Any]:
    """tritonclient inputs with its defaults: set_data_from_numpy sends binary data."""
    numeric, categorical = _features(spec)
    dtypes = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}
    inputs = []
    for name in [*numeric, *categorical]:
        if name in numeric:
            array = np.asarray([[row[name]] for row in rows], dtype=dtypes[numeric_type])
            tensor = httpclient.InferInput(name, list(array.shape), numeric_type)
        else:
            array = np.asarray([[str(row[name])] for row in rows], dtype=object)
            tensor = httpclient.InferInput(name, list(array.shape), "BYTES")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def _json_answer(admin: httpx.Client, spec: Any, rows: list[dict[str, Any]]) -> tuple[list[int], np.ndarray]:
    response = admin.post(INFER, json=_request(spec, rows))
    assert response.status_code == 200, response.text
    label, probabilities = response.json()["outputs"]
    return label["data"], np.asarray(probabilities["data"], dtype=np.float64).reshape(probabilities["shape"])


def _logged(oip: Oip, request_id: str) -> list[dict[str, Any]]:  # noqa: F811
    oip.platform.monitoring.flush()
    table = oip.platform.monitoring.query(
        f"SELECT features, prediction, probability FROM predictions WHERE request_id = '{request_id}'")
    return list(table.to_pylist())


# ------------------------------------------------------------------------------------ parity

def test_tritonclient_defaults_are_binary_and_match_json(oip: Oip, admin: httpx.Client,  # noqa: F811
                                                         triton: Any) -> None:
    rows = holdout_rows(oip.spec, 40)
    labels, probabilities = _json_answer(admin, oip.spec, rows)
    inputs = _triton_inputs(oip.spec, rows)
    # The defaults really are the binary extension, in the request...
    assert all(t._get_binary_data() is not None and "data" not in t._get_tensor() for t in inputs)
    assert all(t._get_tensor()["parameters"]["binary_data_size"] > 0 for t in inputs)
    # ... and in the answer: with no outputs named, tritonclient asks binary_data_output.
    for outputs in (None, [httpclient.InferRequestedOutput("label"), httpclient.InferRequestedOutput("probabilities")]):
        result = triton.infer(DEPLOYMENT, inputs, outputs=outputs, headers=_auth(oip), request_id="bin-1")
        response = result.get_response()
        assert response["id"] == "bin-1" and response["model_version"] == VERSION
        assert [o["name"] for o in response["outputs"]] == ["label", "probabilities"]
        assert all("data" not in o and o["parameters"]["binary_data_size"] > 0 for o in response["outputs"])
        assert result.as_numpy("label").tolist() == labels
        assert result.as_numpy("probabilities").shape == (40, 2)
        np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=0, atol=1e-6)


def test_other_numeric_datatypes_and_compressed_bodies(oip: Oip, admin: httpx.Client,  # noqa: F811
                                                       triton: Any) -> None:
    rows = holdout_rows(oip.spec, 12)
    labels, probabilities = _json_answer(admin, oip.spec, rows)
    for numeric_type in ("FP64", "FP32"):
        for compression in (None, "gzip", "deflate"):
            result = triton.infer(DEPLOYMENT, _triton_inputs(oip.spec, rows, numeric_type), headers=_auth(oip),
                                  request_compression_algorithm=compression)
            assert result.as_numpy("label").tolist() == labels, (numeric_type, compression)
            np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=0, atol=1e-6)


def test_json_and_binary_outputs_mix(oip: Oip, admin: httpx.Client, triton: Any) -> None:  # noqa: F811
    rows = holdout_rows(oip.spec, 6)
    labels, probabilities = _json_answer(admin, oip.spec, rows)
    outputs = [httpclient.InferRequestedOutput("probabilities"),
               httpclient.InferRequestedOutput("label", binary_data=False)]
    result = triton.infer(DEPLOYMENT, _triton_inputs(oip.spec, rows), outputs=outputs, headers=_auth(oip))
    assert result.get_output("label")["data"] == labels
    assert "data" not in result.get_output("probabilities")
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=0, atol=1e-6)
    # JSON inputs with binary outputs, and binary inputs with JSON outputs
    json_inputs = _triton_inputs(oip.spec, rows)
    for tensor, source in zip(json_inputs, _triton_inputs(oip.spec, rows), strict=True):
        tensor.set_data_from_numpy(_as_numpy(source, rows, oip.spec), binary_data=False)
    result = triton.infer(DEPLOYMENT, json_inputs, headers=_auth(oip))
    assert result.as_numpy("label").tolist() == labels
    plain = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("label", "probabilities")]
    result = triton.infer(DEPLOYMENT, _triton_inputs(oip.spec, rows), outputs=plain, headers=_auth(oip))
    assert result.get_output("label")["data"] == labels


def _as_numpy(tensor: Any, rows: list[dict[str, Any]], spec: Any) -> np.ndarray:
    name = tensor.name()
    if name in spec.numeric:
        return np.asarray([[row[name]] for row in rows], dtype=np.float32)
    return np.asarray([[str(row[name])] for row in rows], dtype=object)


def _binary_request(spec: Any, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[bytes]]:
    """A binary request made by hand: FP32 numbers, length-prefixed BYTES."""
    numeric, categorical = _features(spec)
    inputs, blobs = [], []
    for name in [*numeric, *categorical]:
        if name in numeric:
            blob = np.asarray([row[name] for row in rows], dtype="<f4").tobytes()
            datatype = "FP32"
        else:
            blob = b"".join(struct.pack("<I", len(s)) + s for s in (str(row[name]).encode() for row in rows))
            datatype = "BYTES"
        inputs.append({"name": name, "shape": [len(rows), 1], "datatype": datatype,
                       "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    return {"id": "raw-1", "inputs": inputs}, blobs


def _post(admin: httpx.Client, header: dict[str, Any] | bytes, blobs: list[bytes],
          length: int | str | None = None) -> httpx.Response:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream",
               HEADER: str(len(head) if length is None else length)}
    return admin.post(INFER, content=head + b"".join(blobs), headers=headers)


def test_binary_response_format_and_prediction_log(oip: Oip, admin: httpx.Client) -> None:  # noqa: F811
    rows = holdout_rows(oip.spec, 9)
    labels, probabilities = _json_answer(admin, oip.spec, rows)
    header, blobs = _binary_request(oip.spec, rows)
    header["outputs"] = [{"name": "label", "parameters": {"binary_data": True}},
                         {"name": "probabilities", "parameters": {"binary_data": True}}]
    response = _post(admin, header, blobs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    size = int(response.headers[HEADER])
    answer = json.loads(response.content[:size])
    label, probs = answer["outputs"]
    assert label == {"name": "label", "datatype": "INT64", "shape": [9], "parameters": {"binary_data_size": 72}}
    assert probs == {"name": "probabilities", "datatype": "FP32", "shape": [9, 2],
                     "parameters": {"binary_data_size": 72}}
    data = response.content[size:]
    assert len(data) == 144
    assert np.frombuffer(data[:72], dtype="<i8").tolist() == labels
    np.testing.assert_allclose(np.frombuffer(data[72:], dtype="<f4").reshape(9, 2), probabilities, atol=1e-6)
    # Binary requests reach the prediction log, one row per instance, features included.
    logged = _logged(oip, "raw-1")
    assert len(logged) == 9
    numeric, categorical = _features(oip.spec)
    features = json.loads(logged[0]["features"])
    assert set(features) == {*numeric, *categorical}
    assert features[categorical[0]] == str(rows[0][categorical[0]])
    assert sorted(int(r["prediction"]) for r in logged) == sorted(labels)


# ------------------------------------------------------------------------------------ bad input

def _bad_binary_cases(spec: Any) -> list[tuple[str, dict[str, Any] | bytes, list[bytes], int | str | None, str]]:
    """(label, JSON header, blobs, header length or None for the true one, a word the error must have)."""
    numeric, categorical = _features(spec)
    rows = holdout_rows(spec, 3)
    num, cat = numeric[0], categorical[0]
    header, blobs = _binary_request(spec, rows)
    i_num = next(i for i, t in enumerate(header["inputs"]) if t["name"] == num)
    i_cat = next(i for i, t in enumerate(header["inputs"]) if t["name"] == cat)
    head_len = len(json.dumps(header).encode())

    def edited(index: int, **changes: Any) -> dict[str, Any]:
        copy = json.loads(json.dumps(header))
        copy["inputs"][index].update(changes)
        return copy

    def swap(index: int, blob: bytes) -> list[bytes]:
        return [blob if i == index else b for i, b in enumerate(blobs)]

    fp64 = np.asarray([row[num] for row in rows], dtype="<f8").tobytes()
    nan = np.asarray([np.nan, 1.0, 2.0], dtype="<f4").tobytes()
    short_bytes = struct.pack("<I", 50) + b"abc"
    return [
        ("header length larger than the body", header, blobs, head_len + 10_000, HEADER),
        ("header length not a number", header, blobs, "twelve", HEADER),
        ("header length cuts the JSON", header, blobs, head_len - 5, "json"),
        ("binary_data_size larger than the data", edited(i_num, parameters={"binary_data_size": 10_000}),
         blobs, None, num),
        ("binary_data_size smaller than the data", edited(i_num, parameters={"binary_data_size": 4}),
         blobs, None, num),
        ("bytes that no input claims", header, [*blobs, b"\0" * 8], None, "no input"),
        ("FP64 bytes sent as FP32 (wrong dtype size)",
         edited(i_num, parameters={"binary_data_size": len(fp64)}), swap(i_num, fp64), None, num),
        ("BYTES sent for a number", edited(i_num, datatype="BYTES"), blobs, None, num),
        ("FP32 sent for a string", edited(i_cat, datatype="FP32"), blobs, None, cat),
        ("unknown datatype", edited(i_num, datatype="FP8"), blobs, None, num),
        ("NaN in binary data", header, swap(i_num, nan), None, num),
        ("BYTES element longer than its data",
         edited(i_cat, parameters={"binary_data_size": len(short_bytes)}), swap(i_cat, short_bytes), None, cat),
        ("BYTES data not UTF-8", edited(i_cat, parameters={"binary_data_size": 3 * 5}),
         swap(i_cat, (struct.pack("<I", 1) + b"\xff") * 3), None, cat),
        ("negative binary_data_size", edited(i_num, parameters={"binary_data_size": -4}), blobs, None, num),
        ("both data and binary_data_size", edited(i_num, data=[1.0, 2.0, 3.0]), blobs, None, num),
        ("binary_data_output not a boolean", {**header, "parameters": {"binary_data_output": "yes"}}, blobs,
         None, "binary_data_output"),
    ]


def test_malformed_binary_is_400_naming_the_input(oip: Oip, admin: httpx.Client) -> None:  # noqa: F811
    before = oip.platform.monitoring.stats()["rows_logged"]
    for label, header, blobs, length, needle in _bad_binary_cases(oip.spec):
        response = _post(admin, header, blobs, length)
        assert response.status_code == 400, (label, response.status_code, response.text)
        body = response.json()
        assert body["code"] == "invalid_input" and body["field"], (label, body)
        assert needle.lower() in body["error"].lower(), (label, body)
    # binary_data_size without the header that says where the JSON ends
    header, blobs = _binary_request(oip.spec, holdout_rows(oip.spec, 2))
    response = admin.post(INFER, content=json.dumps(header).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["field"] == HEADER, response.text
    # a body that says it is gzip and is not
    response = admin.post(INFER, content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400 and "gzip" in response.json()["error"]
    assert oip.platform.monitoring.stats()["rows_logged"] == before  # nothing was logged for bad requests
