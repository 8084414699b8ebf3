"""Arrow IPC stream bodies on the native predict route, end to end on a real server on
127.0.0.1: the same answers as the JSON body on the same rows, Arrow answers when asked,
the rows in the prediction log, and a 4xx naming the column for a bad stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import holdout_rows
from tests.e2e.test_oip import DEPLOYMENT, VERSION, Oip, _features, oip  # noqa: F401

ARROW = "application/vnd.apache.arrow.stream"
PREDICT = f"/v1/deployments/{DEPLOYMENT}/predict"


@pytest.fixture
def admin(oip: Oip) -> Iterator[httpx.Client]:  # noqa: F811
    with oip.client(oip.token) as client:
        yield client


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _table(spec: Any, rows: list[dict[str, Any]]) -> pa.Table:
    numeric, categorical = _features(spec)
    return pa.table({name: pa.array([row[name] for row in rows],
                                    type=pa.float64() if name in numeric else pa.string())
                     for name in [*numeric, *categorical]})


def _post(admin: httpx.Client, body: bytes, accept: str | None = None, key: str | None = None) -> httpx.Response:
    headers = {"Content-Type": ARROW, **({"Accept": accept} if accept else {})}
    return admin.post(PREDICT, content=body, headers=headers, params={"key": key} if key else None)


def test_arrow_body_answers_as_the_json_body(oip: Oip, admin: httpx.Client) -> None:  # noqa: F811
    rows = holdout_rows(oip.spec, 60)
    expected = admin.post(PREDICT, json={"instances": rows})
    assert expected.status_code == 200, expected.text
    want = expected.json()
    response = _post(admin, _stream(_table(oip.spec, rows)))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    got = response.json()
    assert set(got) == set(want)
    assert got["predictions"] == want["predictions"]
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=0, atol=1e-6)
    assert (got["version"], got["digest"], got["classes"]) == (VERSION, want["digest"], want["classes"])
    assert got["request_id"] != want["request_id"]


def test_arrow_columns_in_any_order_chunked_integer_and_dictionary(oip: Oip, admin: httpx.Client) -> None:  # noqa: F811
    rows = holdout_rows(oip.spec, 30)
    want = admin.post(PREDICT, json={"instances": rows}).json()
    numeric, categorical = _features(oip.spec)
    table = _table(oip.spec, rows)
    table = table.select(list(reversed(table.column_names)))  # order does not matter, names do
    table = table.set_column(table.schema.get_field_index(categorical[0]), categorical[0],
                             table.column(categorical[0]).dictionary_encode())
    chunked = pa.concat_tables([table.slice(0, 10), table.slice(10)])  # two record batches
    response = _post(admin, _stream(chunked))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == want["predictions"]
    integers = [{**row, numeric[0]: round(float(row[numeric[0]]))} for row in rows]
    int_table = _table(oip.spec, integers)
    int_table = int_table.set_column(int_table.schema.get_field_index(numeric[0]), numeric[0],
                                     pa.array([row[numeric[0]] for row in integers], type=pa.int64()))
    response = _post(admin, _stream(int_table))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == admin.post(PREDICT, json={"instances": integers}).json()["predictions"]


def test_arrow_answer_when_accepted(oip: Oip, admin: httpx.Client) -> None:  # noqa: F811
    rows = holdout_rows(oip.spec, 25)
    want = admin.post(PREDICT, json={"instances": rows}).json()
    response = _post(admin, _stream(_table(oip.spec, rows)), accept=ARROW)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(ARROW)
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.column_names == ["predictions", "probabilities"]
    assert table.column("predictions").to_pylist() == want["predictions"]
    np.testing.assert_allclose(np.asarray(table.column("probabilities").to_pylist()), want["probabilities"],
                               rtol=0, atol=1e-6)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    assert meta["version"] == VERSION and meta["deployment"] == DEPLOYMENT and meta["digest"] == want["digest"]
    assert json.loads(meta["classes"]) == want["classes"] and meta["request_id"]


def test_arrow_predictions_are_logged(oip: Oip, admin: httpx.Client) -> None:  # noqa: F811
    rows = holdout_rows(oip.spec, 15)
    response = _post(admin, _stream(_table(oip.spec, rows)))
    assert response.status_code == 200, response.text
    answer = response.json()
    oip.platform.monitoring.flush()
    logged = oip.platform.monitoring.query(
        f"SELECT features, prediction, probability FROM predictions WHERE request_id = '{answer['request_id']}'"
    ).to_pylist()
    assert len(logged) == 15
    numeric, categorical = _features(oip.spec)
    first = json.loads(logged[0]["features"])
    assert set(first) == {*numeric, *categorical}
    assert sorted(int(r["prediction"]) for r in logged) == sorted(answer["predictions"])
    assert sorted(r["probability"] for r in logged) == pytest.approx(
        sorted(p[-1] for p in answer["probabilities"]), abs=1e-9)


def test_bad_arrow_is_a_4xx_naming_the_column(oip: Oip, admin: httpx.Client) -> None:  # noqa: F811
    numeric, categorical = _features(oip.spec)
    num, cat = numeric[0], categorical[0]
    rows = holdout_rows(oip.spec, 3)
    good = _table(oip.spec, rows)

    def replaced(name: str, array: pa.Array) -> bytes:
        return _stream(good.set_column(good.schema.get_field_index(name), name, array))

    cases: list[tuple[str, bytes, str]] = [
        ("missing column", _stream(good.drop_columns([num])), num),
        ("unknown column", _stream(good.append_column("shoe_size", pa.array([1.0, 2.0, 3.0]))), "shoe_size"),
        ("string for a number", replaced(num, pa.array(["a", "b", "c"])), num),
        ("number for a string", replaced(cat, pa.array([1, 2, 3])), cat),
        ("null in a column", replaced(num, pa.array([1.0, None, 2.0])), num),
        ("NaN in a column", replaced(num, pa.array([1.0, float("nan"), 2.0])), num),
        ("beyond FP32", replaced(num, pa.array([1e300, 1.0, 2.0])), num),
        ("not Arrow at all", b"income,age\n1,2\n", "body"),
        ("JSON sent as Arrow", json.dumps({"instances": rows}).encode(), "body"),
        ("no rows", _stream(good.slice(0, 0)), "body"),
    ]
    before = oip.platform.monitoring.stats()["rows_logged"]
    for label, body, field in cases:
        response = _post(admin, body)
        assert 400 <= response.status_code < 500, (label, response.status_code, response.text)
        error = response.json()
        assert error["code"] == "invalid_input" and error["field"] == field, (label, error)
        if field != "body":
            assert field in error["message"], (label, error)
    assert oip.platform.monitoring.stats()["rows_logged"] == before  # nothing logged for bad requests
    response = admin.post("/v1/deployments/nope/predict", content=_stream(good), headers={"Content-Type": ARROW})
    assert response.status_code == 404
    with oip.client() as anonymous:
        assert anonymous.post(PREDICT, content=_stream(good), headers={"Content-Type": ARROW}).status_code == 401


def test_rows_sent_as_arrow_are_logged_as_the_same_rows_sent_as_json(oip: Oip, admin: httpx.Client) -> None:  # noqa: F811
    rows = holdout_rows(oip.spec, 25)
    by_json = admin.post(PREDICT, json={"instances": rows})
    by_arrow = _post(admin, _stream(_table(oip.spec, rows)))
    assert by_json.status_code == by_arrow.status_code == 200, (by_json.text, by_arrow.text)
    oip.platform.monitoring.flush()
    numeric, categorical = _features(oip.spec)
    columns = ", ".join(f'"f_{name}"' for name in [*numeric, *categorical])
    logged = {}
    for answer in (by_json.json(), by_arrow.json()):
        logged[answer["request_id"]] = oip.platform.monitoring.query(
            f"SELECT features, prediction, probability, {columns} FROM predictions "
            f"WHERE request_id = '{answer['request_id']}' ORDER BY f_{numeric[0]}, features").to_pylist()
    from_json, from_arrow = (logged[r.json()["request_id"]] for r in (by_json, by_arrow))
    assert len(from_json) == len(from_arrow) == 25
    for a, b in zip(from_json, from_arrow, strict=True):
        # the values the client sent, not the model's float32 tensors (an integer sent as JSON
        # and as an Arrow float64 column is the same number)
        assert json.loads(a.pop("features")) == json.loads(b.pop("features"))
        assert a == b
