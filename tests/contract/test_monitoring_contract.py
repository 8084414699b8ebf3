"""The monitoring contract: ``platform.monitoring`` (mlops_lite/api/monitoring.py) traces
a served request, counts the log, records feedback and answers SQL over the log with the
same records, tables and errors, local or remote."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from mlops_lite import InvalidInput, NotFound
from mlops_lite.records import Prediction, PredictionTrace
from tests.conftest import DATA, FEATURE_EXCLUDE

STATS = {"rows_logged", "rows_dropped", "rows_written", "write_errors", "batches", "rows_queued"}
QUERY_FAILED = "SQL over the views predictions and feedback"


def _rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    """Held-out rows with the deployed model's features (all but the excluded and the target)."""
    rows = pacsv.read_csv(DATA / "loans_holdout.csv").to_pylist()[start:start + n]
    return [{k: v for k, v in row.items() if k not in (*FEATURE_EXCLUDE, "default")} for row in rows]


def _served(api: Any, rows: list[dict[str, Any]]) -> Prediction:
    """A prediction of 'loans', answered and logged by the serving pipeline (in-process as
    over HTTP)."""
    prediction: Prediction = api.deployments.predict("loans", rows)
    return prediction


def test_a_served_request_is_traced_with_its_rows_and_answers(loop_api: Any) -> None:
    rows = _rows(3)
    prediction = _served(loop_api, rows)
    trace = loop_api.monitoring.trace(prediction.request_id)
    assert type(trace) is PredictionTrace
    assert (trace.request_id, trace.deployment, trace.slot, trace.model, trace.version, trace.digest) == \
        (prediction.request_id, "loans", "primary", "loan-default", "1.0.0", prediction.digest)
    assert trace.instances == tuple(rows)
    assert trace.predictions == tuple(str(label) for label in prediction.predictions)
    assert trace.probabilities == pytest.approx([p[-1] for p in prediction.probabilities])
    assert (trace.feedback, trace.feedback_at) == (None, None)
    assert trace.lineage.deployment == "loans"


def test_an_unknown_or_malformed_request_id_is_refused(loop_api: Any) -> None:
    with pytest.raises(NotFound) as missing:
        loop_api.monitoring.trace("no-such-request")
    assert missing.value.message == "no logged prediction has request id 'no-such-request'"
    with pytest.raises(InvalidInput) as bad:
        loop_api.monitoring.trace("bad id!")
    assert (bad.value.message, bad.value.field) == ("bad request id 'bad id!'", "request_id")


def test_the_log_counts_the_rows_it_is_given(loop_api: Any) -> None:
    before = loop_api.monitoring.stats()
    assert set(before) == STATS and all(type(v) is int and v >= 0 for v in before.values())
    prediction = _served(loop_api, _rows(4, start=3))
    after = loop_api.monitoring.stats()
    assert after["rows_logged"] == before["rows_logged"] + 4
    loop_api.monitoring.trace(prediction.request_id)  # a trace writes what is queued before it reads
    flushed = loop_api.monitoring.stats()
    assert flushed["rows_queued"] == 0 and flushed["rows_written"] >= before["rows_written"] + 4


def test_feedback_labels_reach_the_trace_and_the_feedback_view(loop_api: Any) -> None:
    first, second = _served(loop_api, _rows(1, start=7)), _served(loop_api, _rows(1, start=8))
    assert loop_api.monitoring.record_feedback("loans", [(first.request_id, 1), (second.request_id, "0")]) == 2
    trace = loop_api.monitoring.trace(first.request_id)
    assert trace.feedback == "1" and trace.feedback_at is not None
    labels = loop_api.monitoring.query(
        "SELECT request_id, label FROM feedback WHERE request_id IN "
        f"('{first.request_id}', '{second.request_id}') ORDER BY label DESC")
    assert labels.to_pylist() == [{"request_id": first.request_id, "label": "1"},
                                  {"request_id": second.request_id, "label": "0"}]


