"""The prediction log: batches land as Parquet, the queue is bounded, failures are counted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlops_lite.errors import InvalidInput
from mlops_lite.monitoring import Monitoring, PredictionLog
from mlops_lite.records import Prediction


def _prediction(deployment: str = "loans", version: str = "1.0.0", n: int = 2) -> Prediction:
    return Prediction(request_id=uuid.uuid4().hex, deployment=deployment, model="loan-default", version=version,
                      digest="sha256:abc", predictions=tuple(i % 2 for i in range(n)),
                      probabilities=tuple((0.75, 0.25) if i % 2 == 0 else (0.1, 0.9) for i in range(n)),
                      classes=(0, 1))


def _instances(n: int = 2) -> list[dict[str, object]]:
    return [{"income": 1000.0 + i, "region": "north"} for i in range(n)]


def test_batches_land_as_partitioned_parquet_and_are_queryable(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path, batch_rows=4, flush_interval_s=60)
    try:
        first, second = _prediction(n=2), _prediction(version="1.1.0", n=3)
        assert monitoring.record(first, _instances(2), 0.004)
        assert monitoring.record(second, _instances(3), 0.002)
        assert monitoring.flush()
        files = sorted((tmp_path / "predictions").glob("deployment=loans/date=*/part-*.parquet"))
        assert files, "no Parquet part was written"
        table = pq.read_table(files[0])
        assert set(table.column_names) >= {"request_id", "deployment", "model", "version", "digest", "at",
                                           "latency_ms", "prediction", "probability", "f_income"}
        assert "features" not in table.column_names  # each value once: the typed column, no JSON copy
        rows = monitoring.query("SELECT request_id, version, prediction, probability, latency_ms, features "
                                "FROM predictions ORDER BY version, prediction").to_pylist()
        assert len(rows) == 5
        assert {r["request_id"] for r in rows} == {first.request_id, second.request_id}
        assert {r["version"] for r in rows} == {"1.0.0", "1.1.0"}
        assert rows[0]["probability"] == pytest.approx(0.25)
        assert rows[0]["latency_ms"] == pytest.approx(4.0)
        assert json.loads(rows[0]["features"])["income"] == 1000.0
        stats = monitoring.stats()
        assert stats["rows_logged"] == 5 and stats["rows_written"] == 5
        assert stats["rows_dropped"] == 0 and stats["write_errors"] == 0 and stats["batches"] >= 1
    finally:
        monitoring.close()


def test_the_writer_flushes_on_its_own_by_size_and_by_time(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "by-size", batch_rows=2, flush_interval_s=60)
    timed = PredictionLog(tmp_path / "by-time", batch_rows=1_000, flush_interval_s=0.05)
    try:
        log.record(_prediction(n=2), _instances(2), 0.001)
        timed.record(_prediction(n=1), _instances(1), 0.001)
        import time

        deadline = time.monotonic() + 10
        while (log.stats().written < 2 or timed.stats().written < 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.stats().written == 2 and timed.stats().written == 1
    finally:
        log.close()
        timed.close()


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions", max_rows=5, batch_rows=1_000, flush_interval_s=60)
    try:
        assert log.record(_prediction(n=3), _instances(3), 0.001)
        assert log.record(_prediction(n=2), _instances(2), 0.001)
        assert not log.record(_prediction(n=2), _instances(2), 0.001)  # 5 queued + 2 > 5
        assert not log.record(_prediction(n=1), _instances(1), 0.001)
        stats = log.stats()
        assert (stats.logged, stats.dropped, stats.queued) == (5, 3, 5)
        assert log.flush()
        assert log.record(_prediction(n=2), _instances(2), 0.001)  # room again once written
    finally:
        log.close()
    assert log.stats().written == 7


def test_a_failing_writer_counts_errors_and_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "predictions"
    blocker.write_text("a file where the log's folder should be")
    log = PredictionLog(blocker, batch_rows=1_000, flush_interval_s=60)
    try:
        assert log.record(_prediction(n=2), _instances(2), 0.001)
        assert log.flush()
        assert log.record(_prediction(n=1), _instances(1), 0.001)
    finally:
        log.close()  # flushes the second request: a second error, still no exception
    stats = log.stats()
    assert stats.write_errors == 2 and stats.written == 0 and stats.logged == 3
    assert blocker.is_file()


def test_close_flushes_and_stops_taking_rows(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path, batch_rows=1_000, flush_interval_s=60)
    prediction = _prediction(n=4)
    monitoring.record(prediction, _instances(4), 0.001)
    monitoring.close()
    monitoring.close()  # idempotent
    assert monitoring.stats()["rows_written"] == 4
    assert not monitoring.record(_prediction(n=1), _instances(1), 0.001)
    assert monitoring.stats()["rows_dropped"] == 1
    assert monitoring.query("SELECT count(*) AS n FROM predictions").to_pylist() == [{"n": 4}]


def test_feedback_joins_the_predictions_by_request_id(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path, flush_interval_s=60)
    try:
        a, b = _prediction(n=1), _prediction(n=1)
        monitoring.record(a, _instances(1), 0.001)
        monitoring.record(b, _instances(1), 0.001)
        monitoring.flush()
        assert monitoring.record_feedback("loans", [(a.request_id, 1), (b.request_id, "0")]) == 2
        rows = monitoring.query(
            "SELECT p.request_id, p.prediction, f.label FROM predictions p "
            "JOIN feedback f USING (request_id) ORDER BY p.request_id").to_pylist()
        assert {(r["request_id"], r["label"]) for r in rows} == {(a.request_id, "1"), (b.request_id, "0")}
        assert all(r["prediction"] == "0" for r in rows)
        assert list((tmp_path / "feedback").glob("deployment=loans/date=*/part-*.parquet"))
    finally:
        monitoring.close()


def test_feedback_validation_names_the_field(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path)
    try:
        cases = [("loans", [], "labels"), ("loans", [(7, 1)], "labels[0].request_id"),
                 ("loans", [("r1", 1), ("r2", 1.5)], "labels[1].label"),
                 ("loans", [("r1", True)], "labels[0].label"), ("loans", [("r1",)], "labels[0]"),
                 ("../x", [("r1", 1)], "deployment")]
        for deployment, labels, field in cases:
            with pytest.raises(InvalidInput) as caught:
                monitoring.record_feedback(deployment, labels)  # type: ignore[arg-type]
            assert caught.value.field == field
        assert not (tmp_path / "feedback").exists()
    finally:
        monitoring.close()


def test_query_works_before_anything_is_written(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path)
    try:
        assert monitoring.query("SELECT count(*) AS n FROM predictions p LEFT JOIN feedback f "
                                "USING (request_id)").to_pylist() == [{"n": 0}]
        with pytest.raises(InvalidInput):
            monitoring.query("SELECT nope FROM predictions")
    finally:
        monitoring.close()


def _same_rows_both_ways(tmp_path: Path, columns: dict[str, np.ndarray], labels: np.ndarray,
                         probabilities: np.ndarray) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The rows of one request logged as dicts (the row path) and as columns, read back."""
    n = len(labels)
    as_lists = {name: values.reshape(-1).tolist() for name, values in columns.items()}
    rows = [{name: values[i] for name, values in as_lists.items()} for i in range(n)]
    prediction = Prediction(request_id="r-1", deployment="loans", model="loan-default", version="1.0.0",
                            digest="sha256:abc", predictions=tuple(labels.tolist()),
                            probabilities=tuple(map(tuple, probabilities.astype(np.float64).tolist())),
                            classes=(0, 1))
    answers = []
    for kind in ("rows", "columns"):
        monitoring = Monitoring(tmp_path / kind, batch_rows=10_000, flush_interval_s=60)
        try:
            if kind == "rows":
                assert monitoring.record(prediction, rows, 0.003)
            else:
                assert monitoring.record_columns(prediction, columns, 0.003, labels=labels,
                                                 probabilities=probabilities)
            assert monitoring.flush()
            stats = monitoring.stats()
            assert (stats["rows_logged"], stats["rows_written"], stats["rows_dropped"]) == (n, n, 0)
            table = monitoring.query("SELECT * EXCLUDE (date) FROM predictions")
            read = table.to_pylist()
            assert all(row.pop("at") is not None for row in read)  # when it was logged: each log its own
            answers.append((table.schema, read))
        finally:
            monitoring.close()
    (schema_rows, by_rows), (schema_columns, by_columns) = answers
    assert schema_columns == schema_rows
    return by_rows, by_columns


