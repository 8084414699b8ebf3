"""Request validation of a model whose inputs are all numbers (one array per request), for
{"instances"} and for OIP JSON tensors: the same tensors and the same errors as input by input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mlops_lite.errors import InvalidInput
from mlops_lite.inference.session import ModelSession
from mlops_lite.training.classifier import TrainingSpec, train_classifier

FEATURES = ("a", "b", "c")


@pytest.fixture(scope="module")
def session() -> ModelSession:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, len(FEATURES)))
    table = pa.table({**{name: x[:, i] for i, name in enumerate(FEATURES)},
                      "y": (x[:, 0] + x[:, 1] > 0).astype(np.int64)})
    trained = train_classifier(table, TrainingSpec.infer(table, target="y"))
    return ModelSession(trained.onnx, trained.signature, providers=["CPUExecutionProvider"])


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"a": 0.5 * i, "b": -1.25, "c": i} for i in range(n)]  # an int among floats is a number too


def test_a_numbers_only_feed_is_the_checked_feed(session: ModelSession) -> None:
    for n in (1, 7):
        fast, checked = session.build_feed(_rows(n)), session._checked_feed(_rows(n))
        assert list(fast) == list(checked)
        for name in fast:
            assert fast[name].dtype == np.float32 and fast[name].shape == (n, 1) and fast[name].flags.c_contiguous
            assert np.array_equal(fast[name], checked[name])
        assert np.array_equal(session.predict(fast)[1], session.predict(checked)[1])


@pytest.mark.parametrize(("change", "field"), [
    (lambda r: r.pop("b"), "instances[1].b"),
    (lambda r: r.update(b="high"), "instances[1].b"),
    (lambda r: r.update(b=True), "instances[1].b"),
    (lambda r: r.update(c=math.inf), "instances[1].c"),
    (lambda r: r.update(zz=1.0), "instances[1].zz"),
])
def test_a_bad_number_still_names_its_field(session: ModelSession, change: Any, field: str) -> None:
    rows = _rows(3)
    change(rows[1])
    with pytest.raises(InvalidInput) as info:
        session.build_feed(rows)
    assert info.value.field == field


def _oip_body(rows: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    inputs = [{"name": name, "datatype": "FP32", "shape": [len(rows), 1], "data": [float(r[name]) for r in rows]}
              for name in FEATURES]
    for name, change in changes.items():
        next(t for t in inputs if t["name"] == name).update(change)
    return {"inputs": inputs}


def test_an_oip_json_request_of_numbers_is_the_per_input_feed(session: ModelSession,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from server import oip

    bodies = [_oip_body(_rows(1)), _oip_body(_rows(5)), _oip_body(_rows(5), b={"shape": [5]}),
              _oip_body(_rows(2), c={"datatype": "FP64"})]
    fast = [oip.build_feed(session, body, None) for body in bodies]
    monkeypatch.setattr(oip, "_float_feed", lambda *_: None)
    for body, (feed, rows) in zip(bodies, fast, strict=True):
        want, want_rows = oip.build_feed(session, body, None)
        assert rows == want_rows and list(feed) == list(want)
        for name in feed:
            assert feed[name].dtype == np.float32 and feed[name].shape == want[name].shape
            assert np.array_equal(feed[name], want[name]) and feed[name].flags.c_contiguous


@pytest.mark.parametrize(("change", "field"), [
    ({"shape": [True, 1]}, "inputs[1].shape"),
    ({"shape": [2, 1], "data": [1.0, math.nan]}, "inputs[1].data"),
    ({"datatype": "INT32", "data": [1.5, 2.5]}, "inputs[1].data"),
    ({"datatype": "BYTES"}, "inputs[1].datatype"),
    ({"shape": [3, 1]}, "inputs[1].shape"),
])
def test_a_bad_oip_number_still_names_its_field(session: ModelSession, change: dict[str, Any], field: str) -> None:
    from server import oip

    body = _oip_body(_rows(2), b=change)
    with pytest.raises(InvalidInput) as info:
        oip.build_feed(session, body, None)
    assert info.value.field == field