@pytest.mark.parametrize(("labels", "field", "message"), [
    ([], "labels", "feedback needs at least one (request_id, label)"),
    ([("only-an-id",)], "labels[0]", "feedback item 0 is not a (request_id, label) pair"),
    ([("r-1", 1), ("", 0)], "labels[1].request_id", "feedback item 1: request_id must be a non-empty string"),
    ([("r-1", True)], "labels[0].label", "feedback item 0: label must be an integer or a string"),
    ([("r-1", 0.5)], "labels[0].label", "feedback item 0: label must be an integer or a string"),
])
def test_bad_feedback_is_refused_naming_the_pair(loop_api: Any, labels: list[Any], field: str,
                                                  message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        loop_api.monitoring.record_feedback("loans", labels)
    assert (refused.value.field, refused.value.message) == (field, message)


def test_feedback_for_a_badly_named_deployment_is_refused(loop_api: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        loop_api.monitoring.record_feedback("no such", [("r-1", 1)])
    assert (refused.value.field, refused.value.message) == ("deployment", "bad deployment name 'no such'")


def test_a_query_answers_the_same_table_with_its_types(loop_api: Any) -> None:
    rows = _rows(5, start=10)
    prediction = _served(loop_api, rows)
    trace = loop_api.monitoring.trace(prediction.request_id)
    table = loop_api.monitoring.query(
        'SELECT request_id, version, prediction, probability, "at", date, f_income, f_term_months, '
        "slot IS NULL OR slot = 'primary' AS answered, count(*) OVER () AS n, "
        "sum(CAST(prediction AS BIGINT)) OVER () AS positives "
        f"FROM predictions WHERE request_id = '{prediction.request_id}' ORDER BY f_income")
    assert isinstance(table, pa.Table) and table.num_rows == 5
    kinds = dict(zip(table.column_names, table.schema.types, strict=True))
    assert (kinds["request_id"], kinds["probability"], kinds["f_income"], kinds["answered"], kinds["n"]) == \
        (pa.string(), pa.float64(), pa.float64(), pa.bool_(), pa.int64())
    assert pa.types.is_timestamp(kinds["at"]) and kinds["at"].tz is not None
    assert pa.types.is_date(kinds["date"]) and pa.types.is_decimal(kinds["positives"])
    got = table.to_pylist()
    assert [r["f_income"] for r in got] == sorted(r["income"] for r in rows)
    assert {r["at"] for r in got} == {trace.at} and {r["date"] for r in got} == {trace.at.date()}
    assert all(r["answered"] and r["n"] == 5 and r["version"] == "1.0.0" for r in got)
    assert got[0]["positives"] == Decimal(sum(int(p) for p in trace.predictions))
    assert sorted(r["probability"] for r in got) == pytest.approx(sorted(trace.probabilities))


def test_an_empty_answer_keeps_its_columns_and_types(loop_api: Any) -> None:
    table = loop_api.monitoring.query('SELECT request_id, probability, "at" FROM predictions WHERE false')
    assert table.num_rows == 0 and table.column_names == ["request_id", "probability", "at"]
    assert table.schema.field("probability").type == pa.float64()


def test_failed_requests_are_counted_in_the_errors_view(loop_api: Any) -> None:
    def failed() -> int:
        table = loop_api.monitoring.query(
            "SELECT coalesce(sum(count), 0)::BIGINT AS n FROM errors WHERE deployment = 'loans' AND status = 422")
        return int(table.column("n")[0].as_py())

    before = failed()
    for _ in range(2):
        with pytest.raises(InvalidInput):
            loop_api.deployments.predict("loans", [{"not_a_feature": 1.0}])
    assert failed() == before + 2
    kinds = loop_api.monitoring.query('SELECT deployment, "at", slot, status, count FROM errors WHERE false').schema
    assert [kinds.field(c).type for c in ("deployment", "slot", "status", "count")] == \
        [pa.string(), pa.string(), pa.int32(), pa.int64()]
    assert pa.types.is_timestamp(kinds.field("at").type) and kinds.field("at").type.tz is not None


def test_windows_count_served_and_failed_requests_per_deployment_and_slot(loop_api: Any) -> None:
    from mlops_lite.records import TrafficWindow

    def totals() -> dict[str | None, tuple[int, int]]:
        got = loop_api.monitoring.windows(count=1, width_s=3600, deployment="loans")
        assert all(type(w) is TrafficWindow and w.deployment == "loans" and w.window == 0 for w in got)
        return {w.slot: (w.requests, w.errors) for w in got}

    before = totals()
    for start in (20, 23, 26):
        prediction = _served(loop_api, _rows(3, start=start))  # three requests of three rows each
    with pytest.raises(InvalidInput):
        loop_api.deployments.predict("loans", [{"not_a_feature": 1.0}])
    loop_api.monitoring.trace(prediction.request_id)  # writes what is queued
    after = totals()
    old_requests, old_errors = before.get(None, (0, 0))
    assert after[None] == (old_requests + 3, old_errors + 1)
    assert after["primary"][0] == before.get("primary", (0, 0))[0] + 3
    window = next(w for w in loop_api.monitoring.windows(count=1, width_s=3600) if w.slot is None
                  and w.deployment == "loans")
    assert window.p50_ms is not None and window.p99_ms is not None and 0 < window.p50_ms <= window.p99_ms
    assert window.width_s == 3600 and window.start.tzinfo is not None
    assert loop_api.monitoring.windows(count=3, width_s=60, until="2001-01-01T00:00:00Z") == []


@pytest.mark.parametrize(("arguments", "field"), [({"count": 0}, "count"), ({"width_s": 0}, "width_s"),
                                                  ({"until": "yesterday"}, "until"),
                                                  ({"deployment": "no such'"}, "deployment")])
def test_bad_window_arguments_are_refused_naming_the_field(loop_api: Any, arguments: dict[str, Any],
                                                            field: str) -> None:
    with pytest.raises(InvalidInput) as bad:
        loop_api.monitoring.windows(**arguments)
    assert bad.value.field == field


@pytest.mark.parametrize("sql", ["SELECT nope FROM predictions", "SELECT FROM WHERE"])
def test_a_failing_query_is_invalid_input_naming_the_sql(loop_api: Any, sql: str) -> None:
    with pytest.raises(InvalidInput) as failed:
        loop_api.monitoring.query(sql)
    assert failed.value.field == "sql" and failed.value.expected == QUERY_FAILED
    assert failed.value.message.startswith("monitoring query failed: ")


# --- Over HTTP the query runs in the server's process: one read of the log, bounded.


@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
@pytest.mark.parametrize(("sql", "rule"), [
    ("COPY (SELECT 1) TO '/tmp/mlops-lite-copied.csv'", "select_only"),
    ("SELECT 1; SELECT 2", "single_statement"),
    ("SELECT * FROM read_csv('/etc/passwd')", "forbidden_function"),
    ("SELECT getenv('HOME')", "forbidden_function"),
    ("SELECT * FROM '/etc/passwd'", "log_views_only"),
    ("WITH p AS (SELECT * FROM predictions) SELECT * FROM p, 'secrets.parquet'", "log_views_only"),
    ("SELECT * FROM duckdb_settings()", "no_table_functions"),
    ("SELECT * INTO copied FROM predictions", "forbidden_keyword"),
])
def test_over_http_only_a_read_of_the_log_runs(api: Any, sql: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        api.monitoring.query(sql)
    assert refused.value.field == "sql" and refused.value.details["rule"] == rule


@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
def test_over_http_an_answer_is_bounded(api: Any) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        whole = api.monitoring.query("WITH r AS (SELECT * FROM range(5)) SELECT range AS i FROM r")
    assert whole.column("i").to_pylist() == [0, 1, 2, 3, 4]
    assert not [w for w in caught if "max_rows" in str(w.message)]
    with pytest.warns(UserWarning, match="max_rows=2"):
        cut = api.monitoring.query("SELECT range AS i FROM range(5)", max_rows=2)
    assert cut.column("i").to_pylist() == [0, 1]
    with pytest.raises(InvalidInput) as refused:
        api.monitoring.query("SELECT 1", max_rows=-1)
    assert refused.value.field == "max_rows"


@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
def test_over_http_a_viewer_reads_the_counters_and_an_operator_queries(api: Any) -> None:
    from mlops_lite import PermissionDenied
    from mlops_lite.client import RemotePlatform

    _, secret = api.tokens.create("a-viewer", "viewer")
    with RemotePlatform(api.url, secret) as viewer:
        assert viewer.monitoring.stats() == api.monitoring.stats()
        assert viewer.monitoring.windows(count=2, width_s=60) == api.monitoring.windows(count=2, width_s=60)
        verbs: list[Callable[[Any], object]] = [lambda m: m.query("SELECT 1"),
                                                lambda m: m.record_feedback("loans", [("r", 1)])]
        for verb in verbs:
            with pytest.raises(PermissionDenied) as denied:
                verb(viewer.monitoring)
            assert denied.value.details == {"needed": "operator", "role": "viewer"}