def test_a_columnar_batch_reads_back_as_the_same_rows_logged_as_dicts(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 257
    columns: dict[str, np.ndarray] = {
        # float32 tensors as the columnar routes feed them, with values whose text is tricky
        "income": np.concatenate([rng.normal(size=n - 6) * 1e4, [0.0, -0.0, 1e16, 2.5e-7, 1000.0, -3.0]])
        .astype(np.float32).reshape(-1, 1),
        "age": rng.integers(18, 90, size=(n, 1)).astype(np.float32),
        "score": rng.normal(size=n),  # float64, [n]
        "children": rng.integers(0, 4, size=n),  # integers stay integers in the JSON
        "region": np.asarray([["north", 'sud, "est"', "ünï\\côdé", "\n"][i % 4] for i in range(n)],
                             dtype=object).reshape(-1, 1),  # text with commas, quotes, escapes
    }
    labels = rng.integers(0, 2, size=n)
    probabilities = rng.random(size=(n, 2)).astype(np.float32)
    by_rows, by_columns = _same_rows_both_ways(tmp_path, columns, labels, probabilities)
    key = lambda r: r["features"]  # noqa: E731
    assert sorted(by_columns, key=key) == sorted(by_rows, key=key)
    assert len(by_columns) == n
    assert {name for name in by_columns[0] if name.startswith("f_")} == {f"f_{name}" for name in columns}
    assert json.loads(by_columns[0]["features"])["children"] == int(columns["children"][0])


def test_string_labels_and_a_mixed_queue_read_back_like_rows(tmp_path: Path) -> None:
    columns = {"income": np.asarray([[1.5], [2.0], [3.25]], dtype=np.float32),
               "region": np.asarray([["north"], ["south"], ["east"]], dtype=object)}
    labels = np.asarray(["yes", "no", "yes"], dtype=object)
    probabilities = np.asarray([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]], dtype=np.float32)
    by_rows, by_columns = _same_rows_both_ways(tmp_path, columns, labels, probabilities)
    assert by_columns == by_rows
    # a dict request and a columnar one queued together land in one file, typed alike
    monitoring = Monitoring(tmp_path / "mixed", batch_rows=10_000, flush_interval_s=60)
    try:
        assert monitoring.record(_prediction(n=2), _instances(2), 0.001)
        assert monitoring.record_columns(_prediction(n=3), {"income": np.asarray([1.0, 2.0, 3.0]),
                                                            "region": np.asarray(["a", "b", "c"], dtype=object)},
                                         0.001)
        assert monitoring.flush()
        files = list((tmp_path / "mixed" / "predictions").glob("deployment=loans/date=*/part-*.parquet"))
        assert len(files) == 1
        table = pq.read_table(files[0])
        assert table.num_rows == 5
        assert table.schema.field("f_income").type == "double" and table.schema.field("f_region").type == "string"
        assert sorted(table.column("f_region").to_pylist()) == ["a", "b", "c", "north", "north"]
    finally:
        monitoring.close()


