"""Tracking: experiments, buffered logging, crash safety, provenance, compare, read-only SQL.

Every test runs on a real local platform (a DuckDB file in a temporary home)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mlops_lite import connect
from mlops_lite.errors import Conflict, InvalidInput, NotFound
from mlops_lite.metadata.tables import Metric, Param, Run
from mlops_lite.tracking import sql as tracking_sql
from mlops_lite.tracking import writes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def p(tmp_path: Path):
    platform = connect(home=tmp_path / "home")
    yield platform
    platform.close()


def stored_points(p, run_id: str, key: str | None = None) -> int:
    """Metric rows in the database, read directly (no flush of open runs)."""
    with p.tracking._store.session() as session:
        query = select(func.count()).select_from(Metric).where(Metric.run_id == run_id)
        if key is not None:
            query = query.where(Metric.key == key)
        return int(session.execute(query).scalar_one())


def stored_params(p, run_id: str) -> dict[str, str]:
    with p.tracking._store.session() as session:
        return dict(session.execute(select(Param.key, Param.value).where(Param.run_id == run_id)).all())


# --------------------------------------------------------------------------- buffering


def test_points_wait_in_the_buffer_until_flush_every(p) -> None:
    run = p.tracking.start_run("buffered", flush_every=100, flush_interval=3600)
    for i in range(99):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
    assert run.pending == 99 and run.flushes == 0
    assert stored_points(p, run.id) == 0
    run.log_metric("loss", 0.001, step=99)  # the 100th point: one batch
    assert run.pending == 0 and run.flushes == 1
    assert stored_points(p, run.id) == 100
    run.log_params({"a": 1, "b": 2})
    assert stored_params(p, run.id) == {}
    assert run.flush() == 2
    assert stored_params(p, run.id) == {"a": "1", "b": "2"}
    assert run.flush() == 0  # nothing pending: no write
    assert run.flushes == 2


def test_params_count_towards_flush_every(p) -> None:
    run = p.tracking.start_run("params", flush_every=10, flush_interval=3600)
    for i in range(9):
        run.log_param(f"p{i}", i)
    assert stored_params(p, run.id) == {}
    run.log_metric("m", 1.0)
    assert len(stored_params(p, run.id)) == 9 and stored_points(p, run.id) == 1


def test_time_threshold_is_checked_on_each_call(p) -> None:
    run = p.tracking.start_run("timed", flush_every=1_000_000, flush_interval=0.3)
    run.log_metric("m", 1.0)
    assert stored_points(p, run.id) == 0
    time.sleep(0.35)
    run.log_metric("m", 2.0)  # more than flush_interval since the last write
    assert stored_points(p, run.id) == 2 and run.pending == 0
    run.log_metric("m", 3.0)
    assert stored_points(p, run.id) == 2  # the clock restarted at that write
    every_call = p.tracking.start_run("every call", flush_interval=0)
    every_call.log_metric("m", 1.0)
    assert stored_points(p, every_call.id) == 1
    run.end()
    assert stored_points(p, run.id) == 3


def test_end_and_context_exit_write_the_buffer(p) -> None:
    run = p.tracking.start_run("ended", flush_every=10_000, flush_interval=3600)
    run.log_metric("m", 1.0)
    run.log_param("k", "v")
    record = run.end()
    assert record.status == "finished" and record.metrics == {"m": 1.0} and record.params == {"k": "v"}
    with pytest.raises(RuntimeError), p.tracking.start_run("raises", flush_every=10_000,
                                                           flush_interval=3600) as failing:
        failing.log_metric("m", 2.0, step=5)
        raise RuntimeError("boom")
    assert stored_points(p, failing.id) == 1
    assert p.tracking.get_run(failing.id).status == "failed"


def test_reads_in_this_process_see_buffered_points(p) -> None:
    run = p.tracking.start_run("read your writes", flush_every=10_000, flush_interval=3600)
    run.log_metric("acc", 0.5)
    assert p.tracking.get_run(run.id).metrics == {"acc": 0.5}
    run.log_metric("acc", 0.6)
    assert [pt.value for pt in p.tracking.metric_history(run.id, "acc")] == [0.5, 0.6]
    run.log_metric("acc", 0.7)
    table = p.tracking.sql(f"select count(*) as n from metrics where run_id = '{run.id}'")
    assert table.column("n").to_pylist() == [3]


# --------------------------------------------------------------------------- values


def test_values_steps_and_timestamps_round_trip(p) -> None:
    run = p.tracking.start_run("round trip", flush_every=3)
    moment = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    values = [0.1, -2.5e-300, 1.7976931348623157e308, 3.141592653589793, 0.0, -0.0, 7]
    for i, value in enumerate(values):
        run.log_metric("x", value, step=10 * i, timestamp=moment + timedelta(microseconds=i))
    run.log_metric("naive", 1.0, step=2**31 - 1, timestamp=datetime(2020, 1, 1, 12, 0, 0, 1))  # naive = UTC
    run.log_metric("epoch", 2.0, step=-3, timestamp=1_700_000_000.25)
    other_zone = datetime(2021, 6, 1, 12, 0, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=5, minutes=30)))
    run.log_metric("zoned", 3.0, timestamp=other_zone)
    run.end()
    history = p.tracking.metric_history(run.id, "x")
    assert [pt.step for pt in history] == [0, 10, 20, 30, 40, 50, 60]
    assert [pt.value for pt in history] == [float(v) for v in values]
    assert [pt.timestamp for pt in history] == [moment + timedelta(microseconds=i) for i in range(len(values))]
    assert all(pt.timestamp.tzinfo is not None for pt in history)
    (naive,) = p.tracking.metric_history(run.id, "naive")
    assert (naive.step, naive.timestamp) == (2**31 - 1, datetime(2020, 1, 1, 12, 0, 0, 1, tzinfo=UTC))
    (epoch,) = p.tracking.metric_history(run.id, "epoch")
    assert (epoch.step, epoch.timestamp) == (-3, datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC))
    (zoned,) = p.tracking.metric_history(run.id, "zoned")
    assert zoned.timestamp == datetime(2021, 6, 1, 12, 0, tzinfo=UTC)


def test_default_steps_count_up_per_key_and_timestamps_default_to_now(p) -> None:
    before = datetime.now(UTC)
    run = p.tracking.start_run("steps")
    for value in (3.0, 2.0, 1.0):
        run.log_metric("loss", value)
    run.log_metric("loss", 0.5, step=10)
    run.log_metric("loss", 0.4)  # after an explicit step: the next one
    run.log_metrics({"loss": 0.3, "acc": 0.9})
    run.end()
    after = datetime.now(UTC)
    loss = p.tracking.metric_history(run.id, "loss")
    assert [(pt.step, pt.value) for pt in loss] == [(0, 3.0), (1, 2.0), (2, 1.0), (10, 0.5), (11, 0.4), (12, 0.3)]
    assert [(pt.step, pt.value) for pt in p.tracking.metric_history(run.id, "acc")] == [(0, 0.9)]
    assert all(before <= pt.timestamp <= after for pt in loss)
    assert p.tracking.get_run(run.id).metrics == {"loss": 0.3, "acc": 0.9}  # latest = highest step


def test_ten_thousand_points_in_one_run_arrive_complete(p) -> None:
    run = p.tracking.start_run("big")
    for i in range(100):
        run.log_param(f"param_{i}", i * 3)
    for i in range(10_000):
        run.log_metric(f"metric_{i % 10}", i * 0.25, step=i // 10)
    record = run.end()
    assert run.flushes >= 10
    assert stored_points(p, run.id) == 10_000
    assert stored_params(p, run.id) == {f"param_{i}": str(i * 3) for i in range(100)}
    table = p.tracking.sql(f"select key, count(*) as n, sum(value) as total, min(step) as lo, max(step) as hi "
                           f"from metrics where run_id = '{run.id}' group by key order by key")
    assert table.column("key").to_pylist() == [f"metric_{k}" for k in range(10)]
    assert set(table.column("n").to_pylist()) == {1000}
    assert set(table.column("lo").to_pylist()) == {0} and set(table.column("hi").to_pylist()) == {999}
    assert math.isclose(sum(table.column("total").to_pylist()), sum(i * 0.25 for i in range(10_000)))
    assert record.metrics["metric_9"] == 9_999 * 0.25


def test_log_batch_writes_at_once(p) -> None:
    run = p.tracking.start_run("batch", flush_every=1_000_000, flush_interval=3600)
    run.log_metric("buffered", 1.0)
    when = datetime(2025, 1, 1, tzinfo=UTC)
    written = run.log_batch(metrics=[("m", float(i), i, when) for i in range(5000)] + [("short", 2.0),
                                                                                       ("three", 3.0, 7)],
                            params={"lr": 0.1, "depth": 6})
    assert written == 5000 + 2 + 1 + 2  # the buffered point goes with the batch
    assert run.pending == 0 and stored_points(p, run.id) == 5003
    assert stored_params(p, run.id) == {"lr": "0.1", "depth": "6"}
    assert p.tracking.metric_history(run.id, "three")[0].step == 7
    assert p.tracking.metric_history(run.id, "m")[-1].timestamp == when


def test_last_write_wins_for_a_key_and_step(p) -> None:
    run = p.tracking.start_run("overwrites", flush_every=1_000_000, flush_interval=3600)
    run.log_metric("m", 1.0, step=0)
    run.log_metric("m", 2.0, step=0)  # same batch
    run.flush()
    run.log_metric("m", 3.0, step=0)  # a later batch
    run.log_metric("m", 10.0, step=1)
    run.flush()
    run.log_batch(metrics=[("m", 4.0, 1), ("m", 5.0, 1)])  # within one batch call
    run.log_param("p", "first")
    run.flush()
    run.log_params({"p": "second"})
    run.end()
    assert [(pt.step, pt.value) for pt in p.tracking.metric_history(run.id, "m")] == [(0, 3.0), (1, 5.0)]
    assert p.tracking.get_run(run.id).params == {"p": "second"}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "nan", "abc", None])
def test_nan_inf_and_non_numbers_are_refused_naming_the_metric(p, bad) -> None:
    run = p.tracking.start_run("bad values")
    with pytest.raises(InvalidInput, match="val_loss") as info:
        run.log_metric("val_loss", bad)
    assert info.value.field == "metrics.val_loss"
    with pytest.raises(InvalidInput, match="val_loss"):
        run.log_metrics({"ok": 1.0, "val_loss": bad})
    with pytest.raises(InvalidInput, match="val_loss"):
        run.log_batch(metrics=[("ok", 1.0), ("val_loss", bad)])
    assert run.pending == 0  # nothing of a refused call was kept
    run.end()
    assert stored_points(p, run.id) == 0


def test_bad_keys_steps_and_timestamps_are_refused(p) -> None:
    run = p.tracking.start_run("bad input")
    for call in (lambda: run.log_metric("", 1.0), lambda: run.log_metric(3, 1.0),  # type: ignore[arg-type]
                 lambda: run.log_metric("m", 1.0, step=1.5), lambda: run.log_metric("m", 1.0, step=True),
                 lambda: run.log_metric("m", 1.0, step=2**31), lambda: run.log_metric("m", 1.0, timestamp="now"),
                 lambda: run.log_batch(metrics=[("m",)]), lambda: run.log_param("", 1),
                 lambda: run.log_metrics({"a": 1.0, "b": 2.0}, step="x")):  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            call()
    assert run.pending == 0
    with pytest.raises(InvalidInput):
        p.tracking.start_run("x", flush_every=0)
    with pytest.raises(InvalidInput):
        p.tracking.start_run("   ")
    with pytest.raises(InvalidInput):
        p.tracking.start_run("x", experiment="")


def test_an_ended_run_takes_no_more_records(p) -> None:
    run = p.tracking.start_run("done")
    run.end()
    for call in (lambda: run.log_metric("m", 1.0), lambda: run.log_params({"a": 1}),
                 lambda: run.log_batch(metrics=[("m", 1.0)]), lambda: run.log_artifact("x", b"x"), run.end):
        with pytest.raises(Conflict, match="ended"):
            call()


def test_threads_logging_into_one_run_lose_nothing(p) -> None:
    run = p.tracking.start_run("threads", flush_every=250)

    def work(worker: int) -> None:
        for i in range(2000):
            run.log_metric(f"w{worker}", float(i), step=i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.end()
    assert stored_points(p, run.id) == 8000
    assert all(len(p.tracking.metric_history(run.id, f"w{w}")) == 2000 for w in range(4))


def test_the_core_multi_row_path_upserts_too(p) -> None:
    """The path PostgreSQL takes (Core INSERT ... ON CONFLICT in chunks), run here on DuckDB."""
    run = p.tracking.start_run("core path")
    store = p.tracking._store
    micros = 1_700_000_000_000_000
    with store.session() as session:
        n = writes.write_metrics(session, duckdb=False, run_id=run.id,
                                 points={("m", i): (float(i), micros + i) for i in range(4500)})
        writes.write_params(session, duckdb=False, run_id=run.id, params={"a": "1"})
    with store.session() as session:
        writes.write_metrics(session, duckdb=False, run_id=run.id, points={("m", 0): (-1.0, micros)})
        writes.write_params(session, duckdb=False, run_id=run.id, params={"a": "2", "b": "3"})
    assert n == 4500
    history = p.tracking.metric_history(run.id, "m")
    assert len(history) == 4500 and history[0].value == -1.0 and history[-1].value == 4499.0
    assert history[1].timestamp == datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC)
    assert stored_params(p, run.id) == {"a": "2", "b": "3"}


# --------------------------------------------------------------------------- crashes and exits


def _child(home: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent("""
        import os, sys
        from mlops_lite import connect
        p = connect(home=sys.argv[1])
    """) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", script, str(home)], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env)


def test_a_crash_after_flush_loses_nothing_flushed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _child(home, """
        run = p.tracking.start_run("crashes", flush_every=1_000_000, flush_interval=3600)
        run.log_params({"lr": 0.1})
        for i in range(500):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        run.flush()
        for i in range(500, 800):
            run.log_metric("loss", 1.0 / (i + 1), step=i)   # buffered, never flushed
        print(run.id, flush=True)
        os._exit(1)
    """)
    assert done.returncode == 1, done.stderr
    run_id = done.stdout.strip()
    p = connect(home=home)
    try:
        crashed = p.tracking.get_run(run_id)
        assert crashed.status == "running"  # visibly: nobody ended it
        assert crashed.params == {"lr": "0.1"}
        history = p.tracking.metric_history(run_id, "loss")
        assert [pt.step for pt in history] == list(range(500))
        assert [pt.value for pt in history] == [1.0 / (i + 1) for i in range(500)]
        live = p.tracking.start_run("still open here")
        assert p.tracking.mark_crashed() == [run_id]  # the open run of this process is left alone
        after = p.tracking.get_run(run_id)
        assert after.status == "failed" and after.ended_at is not None
        assert p.tracking.get_run(live.id).status == "running"
        assert p.tracking.mark_crashed() == []  # once
        audited = p.tracking.sql("select object from audit_events where action = 'run.crashed'")
        assert audited.column(0).to_pylist() == [f"run:{run_id}"]
        live.end()
    finally:
        p.close()


def test_a_clean_exit_writes_what_open_runs_buffered(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _child(home, """
        run = p.tracking.start_run("left open", flush_every=1_000_000, flush_interval=3600)
        for i in range(250):
            run.log_metric("m", float(i))
        run.log_param("k", "v")
        print(run.id, flush=True)
        sys.exit(0)   # no end(), no flush(), no close(): the atexit hook writes the buffer
    """)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    p = connect(home=home)
    try:
        record = p.tracking.get_run(run_id)
        assert record.params == {"k": "v"} and record.metrics == {"m": 249.0}
        assert len(p.tracking.metric_history(run_id, "m")) == 250
        assert record.status == "running"  # left open: mark_crashed() ends it once its process is gone
        assert p.tracking.mark_crashed(run_ids=[run_id]) == [run_id]
    finally:
        p.close()


def test_mark_crashed_leaves_live_processes_and_other_hosts_alone(p) -> None:
    run = p.tracking.start_run("elsewhere")
    p.tracking._forget(run.id)  # as if another process had started it
    with p.tracking._store.session() as session:
        row = session.get(Run, run.id)
        row.pid, row.host = os.getppid(), row.host  # a live process on this host
        session.add(row)
    assert p.tracking.mark_crashed() == []
    with p.tracking._store.session() as session:
        row = session.get(Run, run.id)
        row.host, row.heartbeat_at = "another-host", datetime.now(UTC) - timedelta(hours=2)
        session.add(row)
    assert p.tracking.mark_crashed() == []  # another host: only when stale_after says so
    assert p.tracking.mark_crashed(stale_after=3 * 3600) == []
    assert p.tracking.mark_crashed(stale_after=3600) == [run.id]
    assert p.tracking.get_run(run.id).status == "failed"


# --------------------------------------------------------------------------- experiments and provenance


def test_experiments(p) -> None:
    made = p.tracking.create_experiment("churn", description="churn models", tags={"team": "risk"})
    assert (made.name, made.description, made.tags, made.runs) == ("churn", "churn models", {"team": "risk"}, 0)
    again = p.tracking.create_experiment("churn", description="ignored")
    assert again.description == "churn models" and again.created_at == made.created_at
    with pytest.raises(Conflict, match="churn"):
        p.tracking.create_experiment("churn", exist_ok=False)
    with pytest.raises(InvalidInput):
        p.tracking.create_experiment("bad\nname")
    p.tracking.start_run("a", experiment="churn").end()
    p.tracking.start_run("b", experiment="fraud").end()  # created on the fly
    p.tracking.start_run("c").end()
    listed = {e.name: e for e in p.tracking.experiments()}
    assert set(listed) == {"churn", "default", "fraud"}
    assert (listed["churn"].runs, listed["fraud"].runs, listed["default"].runs) == (1, 1, 1)
    assert [r.name for r in p.tracking.list_runs(experiment="fraud")] == ["b"]
    with pytest.raises(NotFound, match="nope"):
        p.tracking.get_experiment("nope")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_code_version_of_a_git_checkout(p, tmp_path: Path) -> None:
    repo = tmp_path / "code"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-qm", "v1")
    head = _git(repo, "rev-parse", "HEAD")
    clean = p.tracking.start_run("clean", code_dir=repo).end()
    assert (clean.git_commit, clean.git_dirty) == (head, False)
    (repo / "notes.txt").write_text("untracked files do not count\n")
    assert p.tracking.start_run("untracked", code_dir=repo).end().git_dirty is False
    (repo / "train.py").write_text("print('v2')\n")
    dirty = p.tracking.start_run("dirty", code_dir=repo).end()
    assert (dirty.git_commit, dirty.git_dirty) == (head, True)
    plain = tmp_path / "plain"
    plain.mkdir()
    outside = p.tracking.start_run("not a checkout", code_dir=plain).end()
    assert (outside.git_commit, outside.git_dirty) == (None, None)
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, "init", "-q")
    assert p.tracking.start_run("no commit yet", code_dir=empty).end().git_commit is None
    assert p.tracking.sql(f"select git_commit from runs where id = '{dirty.id}'").column(0).to_pylist() == [head]


def test_environment_is_recorded(p) -> None:
    record = p.tracking.start_run("env").end()
    env = record.environment
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["platform"]
    assert set(env["packages"]) == {"mlops-lite", "scikit-learn", "onnxruntime", "skl2onnx", "numpy", "pyarrow",
                                    "duckdb"}
    import duckdb
    import numpy

    assert env["packages"]["numpy"] == numpy.__version__ and env["packages"]["duckdb"] == duckdb.__version__
    assert p.tracking.list_runs()[0].environment == env


def test_data_commits_tags_and_times_are_recorded(p) -> None:
    run = p.tracking.start_run("lineage", data_commits=("a" * 64,), tags={"owner": "ana"})
    run.log_artifact("model.bin", b"\x00\x01")
    record = run.end()
    assert record.data_commits == ("a" * 64,) and record.tags == {"owner": "ana"}
    assert record.ended_at is not None and record.ended_at >= record.started_at
    assert p.tracking.read_artifact(run.id, "model.bin") == b"\x00\x01"


# --------------------------------------------------------------------------- compare


def test_compare_runs_side_by_side(p) -> None:
    a = p.tracking.start_run("a")
    a.log_params({"lr": 0.1, "depth": 6, "seed": 1})
    a.log_metric("auc", 0.80, step=0)
    a.log_metric("auc", 0.85, step=1)
    a.log_metric("loss", 0.3)
    a.end()
    b = p.tracking.start_run("b")
    b.log_params({"lr": 0.2, "depth": 6})
    b.log_metric("auc", 0.85)
    b.log_metric("loss", 0.2)
    b.log_metric("f1", 0.5)
    b.end()
    comparison = p.tracking.compare([a.id, b.id, a.id])
    assert comparison.run_ids == (a.id, b.id)
    assert comparison.params["lr"] == {a.id: "0.1", b.id: "0.2"}
    assert comparison.params["seed"] == {a.id: "1", b.id: None}
    assert comparison.metrics["auc"] == {a.id: 0.85, b.id: 0.85}  # a's latest, at step 1
    assert comparison.differing_params == ("lr", "seed") and comparison.same_params == ("depth",)
    assert comparison.differing_metrics == ("f1", "loss")
    assert comparison.rows(only_differences=True) == [
        ("param", "lr", ("0.1", "0.2"), True), ("param", "seed", ("1", None), True),
        ("metric", "f1", (None, 0.5), True), ("metric", "loss", (0.3, 0.2), True)]
    with pytest.raises(NotFound, match="no-such-run"):
        p.tracking.compare([a.id, "no-such-run"])
    with pytest.raises(InvalidInput):
        p.tracking.compare([])
    with pytest.raises(NotFound, match="nothing"):
        p.tracking.metric_history(a.id, "nothing")


# --------------------------------------------------------------------------- read-only SQL


def test_sql_select_joining_runs_and_metrics(p) -> None:
    for name, auc in (("first", 0.7), ("second", 0.9)):
        run = p.tracking.start_run(name, experiment="sql")
        run.log_metric("auc", auc - 0.1)
        run.log_metric("auc", auc)
        run.log_param("algo", name)
        run.end()
    table = p.tracking.sql("""
        WITH best AS (SELECT run_id, max(value) AS auc FROM metrics WHERE key = 'auc' GROUP BY run_id)
        SELECT r.name, b.auc, pa.value AS algo, count(m.step) AS points  -- a comment; DROP TABLE runs
        FROM runs r JOIN best b ON b.run_id = r.id JOIN metrics m ON m.run_id = r.id
        JOIN params pa ON pa.run_id = r.id AND pa.key = 'algo'
        WHERE r.experiment = 'sql' AND r.name <> 'x;y'
        GROUP BY r.name, b.auc, pa.value ORDER BY b.auc DESC;
    """)
    assert table.column_names == ["name", "auc", "algo", "points"]
    assert table.to_pylist() == [{"name": "second", "auc": 0.9, "algo": "second", "points": 2},
                                 {"name": "first", "auc": 0.7, "algo": "first", "points": 2}]
    assert p.tracking.sql("select table_name from information_schema.tables where table_name = 'runs'").num_rows == 1
    assert p.tracking.sql("select * from generate_series(1, 10)", max_rows=3).num_rows == 3


DUCKDB_PARSE_TREE_RULES = ("metadata_tables_only", "no_table_functions")


@pytest.mark.parametrize(("query", "rule"), [
    ("DELETE FROM runs", "select_only"),
    ("UPDATE runs SET status = 'finished'", "select_only"),
    ("INSERT INTO experiments VALUES ('x')", "select_only"),
    ("DROP TABLE runs", "select_only"),
    ("CREATE TABLE t AS SELECT 1", "select_only"),
    ("ALTER TABLE runs ADD COLUMN x INT", "select_only"),
    ("ATTACH 'other.duckdb' AS other", "select_only"),
    ("COPY runs TO 'runs.csv'", "select_only"),
    ("PRAGMA database_list", "select_only"),
    ("SELECT 1; DELETE FROM runs", "single_statement"),
    ("SELECT 1; SELECT 2", "single_statement"),
    ("SELECT 1;;'x'", "single_statement"),
    ("WITH gone AS (DELETE FROM runs RETURNING *) SELECT * FROM gone", "forbidden_keyword"),
    ("SELECT * INTO backup FROM runs", "forbidden_keyword"),
    ("SELECT * FROM runs WHERE id IN (SELECT 1 FROM (COPY runs TO 'x'))", "forbidden_keyword"),
    ("SELECT * FROM read_csv('/etc/passwd')", "forbidden_function"),
    ("SELECT getenv('HOME')", "forbidden_function"),
    ("SELECT nextval('seq')", "forbidden_function"),
    ("SELECT * FROM '/etc/passwd'", "metadata_tables_only"),
    ('SELECT * FROM "data.parquet"', "metadata_tables_only"),
    ("SELECT * FROM some_python_variable", "metadata_tables_only"),
    ("SELECT * FROM other.main.runs", "metadata_tables_only"),
    ("SELECT * FROM duckdb_settings()", "no_table_functions"),
    ("", "empty"),
    ("  -- only a comment", "empty"),
    ("SELECT 'unclosed", "syntax"),
])
def test_sql_refuses_anything_but_one_select(p, query: str, rule: str) -> None:
    if rule in DUCKDB_PARSE_TREE_RULES and not p.tracking._store.is_duckdb:
        pytest.skip("the parse-tree fence is DuckDB's (PostgreSQL has no file scans or Python replacement scans)")
    p.tracking.start_run("kept").end()
    with pytest.raises(InvalidInput) as info:
        p.tracking.sql(query)
    assert info.value.details["rule"] == rule, info.value.message
    assert rule in info.value.message
    assert p.tracking.count() == 1 and p.tracking.sql("select count(*) as n from runs").column(0).to_pylist() == [1]


def test_sql_quoted_text_is_not_taken_for_code(p) -> None:
    table = p.tracking.sql("""select ';' as semi, 'DROP TABLE runs' as "delete", /* ATTACH */ 1 as one;""")
    assert table.to_pylist() == [{"semi": ";", "delete": "DROP TABLE runs", "one": 1}]


def test_sql_runs_in_a_read_only_transaction(p, monkeypatch) -> None:
    """With the text and parse-tree fences taken away, the transaction still refuses a write."""
    p.tracking.start_run("kept").end()
    monkeypatch.setattr(tracking_sql, "check_select", lambda query: query)
    monkeypatch.setattr(tracking_sql, "_check_tree", lambda cursor, statement: None)
    for write in ("DELETE FROM runs", "UPDATE runs SET status = 'failed'", "DROP TABLE metrics"):
        with pytest.raises(InvalidInput) as info:
            p.tracking.sql(write)
        assert info.value.details["rule"] == "read_only", info.value.message
    assert p.tracking.count() == 1 and p.tracking.list_runs()[0].status == "finished"


def test_sql_time_limit_and_query_errors(p) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInput) as info:
        p.tracking.sql("select count(*) from generate_series(1, 1000000) a, generate_series(1, 1000000) b",
                       timeout_s=0.3)
    assert info.value.details["rule"] == "time_limit" and time.monotonic() - started < 10
    with pytest.raises(InvalidInput) as info:
        p.tracking.sql("select no_such_column from runs")
    assert info.value.details["rule"] == "query_error"
    assert p.tracking.sql("select 1 as one").to_pylist() == [{"one": 1}]  # the store still answers


def test_existing_api_still_works(p) -> None:
    """What training and the registry call: log_params, log_metrics with a step, artifacts, end."""
    with p.tracking.start_run("train-x", experiment="default", data_commits=("b" * 64,), tags={"t": 1}) as run:
        run.log_params({"C": 1.0})
        run.log_metrics({"roc_auc": 0.9, "accuracy": 0.8})
        run.log_metrics({"roc_auc": 0.95}, step=0)  # the same step again: last write wins
        run.log_artifact("model.onnx", b"onnx")
    record = p.tracking.get_run(run.id)
    assert record.status == "finished" and record.metrics == {"roc_auc": 0.95, "accuracy": 0.8}
    assert record.params == {"C": "1.0"} and record.artifacts["model.onnx"]
    assert [r.id for r in p.tracking.list_runs()] == [run.id] and p.tracking.count() == 1
