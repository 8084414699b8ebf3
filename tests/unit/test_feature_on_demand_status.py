"""An on-demand feature's status is the worst of the features its expression reads: one that
reads only request fields is present for an unknown customer, offline and online alike."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa

DEFINITIONS = {
    "entity": [{"name": "customer", "join_keys": {"customer_id": "int64"}}],
    "feature_view": [{"name": "history", "entities": ["customer"],
                      "source": {"repository": "shop", "path": "history/*.csv"}, "ttl": "30d",
                      "features": {"balance": "float64"}}],
    "on_demand": [{"name": "ratios", "request": {"amount": "float64", "months": "int64"}, "sources": ["history"],
                   "features": {"monthly": {"dtype": "float64", "expression": "amount / months"},
                                "burden": {"dtype": "float64", "expression": "amount / (balance + 1)"}}}],
    "feature_service": [{"name": "credit", "features": ["history", "ratios"]}],
}


def test_statuses_follow_what_each_expression_reads(tmp_path: Path) -> None:
    from mlops_lite import connect

    with connect(home=tmp_path / "home") as p:
        p.data.repo("shop").create(classification="internal")
        branch = p.data.repo("shop").branch("add")
        branch.create()
        branch.upload("history/a.csv", b"customer_id,event_timestamp,balance\n1,2024-05-20,9.0\n2,2024-01-01,4.0\n")
        branch.commit("history")
        branch.merge_into("main")
        p.features.apply(DEFINITIONS)
        at = "2024-06-01T00:00:00+00:00"
        p.features.materialize(as_of=at)
        rows = [{"customer_id": k, "amount": 120.0, "months": 12} for k in (1, 2, 3)]
        online = p.features.online("credit", rows, at=at, log=False)
        entities = pa.table({"customer_id": [1, 2, 3], "event_timestamp": [datetime.fromisoformat(at)] * 3,
                             "amount": [120.0] * 3, "months": [12] * 3})
        offline, _ = p.features.historical("credit", entities, statuses=True)
    expected = [("present", "present", "present"), ("expired", "present", "expired"),
                ("missing", "present", "missing")]
    assert [(s["balance"], s["monthly"], s["burden"]) for s in online.statuses] == expected
    assert list(zip(*(offline.column(f"__status__{f}").to_pylist() for f in ("balance", "monthly", "burden")),
                    strict=True)) == expected
    assert [r["monthly"] for r in online.rows] == offline.column("monthly").to_pylist() == [10.0] * 3
    assert [r["burden"] for r in online.rows] == offline.column("burden").to_pylist() == [12.0, None, None]
