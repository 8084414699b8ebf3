"""Drift statistics from DuckDB equal scipy's on the same arrays (scipy as the oracle)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from mlops_lite.errors import InvalidInput
from mlops_lite.monitoring.drift import compute_drift


def _con(reference: dict, current: dict) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.register("ref_t", pa.table(reference))
    con.register("cur_t", pa.table(current))
    con.execute("CREATE VIEW reference AS SELECT * FROM ref_t")
    con.execute("CREATE VIEW current AS SELECT * FROM cur_t")
    return con


def test_ks_and_chi2_equal_scipy_and_shift_is_flagged() -> None:
    rng = np.random.default_rng(7)
    ref_x = np.round(rng.normal(0, 1, 3000), 2)  # rounded: ties on both sides
    cur_x = np.round(rng.normal(0.8, 1.2, 1700), 2)
    cats = np.array(["a", "b", "c", "d"])
    ref_c = rng.choice(cats, 3000, p=[0.4, 0.3, 0.2, 0.1])
    cur_c = rng.choice(cats, 1700, p=[0.1, 0.2, 0.3, 0.4])
    con = _con({"x": ref_x, "c": ref_c}, {"x": cur_x, "c": cur_c})
    report = compute_drift(con, "reference", "current", [("x", "numeric"), ("c", "categorical")])
    x, c = report.features
    assert x.ks_statistic == pytest.approx(stats.ks_2samp(ref_x, cur_x).statistic, abs=1e-9)
    table = np.array([[np.sum(ref_c == k) for k in cats], [np.sum(cur_c == k) for k in cats]])
    assert c.chi2 == pytest.approx(stats.chi2_contingency(table, correction=False)[0], rel=1e-9)
    assert x.drifted and c.drifted and report.drifted_share == 1.0
    assert (x.reference_rows, x.current_rows) == (3000, 1700)


def test_a_tiny_shift_on_a_large_sample_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(3)
    ref_x, cur_x = rng.normal(0, 1, 100_000), rng.normal(0.03, 1, 100_000)
    con = _con({"x": ref_x}, {"x": cur_x})
    (x,) = compute_drift(con, "reference", "current", [("x", "numeric")]).features
    assert x.ks_p_value is not None and x.ks_p_value < 0.01  # a p-value test would fire
    assert x.psi < 0.2 and not x.drifted  # the effect size says: no drift worth an alert


def test_bad_input_names_the_field() -> None:
    con = _con({"x": np.arange(10.0)}, {"x": np.arange(10.0)})
    with pytest.raises(InvalidInput) as info:
        compute_drift(con, "reference", "current", [("nope", "numeric")])
    assert info.value.field
    with pytest.raises(InvalidInput):
        compute_drift(con, "reference", "current", [("x", "ordinal")])
