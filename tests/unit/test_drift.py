"""Drift statistics computed in DuckDB, checked against scipy and plain numpy on the same arrays.

scipy is the oracle for the tests (``ks_2samp``, ``chi2_contingency``); the PSI oracle is
written here in numpy with the bin rule the module documents: edge k is the reference value
of rank ceil(k * n / bins), a value's bin is the number of edges strictly below it.
"""

from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from mlops_lite.errors import InvalidInput
from mlops_lite.monitoring.drift import EPSILON, DriftReport, FeatureDrift, compute_drift


def _con(reference: dict[str, object], current: dict[str, object]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.register("reference", pa.table(reference))
    con.register("current", pa.table(current))
    return con


def _drift(reference: dict[str, object], current: dict[str, object], features: list[tuple[str, str]],
           **kwargs: object) -> DriftReport:
    return compute_drift(_con(reference, current), "reference", "current", features, **kwargs)  # type: ignore[arg-type]


def _numpy_psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    ref_sorted = np.sort(ref)
    n = len(ref_sorted)
    edges = ref_sorted[[-(-k * n // bins) - 1 for k in range(1, bins)]]
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=bins) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=bins) / len(cur)
    r, c = np.maximum(r, EPSILON), np.maximum(c, EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _numpy_categorical_psi(ref: np.ndarray, cur: np.ndarray) -> float:
    cats = np.union1d(ref, cur)
    r = np.maximum(np.array([np.sum(ref == k) for k in cats]) / len(ref), EPSILON)
    c = np.maximum(np.array([np.sum(cur == k) for k in cats]) / len(cur), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def _table(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    cats = np.union1d(ref, cur)
    return np.array([[np.sum(ref == k) for k in cats], [np.sum(cur == k) for k in cats]])


# --------------------------------------------------------------------------- numeric vs scipy


SAMPLES = {
    # name: (reference, current), drawn with a fixed seed
    "continuous, distinct sizes": lambda g: (g.normal(0, 1, 20_000), g.normal(0.05, 1.1, 13_001)),
    "shifted": lambda g: (g.normal(0, 1, 20_000), g.normal(0.7, 1, 30_000)),
    "rounded: ties on both sides": lambda g: (np.round(g.normal(0, 1, 15_000), 1), np.round(g.normal(0.1, 1, 9_000), 1)),
    "integers: few values": lambda g: (g.poisson(3, 12_000).astype(np.int64), g.poisson(3.3, 17_000).astype(np.int64)),
    "long right tail": lambda g: (g.lognormal(0, 1.5, 20_000), g.lognormal(0.1, 1.5, 20_000)),
    "current far outside the reference": lambda g: (g.uniform(0, 1, 5_000), g.uniform(-3, 4, 8_000)),
    "a spike of one value": lambda g: (np.where(g.random(10_000) < 0.6, 2.0, g.normal(2, 1, 10_000)),
                                       np.where(g.random(6_000) < 0.4, 2.0, g.normal(2, 1, 6_000))),
    "tiny samples": lambda g: (g.normal(0, 1, 7), g.normal(0.5, 1, 13)),
    "one reference value": lambda g: (np.full(50, 4.0), g.normal(4, 1, 40)),
    "identical": lambda g: (np.arange(1000.0), np.arange(1000.0)),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_numeric_statistics_equal_scipy_and_numpy(name: str) -> None:
    ref, cur = SAMPLES[name](np.random.default_rng(sum(map(ord, name))))
    report = _drift({"x": ref}, {"x": cur}, [("x", "numeric")])
    (x,) = report.features
    oracle = stats.ks_2samp(ref, cur, method="asymp")
    assert x.ks_statistic is not None and x.ks_p_value is not None
    assert abs(x.ks_statistic - oracle.statistic) <= 1e-9, name
    assert x.ks_p_value == pytest.approx(oracle.pvalue, rel=1e-9, abs=1e-300), name
    assert x.psi == pytest.approx(_numpy_psi(ref, cur), rel=1e-9, abs=1e-12), name
    assert (x.kind, x.method, x.score) == ("numeric", "psi", x.psi)
    assert x.chi2 is None and x.chi2_p_value is None and x.cramers_v is None
    assert (x.reference_rows, x.current_rows, x.current_nulls) == (len(ref), len(cur), 0)


def test_many_features_in_one_call_equal_scipy_each() -> None:
    g = np.random.default_rng(11)
    ref = {f"f_{i}": g.normal(0, 1 + i / 10, 30_000) for i in range(6)}
    cur = {f"f_{i}": g.normal(0.05 * i, 1 + i / 10, 50_000) for i in range(6)}
    ref["f_int"], cur["f_int"] = g.integers(0, 50, 30_000), g.integers(0, 52, 50_000)
    features = [(name, "numeric") for name in ref]
    report = _drift(ref, cur, features, bins=7)
    assert [f.feature for f in report.features] == list(ref)
    for f in report.features:
        assert abs(f.ks_statistic - stats.ks_2samp(ref[f.feature], cur[f.feature]).statistic) <= 1e-9  # type: ignore[operator]
        assert f.psi == pytest.approx(_numpy_psi(ref[f.feature], cur[f.feature], bins=7), rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- categorical vs scipy


def test_categorical_statistics_equal_scipy_with_a_category_unseen_in_the_reference() -> None:
    g = np.random.default_rng(5)
    ref = g.choice(np.array(["a", "b", "c", "d"]), 8_000, p=[0.4, 0.3, 0.2, 0.1])
    cur = g.choice(np.array(["a", "b", "c", "d", "new"]), 5_000, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    (c,) = _drift({"c": ref}, {"c": cur}, [("c", "categorical")]).features
    table = _table(ref, cur)
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert c.chi2 == pytest.approx(chi2, rel=1e-9)
    assert c.chi2_p_value == pytest.approx(p, rel=1e-9, abs=1e-300)
    assert c.cramers_v == pytest.approx(math.sqrt(chi2 / table.sum()), rel=1e-9)
    assert c.psi == pytest.approx(_numpy_categorical_psi(ref, cur), rel=1e-9)
    assert c.ks_statistic is None and c.ks_p_value is None
    assert (c.kind, c.method, dof) == ("categorical", "psi", 4)


def test_integer_categories_and_a_single_category() -> None:
    g = np.random.default_rng(9)
    ref, cur = g.integers(0, 6, 4_000), g.integers(0, 6, 3_000)
    report = _drift({"k": ref, "one": np.full(4_000, "x")}, {"k": cur, "one": np.full(3_000, "x")},
                    [("k", "categorical"), ("one", "categorical")])
    k, one = report.features
    assert k.chi2 == pytest.approx(stats.chi2_contingency(_table(ref, cur), correction=False)[0], rel=1e-9)
    assert (one.chi2, one.chi2_p_value, one.cramers_v, one.psi, one.drifted) == (0.0, 1.0, 0.0, 0.0, False)


# --------------------------------------------------------------------------- the decision


def test_no_drift_is_not_flagged_and_a_shift_is() -> None:
    g = np.random.default_rng(21)
    cats = np.array(["a", "b", "c"])
    ref = {"x": g.normal(0, 1, 20_000), "y": g.normal(5, 2, 20_000), "c": g.choice(cats, 20_000, p=[0.5, 0.3, 0.2])}
    same = {"x": g.normal(0, 1, 30_000), "y": g.normal(5, 2, 30_000), "c": g.choice(cats, 30_000, p=[0.5, 0.3, 0.2])}
    moved = {"x": g.normal(1, 1, 30_000), "y": g.normal(5, 2, 30_000), "c": g.choice(cats, 30_000, p=[0.1, 0.3, 0.6])}
    features = [("x", "numeric"), ("y", "numeric"), ("c", "categorical")]

    calm = _drift(ref, same, features)
    assert not calm.drifted and calm.drifted_features == () and calm.drifted_share == 0.0
    assert all(f.psi < 0.02 for f in calm.features)

    report = _drift(ref, moved, features)
    assert report.drifted_features == ("x", "c")
    assert report.drifted_share == pytest.approx(2 / 3) and report.drifted
    assert all(f.drifted == (f.score >= f.threshold) for f in report.features)
    assert _drift(ref, moved, features, share_threshold=0.9).drifted is False
    assert (report.reference_rows, report.current_rows, report.share_threshold) == (20_000, 30_000, 0.5)


def test_a_tiny_shift_on_a_large_sample_is_significant_but_no_drift() -> None:
    g = np.random.default_rng(3)
    ref, cur = g.normal(0, 1, 100_000), g.normal(0.03, 1, 400_000)
    (x,) = _drift({"x": ref}, {"x": cur}, [("x", "numeric")]).features
    assert x.ks_p_value is not None and x.ks_p_value < 1e-6  # a p-value rule would raise an alert
    assert x.ks_statistic == pytest.approx(stats.ks_2samp(ref, cur).statistic, abs=1e-9)
    assert x.psi < 0.01 and not x.drifted  # the effect size is negligible: no drift


# --------------------------------------------------------------------------- nulls, empty windows


def test_nulls_in_the_current_window_are_counted_and_left_out() -> None:
    g = np.random.default_rng(4)
    ref = g.normal(0, 1, 5_000)
    values = g.normal(0.2, 1, 3_000)
    cur = pa.array([None if i % 10 == 0 else (math.nan if i % 10 == 1 else float(v)) for i, v in enumerate(values)],
                   type=pa.float64())
    cats = pa.array([None if i % 4 == 0 else "ab"[i % 2] for i in range(3_000)])
    report = _drift({"x": ref, "c": np.array(["a", "b"] * 2_500)}, {"x": cur, "c": cats},
                    [("x", "numeric"), ("c", "categorical")])
    x, c = report.features
    kept = values[[i % 10 not in (0, 1) for i in range(3_000)]]
    assert (x.current_rows, x.current_nulls, x.reference_rows) == (3_000, 600, 5_000)
    assert abs(x.ks_statistic - stats.ks_2samp(ref, kept).statistic) <= 1e-9  # type: ignore[operator]
    assert x.psi == pytest.approx(_numpy_psi(ref, kept), rel=1e-9)
    assert (c.current_rows, c.current_nulls) == (3_000, 750)


def test_an_empty_current_window_gives_a_report_without_drift() -> None:
    ref = {"x": np.arange(100.0), "c": np.array(["a", "b"] * 50)}
    cur = {"x": pa.array([], type=pa.float64()), "c": pa.array([], type=pa.string())}
    report = _drift(ref, cur, [("x", "numeric"), ("c", "categorical")])
    assert (report.current_rows, report.reference_rows, report.drifted, report.drifted_share) == (0, 100, False, 0.0)
    for f in report.features:
        assert (f.current_rows, f.current_nulls, f.drifted, f.psi) == (0, 0, False, 0.0)
        assert f.ks_statistic is None and f.chi2 is None
    all_null = _drift(ref, {"x": pa.array([None, None], type=pa.float64()), "c": ["a", "b"]},
                      [("x", "numeric"), ("c", "categorical")])
    assert (all_null.features[0].current_nulls, all_null.features[0].drifted) == (2, False)
    json.dumps(report.as_dict(), allow_nan=False)


def test_the_report_is_json_for_alert_evidence() -> None:
    g = np.random.default_rng(8)
    report = _drift({"x": g.normal(0, 1, 2_000), "c": g.choice(["a", "b"], 2_000)},
                    {"x": g.normal(2, 1, 2_000), "c": g.choice(["a", "b"], 2_000)},
                    [("x", "numeric"), ("c", "categorical")])
    body = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert body["drifted_features"] == ["x"] and body["drifted"] is True
    assert body["features"][0]["feature"] == "x" and body["features"][0]["method"] == "psi"
    assert set(body["features"][0]) == set(FeatureDrift.__dataclass_fields__)


# --------------------------------------------------------------------------- bad input


def _field(call: object) -> str | None:
    with pytest.raises(InvalidInput) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field is not None and caught.value.expected
    return caught.value.field


def test_bad_input_is_invalid_input_naming_the_field() -> None:
    good = {"x": np.arange(10.0), "s": np.array(["a"] * 10)}
    con = _con(good, good)
    run = compute_drift
    assert _field(lambda: run(con, "reference", "current", [("nope", "numeric")])) == "nope"
    assert _field(lambda: run(con, "reference", "current", [("x", "ordinal")])) == "x"
    assert _field(lambda: run(con, "reference", "current", [("s", "numeric")])) == "s"
    assert _field(lambda: run(con, "reference", "current", [("x", "numeric"), ("x", "numeric")])) == "x"
    assert _field(lambda: run(con, "reference", "current", [])) == "features"
    assert _field(lambda: run(con, "missing", "current", [("x", "numeric")])) == "reference"
    assert _field(lambda: run(con, "reference", "missing", [("x", "numeric")])) == "current"
    for bad in (0, -0.1, math.nan):
        assert _field(lambda bad=bad: run(con, "reference", "current", [("x", "numeric")], psi_threshold=bad)
                      ) == "psi_threshold"
    for bad in (0, 1.5):
        assert _field(lambda bad=bad: run(con, "reference", "current", [("x", "numeric")], share_threshold=bad)
                      ) == "share_threshold"
    assert _field(lambda: run(con, "reference", "current", [("x", "numeric")], bins=1)) == "bins"

    empty = _con({"x": pa.array([], type=pa.float64())}, {"x": np.arange(3.0)})
    assert _field(lambda: run(empty, "reference", "current", [("x", "numeric")])) == "reference"
    nulls = _con({"x": pa.array([None, math.nan], type=pa.float64()), "s": [None, None]},
                 {"x": np.arange(3.0), "s": ["a", "b", "c"]})
    assert _field(lambda: run(nulls, "reference", "current", [("x", "numeric")])) == "x"
    assert _field(lambda: run(nulls, "reference", "current", [("s", "categorical")])) == "s"
