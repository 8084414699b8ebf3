"""The Open Inference Protocol (KServe v2 REST) end to end: a real server on 127.0.0.1
over a real platform, spoken to with raw httpx and with the unmodified tritonclient."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import build_loop, holdout_rows

DEPLOYMENT, VERSION = "loans", "1.0.0"
INFER = f"/v2/models/{DEPLOYMENT}/infer"


@dataclasses.dataclass
class Oip:
    url: str
    platform: Any
    token: str
    spec: Any

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def oip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oip]:
    from server import create_app
    from server.runner import serve_in_thread

    home: Path = tmp_path_factory.mktemp("oip") / "home"
    platform, token, spec = build_loop(home)
    try:
        server = serve_in_thread(create_app(platform))
        try:
            yield Oip(url=server.url, platform=platform, token=token, spec=spec)
        finally:
            server.stop()
    finally:
        platform.close()  # type: ignore[attr-defined]


@pytest.fixture
def admin(oip: Oip) -> Iterator[httpx.Client]:
    with oip.client(oip.token) as client:
        yield client


def _features(spec: Any) -> tuple[list[str], list[str]]:
    return list(spec.numeric), list(spec.categorical)


def _request(spec: Any, rows: list[dict[str, Any]], *, nested: bool = True) -> dict[str, Any]:
    numeric, categorical = _features(spec)
    inputs = []
    for name in [*numeric, *categorical]:
        values = [row[name] for row in rows]
        if name in numeric:
            values = [float(v) for v in values]
        data: list[Any] = [[v] for v in values] if nested else values
        inputs.append({"name": name, "shape": [len(rows), 1],
                       "datatype": "FP64" if name in numeric else "BYTES", "data": data})
    return {"id": "req-1", "inputs": inputs}


# ------------------------------------------------------------------------------------------ routes

def test_health_live_and_ready(admin: httpx.Client) -> None:
    assert admin.get("/v2/health/live").status_code == 200
    ready = admin.get("/v2/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True


def test_routes_need_a_bearer_token(oip: Oip) -> None:
    with oip.client() as anonymous:
        for path in ("/v2/health/live", f"/v2/models/{DEPLOYMENT}"):
            response = anonymous.get(path)
            assert response.status_code == 401
            assert "bearer" in response.json()["error"].lower()
        assert anonymous.post(INFER, json={}).status_code == 401
    with oip.client("not-a-token") as wrong:
        assert wrong.get("/v2/health/live").status_code == 401


def test_model_metadata(oip: Oip, admin: httpx.Client) -> None:
    response = admin.get(f"/v2/models/{DEPLOYMENT}")
    assert response.status_code == 200, response.text
    meta = response.json()
    numeric, categorical = _features(oip.spec)
    assert meta["name"] == DEPLOYMENT and meta["versions"] == [VERSION]
    assert meta["platform"] == "onnxruntime_onnx"
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types == {**{n: "FP32" for n in numeric}, **{n: "BYTES" for n in categorical}}
    assert all(i["shape"] == [-1, 1] for i in meta["inputs"])
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    assert admin.get(f"/v2/models/{DEPLOYMENT}/versions/{VERSION}").json() == meta


def test_model_ready_and_unknown_models(admin: httpx.Client) -> None:
    assert admin.get(f"/v2/models/{DEPLOYMENT}/ready").status_code == 200
    assert admin.get(f"/v2/models/{DEPLOYMENT}/versions/{VERSION}/ready").status_code == 200
    for path in ("/v2/models/nope", "/v2/models/nope/ready", f"/v2/models/{DEPLOYMENT}/versions/9.9.9",
                 f"/v2/models/{DEPLOYMENT}/versions/9.9.9/ready"):
        response = admin.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]
    response = admin.post("/v2/models/nope/infer", json={"inputs": []})
    assert response.status_code == 404 and "nope" in response.json()["error"]


def test_infer_matches_native_predict(oip: Oip, admin: httpx.Client) -> None:
    rows = holdout_rows(oip.spec, 20)
    expected = oip.platform.deployments.predict(DEPLOYMENT, rows)
    for nested in (True, False):
        response = admin.post(INFER, json=_request(oip.spec, rows, nested=nested))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_name"] == DEPLOYMENT and body["model_version"] == VERSION and body["id"] == "req-1"
        label, probabilities = body["outputs"]
        assert label == {"name": "label", "datatype": "INT64", "shape": [20], "data": list(expected.predictions)}
        assert probabilities["name"] == "probabilities" and probabilities["datatype"] == "FP32"
        assert probabilities["shape"] == [20, 2]
        np.testing.assert_allclose(np.asarray(probabilities["data"]).reshape(20, 2),
                                   np.asarray(expected.probabilities), rtol=1e-6, atol=1e-7)


def test_infer_versioned_route_and_requested_outputs(oip: Oip, admin: httpx.Client) -> None:
    rows = holdout_rows(oip.spec, 3)
    request = {**_request(oip.spec, rows), "outputs": [{"name": "probabilities"}]}
    response = admin.post(f"/v2/models/{DEPLOYMENT}/versions/{VERSION}/infer", json=request)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert [o["name"] for o in outputs] == ["probabilities"] and outputs[0]["shape"] == [3, 2]
    wrong = admin.post(f"/v2/models/{DEPLOYMENT}/versions/2.0.0/infer", json=request)
    assert wrong.status_code == 404 and "2.0.0" in wrong.json()["error"]


def test_infer_accepts_integer_datatypes_and_flat_shape(oip: Oip, admin: httpx.Client) -> None:
    rows = holdout_rows(oip.spec, 4)
    request = _request(oip.spec, rows, nested=False)
    numeric, _ = _features(oip.spec)
    for tensor in request["inputs"]:
        tensor["shape"] = [4]
        if tensor["name"] == numeric[0]:
            tensor["datatype"], tensor["data"] = "INT64", [int(v) for v in tensor["data"]]
    response = admin.post(INFER, json=request)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [4]


# ------------------------------------------------------------------------------------- bad input

def _bad_cases(spec: Any) -> list[tuple[str, Any, str]]:
    numeric, categorical = _features(spec)
    base = _request(spec, holdout_rows(spec, 2))
    num, cat = numeric[0], categorical[0]

    def edit(change: Any) -> dict[str, Any]:
        request = copy.deepcopy(base)
        change(request)
        return request

    def tensor(request: dict[str, Any], name: str) -> dict[str, Any]:
        return next(t for t in request["inputs"] if t["name"] == name)

    return [
        ("not an object", [1, 2], "json object"),
        ("no inputs", {"inputs": []}, "inputs"),
        ("unknown input", edit(lambda r: r["inputs"].append({**tensor(r, num), "name": "shoe_size"})),
         "shoe_size"),
        ("missing input", edit(lambda r: r["inputs"].remove(tensor(r, num))), num),
        ("duplicate input", edit(lambda r: r["inputs"].append(tensor(r, num))), num),
        ("string datatype for a number", edit(lambda r: tensor(r, num).update(datatype="BYTES")), "datatype"),
        ("number datatype for a string", edit(lambda r: tensor(r, cat).update(datatype="FP32")), "datatype"),
        ("unknown datatype", edit(lambda r: tensor(r, num).update(datatype="FP8")), "datatype"),
        ("strings as FP32 data", edit(lambda r: tensor(r, num).update(data=[["a"], ["b"]])), num),
        ("floats as INT64 data", edit(lambda r: tensor(r, num).update(datatype="INT64", data=[1.5, 2.5])),
         "integers"),
        ("numbers as BYTES data", edit(lambda r: tensor(r, cat).update(data=[1, 2])), cat),
        # JSON has no NaN or infinity: 1e999 is refused as out of range, 1e300 overflows FP32.
        ("infinity", edit(lambda r: tensor(r, num).update(data=[float("inf"), 1.0])), "out of range"),
        ("beyond FP32", edit(lambda r: tensor(r, num).update(data=[1e300, 1.0])), "finite"),
        ("data shorter than shape", edit(lambda r: tensor(r, num).update(data=[1.0])), "shape says 2"),
        ("data longer than shape", edit(lambda r: tensor(r, cat).update(data=["a", "b", "c"])), "shape says 2"),
        ("two columns", edit(lambda r: tensor(r, num).update(shape=[1, 2])), "shape"),
        ("empty shape", edit(lambda r: tensor(r, num).update(shape=[])), "shape"),
        ("zero rows", edit(lambda r: [t.update(shape=[0, 1], data=[]) for t in r["inputs"]]), "no rows"),
        ("batch sizes differ", edit(lambda r: tensor(r, cat).update(shape=[3, 1], data=["a", "b", "c"])),
         "batch size"),
        ("ragged data", edit(lambda r: tensor(r, num).update(data=[[1.0], [2.0, 3.0]])), num),
        ("no data", edit(lambda r: tensor(r, num).pop("data")), "no data"),
        ("unknown output", {**base, "outputs": [{"name": "logits"}]}, "logits"),
    ]


def test_bad_input_is_a_400_naming_the_problem(oip: Oip, admin: httpx.Client) -> None:
    for label, body, needle in _bad_cases(oip.spec):
        content = json.dumps(body).replace("Infinity", "1e999")
        response = admin.post(INFER, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (label, response.status_code, response.text)
        error = response.json()["error"]
        assert needle.lower() in error.lower(), (label, error)


def test_malformed_json_is_400(admin: httpx.Client) -> None:
    response = admin.post(INFER, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "json" in response.json()["error"].lower()
    # The binary extension's header over a JSON header with no tensors: the same 400 as plain JSON.
    response = admin.post(INFER, content=b"{}", headers={"Inference-Header-Content-Length": "2"})
    assert response.status_code == 400 and "inputs" in response.json()["error"]


def test_oversized_batch_is_400(oip: Oip, admin: httpx.Client) -> None:
    session = oip.platform.deployments.route(DEPLOYMENT).primary.session
    n = session.max_batch_size + 1
    numeric, categorical = _features(oip.spec)
    inputs = [{"name": name, "shape": [n, 1], "datatype": "FP32" if name in numeric else "BYTES",
               "data": [1.0] * n if name in numeric else ["x"] * n} for name in [*numeric, *categorical]]
    response = admin.post(INFER, json={"inputs": inputs})
    assert response.status_code == 400 and "limit" in response.json()["error"]


# ------------------------------------------------------------------------------------- tritonclient

def test_unmodified_tritonclient(oip: Oip) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    headers = {"Authorization": f"Bearer {oip.token}"}
    client = httpclient.InferenceServerClient(url=oip.url.removeprefix("http://"))
    try:
        assert client.is_server_live(headers=headers)
        assert client.is_server_ready(headers=headers)
        assert client.is_model_ready(DEPLOYMENT, headers=headers)
        assert not client.is_model_ready("nope", headers=headers)
        meta = client.get_model_metadata(DEPLOYMENT, headers=headers)
        assert meta["name"] == DEPLOYMENT and meta["versions"] == [VERSION]

        rows = holdout_rows(oip.spec, 10)
        numeric, categorical = _features(oip.spec)
        inputs = []
        for name in [*numeric, *categorical]:
            if name in numeric:
                array = np.asarray([[float(row[name])] for row in rows], dtype=np.float32)
                tensor = httpclient.InferInput(name, list(array.shape), "FP32")
            else:
                array = np.asarray([[str(row[name])] for row in rows], dtype=object)
                tensor = httpclient.InferInput(name, list(array.shape), "BYTES")
            tensor.set_data_from_numpy(array, binary_data=False)
            inputs.append(tensor)
        outputs = [httpclient.InferRequestedOutput("label", binary_data=False),
                   httpclient.InferRequestedOutput("probabilities", binary_data=False)]
        result = client.infer(DEPLOYMENT, inputs, outputs=outputs, headers=headers, request_id="t-1")
        expected = oip.platform.deployments.predict(DEPLOYMENT, rows)
        assert result.get_response()["id"] == "t-1"
        assert result.as_numpy("label").tolist() == list(expected.predictions)
        np.testing.assert_allclose(result.as_numpy("probabilities"), np.asarray(expected.probabilities),
                                   rtol=1e-6, atol=1e-7)

        versioned = client.infer(DEPLOYMENT, inputs, model_version=VERSION, headers=headers)
        assert versioned.as_numpy("label").tolist() == list(expected.predictions)
        with pytest.raises(Exception, match=r"9\.9\.9"):
            client.infer(DEPLOYMENT, inputs, model_version="9.9.9", headers=headers)
    finally:
        client.close()