def test_columnar_batches_count_drops_and_skip_what_cannot_be_rows(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions", max_rows=5, batch_rows=1_000, flush_interval_s=60)
    try:
        assert log.record_columns(_prediction(n=4), {"income": np.arange(4.0)}, 0.001)
        assert not log.record_columns(_prediction(n=2), {"income": np.arange(2.0)}, 0.001)  # 4 + 2 > 5
        # columns of different lengths are no rows: refused and counted, never raised
        assert not log.record_columns(_prediction(n=1), {"a": np.arange(1.0), "b": np.arange(3.0)}, 0.001)
        stats = log.stats()
        assert (stats.logged, stats.dropped, stats.queued) == (4, 2, 4)
        assert log.flush()
    finally:
        log.close()
    assert log.stats().written == 4 and log.stats().write_errors == 0


def test_rows_whose_feature_types_clash_land_in_files_of_their_own(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path, batch_rows=10_000, flush_interval_s=60)
    try:
        assert monitoring.record(_prediction(n=2), _instances(2), 0.001)  # region is text here
        assert monitoring.record_columns(_prediction(n=3), {"income": np.asarray([1.0, 2.0, 3.0]),
                                                            "region": np.asarray([7.0, 8.0, 9.0])}, 0.001)
        assert monitoring.flush()
        stats = monitoring.stats()
        assert (stats["rows_written"], stats["write_errors"], stats["rows_dropped"]) == (5, 0, 0)
        files = list((tmp_path / "predictions").glob("deployment=loans/date=*/part-*.parquet"))
        assert len(files) == 2
        regions = sorted(str(r["f_region"]) for r in monitoring.query("SELECT f_region FROM predictions").to_pylist())
        assert regions == ["7.0", "8.0", "9.0", "north", "north"]
    finally:
        monitoring.close()


def test_a_flush_of_many_requests_is_one_file_with_every_row(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path, batch_rows=100_000, flush_interval_s=60)
    try:
        for _ in range(700):  # built a slice at a time, written as one file
            assert monitoring.record(_prediction(n=1), _instances(1), 0.001)
        for _ in range(300):
            assert monitoring.record_columns(_prediction(n=2), {"income": np.asarray([[5.0], [6.0]]),
                                                                "region": np.asarray([["a"], ["b"]], dtype=object)},
                                             0.001)
        assert monitoring.flush()
        assert len(list((tmp_path / "predictions").glob("deployment=loans/date=*/part-*.parquet"))) == 1
        counts = monitoring.query("SELECT f_region, count(*) AS n FROM predictions GROUP BY f_region "
                                  "ORDER BY f_region").to_pylist()
        assert counts == [{"f_region": "a", "n": 300}, {"f_region": "b", "n": 300}, {"f_region": "north", "n": 700}]
        assert monitoring.stats()["rows_written"] == 1300
    finally:
        monitoring.close()
