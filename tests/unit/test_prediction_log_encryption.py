"""The prediction log, feedback and error counts at rest: encrypted Parquet under the log
key on an encrypted home (a served marker is read back through the platform and found in
no byte of the home), plaintext on a home without encryption, a plaintext log converted in
place (idempotent, resumable), each feature stored once, retention by date partition,
erasure and export of a subject's rows, and a changed file refused loudly."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_lite.crypto.keys import DataKey
from mlops_lite.errors import IntegrityError, InvalidInput
from mlops_lite.monitoring.checks import check_window
from mlops_lite.monitoring.prediction_log import ENCRYPTED_FOOTER, Monitoring, is_encrypted_file
from mlops_lite.records import Prediction
from tests.conftest import build_loop, holdout_rows


def _key(tag: str = "one") -> DataKey:
    return DataKey("log", f"log-test-{tag}", os.urandom(32))


def _prediction(n: int, *, deployment: str = "loans", request_id: str | None = None) -> Prediction:
    return Prediction(request_id=request_id or secrets.token_hex(8), deployment=deployment, model="m",
                      version="1.0.0", digest="d" * 64, predictions=tuple(["1", "0"][i % 2] for i in range(n)),
                      probabilities=tuple((0.3, 0.7) for _ in range(n)), classes=("0", "1"),
                      slot="primary")


def _log_files(home: Path) -> list[Path]:
    return sorted(p for folder in ("predictions", "feedback", "errors") for p in (home / folder).rglob("*")
                  if p.is_file())


def _bytes_hold(home: Path, marker: str) -> list[str]:
    forms = (marker.encode(), marker.encode("utf-16-le"), marker.encode("utf-16-be"))
    return [str(p.relative_to(home)) for p in sorted(home.rglob("*"))
            if p.is_file() and any(form in p.read_bytes() for form in forms)]


def _customers(monitoring: Monitoring, marker: str) -> tuple[str, str]:
    """Two requests, one of the marker's customer (2 rows), one of another (1 row), each
    labelled; answers their request ids."""
    mine, other = _prediction(2), _prediction(1)
    assert monitoring.record(mine, [{"customer_id": marker, "income": 10.0},
                                    {"customer_id": marker, "income": 11.0}], 0.001)
    assert monitoring.record(other, [{"customer_id": "someone-else", "income": 12.0}], 0.001)
    assert monitoring.flush()
    monitoring.record_feedback("loans", [(mine.request_id, 1), (other.request_id, 0)])
    monitoring.record_error("loans", 503, "primary")
    monitoring.flush()
    return mine.request_id, other.request_id


# ---- a real platform, a real predict -------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, str, str]]:
    """An encrypted home (the default) serving 'loans'; a marker sent as a feature value
    that no training row held, and as a feedback label."""
    home = tmp_path_factory.mktemp("served") / "home"
    platform, _token, spec = build_loop(home)
    try:
        marker = "mkr" + secrets.token_hex(10)
        rows = holdout_rows(spec, 3)
        feature = spec.categorical[0]  # type: ignore[attr-defined]
        rows[0][feature] = marker
        answer = platform.deployments.predict("loans", rows)
        platform.monitoring.flush()
        platform.monitoring.record_feedback("loans", [(answer.request_id, marker)])
        yield platform, marker, feature, answer.request_id
    finally:
        platform.close()


def test_a_served_marker_is_read_back_and_on_no_byte_of_the_home(served: tuple[Any, str, str, str]) -> None:
    platform, marker, feature, request_id = served
    home = Path(platform.settings.home)
    logged = platform.monitoring.query(
        f'SELECT "f_{feature}", features FROM predictions WHERE request_id = \'{request_id}\'').to_pylist()
    assert marker in [row[f"f_{feature}"] for row in logged]
    assert any(json.loads(row["features"]).get(feature) == marker for row in logged)
    labels = platform.monitoring.query(f"SELECT label FROM feedback WHERE request_id = '{request_id}'")
    assert labels.column("label").to_pylist() == [marker]
    files = [p for p in _log_files(home) if p.suffix == ".parquet"]
    assert any("predictions" in p.parts for p in files) and any("feedback" in p.parts for p in files)
    assert all(is_encrypted_file(p) for p in files), [str(p) for p in files if not is_encrypted_file(p)]
    assert not [p for p in _log_files(home) if p.name.endswith(".tmp")]
    assert _bytes_hold(home, marker) == []
    assert platform.monitoring.trace(request_id).instances[0][feature] == marker


def test_the_monitor_reads_the_encrypted_log(served: tuple[Any, str, str, str]) -> None:
    platform, _marker, _feature, _request_id = served
    deployment = platform.deployments.get("loans")
    report = platform.loop.check("loans", since=deployment.updated_at.isoformat())["report"]
    assert report["rows"] >= 3 and report["infra"]["p50_ms"] > 0
    assert platform.monitoring.stats()["write_errors"] == 0


# ---- a home without encryption ------------------------------------------------------

def test_a_plaintext_log_still_works_and_holds_each_feature_once(tmp_path: Path) -> None:
    marker = "mkr" + secrets.token_hex(8)
    monitoring = Monitoring(tmp_path, batch_rows=100, flush_interval_s=60)
    try:
        mine, _other = _customers(monitoring, marker)
        rows = monitoring.query(f"SELECT f_customer_id, features FROM predictions WHERE request_id = '{mine}'")
        assert rows.column("f_customer_id").to_pylist() == [marker, marker]
        assert json.loads(rows.column("features")[0].as_py()) == {"customer_id": marker, "income": 10.0}
    finally:
        monitoring.close()
    files = [p for p in _log_files(tmp_path) if p.suffix == ".parquet"]
    assert files and not any(is_encrypted_file(p) for p in files)
    predictions = [p for p in files if "predictions" in p.parts]
    assert all("features" not in pq.ParquetFile(p).schema_arrow.names for p in predictions)
    assert _bytes_hold(tmp_path, marker)  # the scan sees plaintext where there is plaintext


# ---- converting a plaintext log -----------------------------------------------------

def _old_release_log(home: Path, marker: str) -> str:
    """Files as the previous release wrote them: the JSON ``features`` beside the typed
    columns, plaintext; feedback, error counts and a crashed write's temp file beside."""
    folder = home / "predictions" / "deployment=loans" / "date=2026-11-30"
    folder.mkdir(parents=True)
    request_id = "req-old-1"
    table = pa.table({
        "request_id": [request_id, "req-old-2"], "deployment": ["loans"] * 2, "model": ["m"] * 2,
        "version": ["1.0.0"] * 2, "digest": ["d" * 64] * 2,
        "at": pa.array([datetime(2026, 11, 30, 12, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
        "latency_ms": [1.0, 2.0],
        "features": [json.dumps({"customer_id": marker, "income": 5}), json.dumps({"customer_id": "x", "income": 6})],
        "prediction": ["1", "0"], "probability": [0.7, 0.2], "slot": ["primary"] * 2,
        "f_customer_id": [marker, "x"], "f_income": [5.0, 6.0]})
    pq.write_table(table, folder / "part-old.parquet")
    (folder / ".part-crashed.parquet.tmp").write_bytes(f"half a plaintext file {marker}".encode())
    labels = home / "feedback" / "deployment=loans" / "date=2026-11-30"
    labels.mkdir(parents=True)
    pq.write_table(pa.table({"request_id": [request_id], "deployment": ["loans"], "label": [marker],
                             "at": pa.array([datetime(2026, 11, 30, 13, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))}),
                   labels / "part-old.parquet")
    return request_id


def test_encrypt_existing_converts_in_place_and_is_idempotent(tmp_path: Path) -> None:
    marker = "mkr" + secrets.token_hex(8)
    request_id = _old_release_log(tmp_path, marker)
    plain = Monitoring(tmp_path, batch_rows=100, flush_interval_s=60)
    plain.record_error("loans", 500)
    before = plain.query("SELECT request_id, f_customer_id, features, prediction FROM predictions "
                         "ORDER BY request_id").to_pylist()
    plain.close()
    assert _bytes_hold(tmp_path, marker)

    key = _key()
    monitoring = Monitoring(tmp_path, log_key=key, batch_rows=100, flush_interval_s=60)
    try:
        assert monitoring.encrypt_existing(key) == 3  # predictions, feedback, errors
        files = [p for p in _log_files(tmp_path)]
        assert files and all(p.read_bytes()[-4:] == ENCRYPTED_FOOTER for p in files)
        assert _bytes_hold(tmp_path, marker) == []
        after = monitoring.query("SELECT request_id, f_customer_id, features, prediction FROM predictions "
                                 "ORDER BY request_id").to_pylist()
        assert [r["f_customer_id"] for r in after] == [r["f_customer_id"] for r in before]
        assert json.loads(after[0]["features"])["customer_id"] == marker  # made from the typed column now
        assert monitoring.query(f"SELECT label FROM feedback WHERE request_id = '{request_id}'").to_pylist() == [
            {"label": marker}]
        assert monitoring.encrypt_existing(key) == 0  # nothing left to convert
        # new writes are encrypted too, and read beside the converted ones
        monitoring.record(_prediction(1), [{"customer_id": "new", "income": 1.0}], 0.001)
        monitoring.flush()
        assert monitoring.query("SELECT count(*) AS n FROM predictions").to_pylist() == [{"n": 3}]
    finally:
        monitoring.close()
    assert all(is_encrypted_file(p) for p in _log_files(tmp_path))


def test_a_conversion_cut_short_reads_whole_and_the_next_run_finishes(tmp_path: Path) -> None:
    marker = "mkr" + secrets.token_hex(8)
    _old_release_log(tmp_path, marker)
    key = _key()
    monitoring = Monitoring(tmp_path, log_key=key, batch_rows=100, flush_interval_s=60)
    try:
        # the state a crash leaves: one file converted (rename done), the other not yet
        first = next((tmp_path / "predictions").rglob("*.parquet"))
        monitoring.files.write(pq.ParquetFile(first).read(), first, sync=True)
        assert is_encrypted_file(first)
        assert monitoring.query("SELECT count(*) AS n FROM predictions").to_pylist() == [{"n": 2}]
        assert monitoring.query("SELECT count(*) AS n FROM feedback").to_pylist() == [{"n": 1}]
        assert monitoring.encrypt_existing(key) == 1  # the feedback file; the rest was done
        assert _bytes_hold(tmp_path, marker) == []
    finally:
        monitoring.close()


# ---- retention ----------------------------------------------------------------------

def test_retention_removes_old_date_partitions_only(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path, log_key=_key(), batch_rows=100, flush_interval_s=60)
    try:
        _customers(monitoring, "someone")
        today = datetime.now(UTC)
        per_day = len([p for p in tmp_path.rglob("*.parquet")])
        for root in ("predictions", "feedback", "errors"):
            for source in (tmp_path / root).glob("deployment=*/date=*"):
                for days in (3, 40):
                    old = source.parent / f"date={(today - timedelta(days=days)).date().isoformat()}"
                    shutil.copytree(source, old)
        with pytest.raises(InvalidInput) as refused:
            monitoring.apply_retention(-1)
        assert refused.value.field == "days"
        assert monitoring.apply_retention(30, now=today) == per_day  # the 40-day-old copies
        assert monitoring.apply_retention(30, now=today) == 0
    finally:
        monitoring.close()
    dates = {p.name for p in tmp_path.glob("*/deployment=*/date=*")}
    assert dates == {f"date={(today - timedelta(days=d)).date().isoformat()}" for d in (0, 3)}
    assert monitoring.query("SELECT count(*) AS n FROM predictions").to_pylist() == [{"n": 6}]


# ---- erasure and export ----------------------------------------------------------------

def test_erase_rows_removes_a_subjects_rows_and_feedback_and_keeps_the_rest(tmp_path: Path) -> None:
    marker = "mkr" + secrets.token_hex(8)
    monitoring = Monitoring(tmp_path, log_key=_key(), batch_rows=100, flush_interval_s=60)
    try:
        mine, other = _customers(monitoring, marker)
        exported = monitoring.rows_where('"f_customer_id" = ?', [marker])
        assert exported.column("request_id").to_pylist() == [mine, mine]
        assert exported.column("feedback_label").to_pylist() == ["1", "1"]
        assert monitoring.rows_where('"f_nobody" = ?', [marker]).num_rows == 0
        assert monitoring.erase_rows('CAST("f_customer_id" AS VARCHAR) IN (?) OR "f_nobody" = ?',
                                     [marker, marker]) == 3  # two predictions, one label
        assert monitoring.query("SELECT request_id FROM predictions").column(0).to_pylist() == [other]
        assert monitoring.query("SELECT request_id FROM feedback").column(0).to_pylist() == [other]
        assert monitoring.erase_rows('"f_customer_id" = ?', [marker]) == 0
        with pytest.raises(InvalidInput) as refused:
            monitoring.erase_rows('"f_nobody" = ?', [marker])
        assert refused.value.field == "where_sql"
        with pytest.raises(InvalidInput):
            monitoring.erase_rows("this is not sql ((", [])
    finally:
        monitoring.close()
    assert all(is_encrypted_file(p) for p in _log_files(tmp_path))
    assert _bytes_hold(tmp_path, marker) == []


def test_erasing_every_row_of_a_file_removes_it(tmp_path: Path) -> None:
    monitoring = Monitoring(tmp_path, batch_rows=100, flush_interval_s=60)
    try:
        monitoring.record(_prediction(1), [{"customer_id": "only", "income": 1.0}], 0.001)
        monitoring.flush()
        assert monitoring.erase_rows('"f_customer_id" = ?', ["only"]) == 1
        assert not list((tmp_path / "predictions").rglob("*.parquet"))
        assert monitoring.query("SELECT count(*) AS n FROM predictions").to_pylist() == [{"n": 0}]
    finally:
        monitoring.close()


# ---- a changed file -----------------------------------------------------------------

def test_a_changed_file_is_refused_loudly(tmp_path: Path) -> None:
    key = _key()
    monitoring = Monitoring(tmp_path, log_key=key, batch_rows=100, flush_interval_s=60)
    try:
        _customers(monitoring, "someone")
        target = next((tmp_path / "predictions").rglob("*.parquet"))
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match="does not verify"):
            monitoring.query("SELECT * FROM predictions")
        with pytest.raises(IntegrityError, match="does not verify"):
            check_window(monitoring.predictions_dir, monitoring.feedback_dir, "loans",
                         pa.table({"income": [1.0, 2.0]}), [("income", "numeric")], log_key=key)
    finally:
        monitoring.close()
    wrong = Monitoring(tmp_path, log_key=_key("other"), batch_rows=100, flush_interval_s=60)
    keyless = Monitoring(tmp_path, batch_rows=100, flush_interval_s=60)
    try:
        with pytest.raises(IntegrityError):
            wrong.query("SELECT count(*) FROM feedback")
        with pytest.raises(IntegrityError, match="no log key"):
            keyless.query("SELECT count(*) FROM feedback")
    finally:
        wrong.close()
        keyless.close()


def test_a_changed_file_fails_the_monitor_loudly_and_the_daemon_job_goes_on(
        served: tuple[Any, str, str, str], caplog: pytest.LogCaptureFixture) -> None:
    from server.jobs import DaemonJobs

    platform = served[0]
    target = next(Path(platform.settings.home, "predictions").rglob("*.parquet"))
    original = target.read_bytes()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01
    try:
        target.write_bytes(bytes(changed))
        with pytest.raises(IntegrityError, match="does not verify"):
            platform.loop.check("loans")
        jobs = DaemonJobs(platform, platform.settings, prefect_url=None, load_flows=lambda: None,
                          echo=lambda _: None)
        with caplog.at_level("ERROR"):
            assert jobs.monitor_all() == []  # the deployment's pass failed, logged; the job itself did not
        assert any("monitoring loans failed" in r.getMessage() for r in caplog.records)
    finally:
        target.write_bytes(original)
    assert platform.loop.check("loans")["report"]["rows"] >= 3


def test_erasure_and_export_reach_files_older_than_the_typed_columns(tmp_path: Path) -> None:
    """A file with only the JSON ``features`` (no f_ columns) beside new ones: the
    subject's rows in it are found and erased by the typed column's name."""
    marker = "mkr" + secrets.token_hex(8)
    folder = tmp_path / "predictions" / "deployment=loans" / "date=2026-10-01"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({
        "request_id": ["req-json-1", "req-json-2"], "deployment": ["loans"] * 2, "model": ["m"] * 2,
        "version": ["1.0.0"] * 2, "digest": ["d" * 64] * 2,
        "at": pa.array([datetime(2026, 10, 1, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
        "latency_ms": [1.0, 1.0], "features": [json.dumps({"customer_id": marker}), json.dumps({"customer_id": "x"})],
        "prediction": ["1", "0"], "probability": [0.5, 0.5], "slot": ["primary"] * 2}), folder / "part-json.parquet")
    monitoring = Monitoring(tmp_path, batch_rows=100, flush_interval_s=60)
    try:
        _customers(monitoring, marker)  # new files: typed f_customer_id
        found = monitoring.rows_where('CAST("f_customer_id" AS VARCHAR) IN (?)', [marker])
        assert "req-json-1" in found.column("request_id").to_pylist() and found.num_rows == 3
        assert monitoring.erase_rows('CAST("f_customer_id" AS VARCHAR) IN (?)', [marker]) == 4  # 3 rows, 1 label
        assert _bytes_hold(tmp_path, marker) == []
        left = set(monitoring.query("SELECT request_id FROM predictions").column(0).to_pylist())
        assert "req-json-2" in left and "req-json-1" not in left and len(left) == 2
    finally:
        monitoring.close()
