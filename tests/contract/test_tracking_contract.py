"""The tracking facet's contract, asked of a local Platform and a RemotePlatform alike
(fixtures in conftest.py): experiments, a run recorded through its handle (buffered
params and metrics written in batches, artifacts, the end of a ``with`` block), the reads
over runs, the audit events, and bad input refused with the same field and words."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops_lite import Conflict, InvalidInput, NotFound, PermissionDenied
from mlops_lite.client import RemotePlatform
from mlops_lite.records import RunRecord
from mlops_lite.tracking.provenance import HOST, Provenance, collect
from mlops_lite.tracking.records import ExperimentRecord, MetricPoint, RunComparison
from tests.contract.conftest import actor_of as _actor
from tests.contract.conftest import refused as _refused

# --- experiments --------------------------------------------------------------------------------


def test_experiments_are_created_listed_and_read(api: Any) -> None:
    made = api.tracking.create_experiment("churn/q3", description="quarterly churn", tags={"team": "risk"})
    assert type(made) is ExperimentRecord
    assert (made.name, made.description, made.tags, made.created_by, made.runs) == (
        "churn/q3", "quarterly churn", {"team": "risk"}, _actor(api), 0)
    assert api.tracking.create_experiment("churn/q3", description="ignored") == made  # exist_ok: as it is
    refused = _refused(Conflict, lambda: api.tracking.create_experiment("churn/q3", exist_ok=False))
    assert refused.message == "experiment 'churn/q3' already exists"
    with api.tracking.start_run("first", experiment="churn/q3"):
        pass
    with api.tracking.start_run("made-on-the-way", experiment="adhoc"):
        pass
    listed = api.tracking.experiments()
    assert all(type(e) is ExperimentRecord for e in listed)
    assert [(e.name, e.runs) for e in listed] == [("adhoc", 1), ("churn/q3", 1)]
    assert api.tracking.get_experiment("churn/q3") == listed[1]
    assert _refused(NotFound, lambda: api.tracking.get_experiment("nope")).message == \
        "experiment 'nope' does not exist"
    audit = api.audit.about("experiment:churn/q3")
    assert [(e.action, e.actor, e.after) for e in audit] == [
        ("experiment.create", _actor(api), {"description": "quarterly churn", "tags": {"team": "risk"}})]


# --- a run, through its handle ------------------------------------------------------------------


def test_a_run_in_a_with_block_records_params_metrics_and_artifacts(api: Any) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with api.tracking.start_run("train", experiment="e", data_commits=("c" * 64,), tags={"stage": "dev"}) as run:
        assert run.id and run.pending == 0
        run.log_param("lr", 0.1)
        run.log_params({"depth": 4, "algorithm": "rf"})
        run.log_metric("train/loss", 0.9)
        run.log_metric("train/loss", 0.5)
        run.log_metric("train/loss", 0.25, step=10, timestamp=at)
        run.log_metrics({"auc": 0.81, "acc": 0.7}, step=3)
        digest = run.log_artifact("plots/roc curve.txt", b"points")
        assert digest == hashlib.sha256(b"points").hexdigest()
    record = api.tracking.get_run(run.id)
    assert type(record) is RunRecord
    assert (record.name, record.experiment, record.status) == ("train", "e", "finished")
    assert record.ended_at is not None and record.ended_at >= record.started_at
    assert record.data_commits == ("c" * 64,) and record.tags == {"stage": "dev"}
    assert record.params == {"lr": "0.1", "depth": "4", "algorithm": "rf"}
    assert record.metrics == {"acc": 0.7, "auc": 0.81, "train/loss": 0.25}
    assert record.artifacts == {"plots/roc curve.txt": digest}
    assert record.environment["packages"]["mlops-lite"]
    assert api.tracking.read_artifact(run.id, "plots/roc curve.txt") == b"points"
    history = api.tracking.metric_history(run.id, "train/loss")
    assert all(type(p) is MetricPoint for p in history)
    assert [(p.step, p.value) for p in history] == [(0, 0.9), (1, 0.5), (10, 0.25)]
    assert history[-1].timestamp == at
    assert [(e.action, e.actor) for e in api.audit.about(f"run:{run.id}")] == [
        ("run.start", _actor(api)), ("run.end", _actor(api))]
    assert api.audit.about(f"run:{run.id}")[-1].after == {"status": "finished"}


def test_points_are_buffered_and_written_in_batches(api: Any) -> None:
    run = api.tracking.start_run("batches", flush_every=3, flush_interval=3600)
    run.log_metric("loss", 1.0)
    run.log_param("seed", 7)
    assert (run.pending, run.flushes) == (2, 0)
    run.log_metric("loss", 0.5)  # the third point: one batch
    assert (run.pending, run.flushes) == (0, 1)
    run.log_metric("loss", 0.4)
    assert api.tracking.metric_history(run.id, "loss")[-1].value == 0.4  # a read here sees its own points
    assert run.flush() == 0 and run.pending == 0
    assert run.log_batch([("loss", 0.3), ("loss", 0.2, 7), ("acc", 0.9, None, 1_700_000_000.0)],
                         {"seed": 8}) == 4
    assert [(p.step, p.value) for p in api.tracking.metric_history(run.id, "loss")] == [
        (0, 1.0), (1, 0.5), (2, 0.4), (3, 0.3), (7, 0.2)]
    assert api.tracking.metric_history(run.id, "acc")[0].timestamp == datetime.fromtimestamp(1_700_000_000, UTC)
    run.log_metric("loss", 0.1)
    ended = run.end()
    assert ended == api.tracking.get_run(run.id)
    assert ended.status == "finished" and ended.params == {"seed": "8"} and ended.metrics["loss"] == 0.1
    assert api.tracking.get_run(run.id).metrics == {"acc": 0.9, "loss": 0.1}


def test_a_run_left_open_is_written_when_the_platform_reads_or_closes(api: Any) -> None:
    run = api.tracking.start_run("open", flush_interval=3600)
    run.log_metric("loss", 0.3)
    assert api.tracking.get_run(run.id).metrics == {"loss": 0.3} and run.pending == 0
    run.log_metric("loss", 0.2)
    assert api.tracking.sql(f"select value from metrics where run_id = '{run.id}' order by step"
                            ).column("value").to_pylist() == [0.3, 0.2]
    assert api.tracking.get_run(run.id).status == "running"
    run.end("failed")


def test_an_exception_in_the_with_block_ends_the_run_failed(api: Any) -> None:
    with pytest.raises(RuntimeError, match="diverged"), api.tracking.start_run("boom", flush_interval=3600) as run:
        run.log_metric("loss", 4.0)
        raise RuntimeError("diverged")
    record = api.tracking.get_run(run.id)
    assert record.status == "failed" and record.metrics == {"loss": 4.0}  # the buffer was written first
    assert api.audit.about(f"run:{run.id}")[-1].after == {"status": "failed"}
    words = f"run {run.id} has ended (failed); it takes no more records"
    assert _refused(Conflict, lambda: run.log_metric("loss", 1.0)).message == words
    assert _refused(Conflict, lambda: run.log_artifact("late", b"x")).message == words
    assert _refused(Conflict, run.end).message == words


# --- reads over runs ----------------------------------------------------------------------------


def test_runs_are_listed_counted_compared_and_queried(api: Any) -> None:
    ids = []
    for name, experiment, lr, auc in (("a", "e1", 0.1, 0.8), ("b", "e1", 0.2, 0.8), ("c", "e2", 0.1, 0.9)):
        with api.tracking.start_run(name, experiment=experiment) as run:
            run.log_params({"lr": lr, "seed": 1})
            run.log_metrics({"auc": auc})
        ids.append(run.id)
    assert api.tracking.count() == 3
    listed = api.tracking.list_runs()
    assert [r.name for r in listed] == ["c", "b", "a"] and all(type(r) is RunRecord for r in listed)
    assert all(r.params == {} for r in listed) and listed[0].metrics == {"auc": 0.9}
    assert [r.name for r in api.tracking.list_runs(limit=1)] == ["c"]
    assert api.tracking.list_runs(limit=0) == []
    assert [r.name for r in api.tracking.list_runs(experiment="e1")] == ["b", "a"]
    assert api.tracking.list_runs(experiment="nothing") == []
    comparison = api.tracking.compare(ids)
    assert type(comparison) is RunComparison and comparison.run_ids == tuple(ids)
    assert comparison.runs == tuple(api.tracking.get_run(i) for i in ids)
    assert comparison.params == {"lr": {ids[0]: "0.1", ids[1]: "0.2", ids[2]: "0.1"},
                                 "seed": {i: "1" for i in ids}}
    assert (comparison.differing_params, comparison.differing_metrics) == (("lr",), ("auc",))
    table = api.tracking.sql("select name, experiment, started_at from runs order by started_at")
    assert table.column_names == ["name", "experiment", "started_at"]
    assert table.column("name").to_pylist() == ["a", "b", "c"]
    assert str(table.schema.field("started_at").type).startswith("timestamp")
    assert api.tracking.sql("select name from runs order by name", max_rows=2).column("name").to_pylist() == ["a", "b"]


def test_what_is_not_there_is_not_found(api: Any) -> None:
    with api.tracking.start_run("r") as run:
        run.log_metric("loss", 1.0)
        run.log_artifact("model.bin", b"m")
    assert _refused(NotFound, lambda: api.tracking.get_run("no-such-run")).message == \
        "run 'no-such-run' does not exist"
    assert _refused(NotFound, lambda: api.tracking.metric_history(run.id, "auc")).message == \
        f"run {run.id} has no metric 'auc'; it has ['loss']"
    assert _refused(NotFound, lambda: api.tracking.metric_history("no-such-run", "auc")).message == \
        "run 'no-such-run' does not exist"
    assert _refused(NotFound, lambda: api.tracking.read_artifact(run.id, "plot.png")).message == \
        f"run {run.id} has no artifact 'plot.png'; it has ['model.bin']"
    assert isinstance(_refused(NotFound, lambda: api.tracking.compare([run.id, "no-such-run"])), NotFound)


# --- bad input ----------------------------------------------------------------------------------

NAN = math.nan
# (id, what the call does to an open run ``r`` or to the facet ``t``, the field, its message or None)
BAD_RUN_INPUT: list[tuple[str, Callable[[Any, Any], Any], str, str | None]] = [
    ("empty-metric-key", lambda t, r: r.log_metric("", 1.0), "metrics", "bad metric key ''"),
    ("nan-metric", lambda t, r: r.log_metric("loss", NAN), "metrics.loss",
     "metric 'loss' is nan (NaN and infinities are refused)"),
    ("infinite-metric", lambda t, r: r.log_metrics({"loss": math.inf}), "metrics.loss",
     "metric 'loss' is inf (NaN and infinities are refused)"),
    ("text-metric", lambda t, r: r.log_metric("loss", "high"), "metrics.loss",
     "metric 'loss' is not a number: 'high'"),
    ("huge-step", lambda t, r: r.log_metric("loss", 1.0, step=2**40), "metrics.loss.step",
     f"metric 'loss': step {2**40} is out of range"),
    ("fractional-step", lambda t, r: r.log_metric("loss", 1.0, step=1.5), "metrics.loss.step",
     "metric 'loss': bad step 1.5"),
    ("bool-step", lambda t, r: r.log_metrics({"loss": 1.0}, step=True), "metrics.loss.step",
     "metric 'loss': bad step True"),
    ("bad-timestamp", lambda t, r: r.log_metric("loss", 1.0, timestamp="yesterday"), "metrics.loss.timestamp",
     "metric 'loss': bad timestamp 'yesterday'"),
    ("empty-param-key", lambda t, r: r.log_params({"": 1}), "params", "bad param key ''"),
    ("short-batch-item", lambda t, r: r.log_batch([("loss", 1.0), ("auc",)]), "metrics[1]",
     "metric #1 is ('auc',)"),
    ("nan-in-a-batch", lambda t, r: r.log_batch([("loss", 1.0), ("auc", NAN)], {"seed": 1}), "metrics.auc",
     "metric 'auc' is nan (NaN and infinities are refused)"),
    ("unknown-status", lambda t, r: r.end("done"), "status", "bad run status 'done'"),
    ("no-run-name", lambda t, r: t.start_run(""), "name", "a run needs a name"),
    ("no-experiment-name", lambda t, r: t.start_run("x", experiment=""), "experiment", "bad experiment name ''"),
    ("zero-flush-every", lambda t, r: t.start_run("x", flush_every=0), "flush_every", "bad flush_every 0"),
    ("negative-flush-interval", lambda t, r: t.start_run("x", flush_interval=-1), "flush_interval",
     "bad flush_interval -1"),
    ("long-experiment-name", lambda t, r: t.create_experiment("x" * 251), "experiment", None),
    ("compare-nothing", lambda t, r: t.compare([]), "run_ids", "compare needs at least one run id"),
    ("sql-that-writes", lambda t, r: t.sql("delete from metrics"), "query", None),
    ("sql-negative-rows", lambda t, r: t.sql("select 1", max_rows=-1), "max_rows", None),
]


@pytest.mark.parametrize(("call", "field", "message"), [case[1:] for case in BAD_RUN_INPUT],
                         ids=[case[0] for case in BAD_RUN_INPUT])
def test_bad_input_names_the_field_and_records_nothing(api: Any, call: Callable[[Any, Any], Any], field: str,
                                                       message: str | None) -> None:
    run = api.tracking.start_run("victim", flush_interval=3600)
    before = (api.tracking.count(), api.tracking.experiments(), api.audit.count())
    refused = _refused(InvalidInput, lambda: call(api.tracking, run))
    assert refused.field == field
    if message is not None:
        assert refused.message == message
    assert refused.expected
    assert (api.tracking.count(), api.tracking.experiments(), api.audit.count()) == before
    assert run.pending == 0
    record = run.end()
    assert (record.params, record.metrics, record.status) == ({}, {}, "finished")


def test_timestamps_and_steps_keep_their_meaning(api: Any) -> None:
    naive = datetime(2026, 3, 1, 12, 0, 0, 5)
    with api.tracking.start_run("times") as run:
        run.log_metric("a", 1.0, step=-5, timestamp=naive)
        run.log_metric("a", 2.0)  # no step: the next after the highest logged, and at least 0
        run.log_metric("a", 3.0, step=-5, timestamp=naive + timedelta(seconds=1))  # the last write wins
    history = api.tracking.metric_history(run.id, "a")
    assert [(p.step, p.value) for p in history] == [(-5, 3.0), (0, 2.0)]
    assert history[0].timestamp == naive.replace(tzinfo=UTC) + timedelta(seconds=1)  # naive is UTC


# --- provenance: a run records where its caller's code ran ---------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def _recorded(api: Any, run_id: str) -> Provenance:
    """The provenance stored for a run: its record's code version and environment, and the
    pid and host (not in the record) read with SQL."""
    record = api.tracking.get_run(run_id)
    (pid, host), = [tuple(row.values()) for row in api.tracking.sql(
        f"select pid, host from runs where id = '{run_id}'").to_pylist()]
    return Provenance(git_commit=record.git_commit, git_dirty=record.git_dirty, environment=record.environment,
                      pid=pid, host=host)


def test_a_run_records_its_callers_code_version_environment_pid_and_host(api: Any, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    _git(code, "init", "-q")
    (code / "train.py").write_text("print('v1')\n")
    _git(code, "add", "train.py")
    _git(code, "commit", "-qm", "v1")
    (code / "train.py").write_text("print('v2')\n")
    here = collect(code)  # what a local run in this process records
    assert (here.git_commit, here.git_dirty) == (_git(code, "rev-parse", "HEAD"), True)
    assert (here.pid, here.host) == (os.getpid(), HOST)
    with api.tracking.start_run("from-a-notebook", code_dir=code) as run:
        pass
    assert _recorded(api, run.id) == here
    assert _recorded(api, api.tracking.start_run("in-the-working-dir").end().id) == collect()


ELSEWHERE = Provenance(git_commit="ab" * 20, git_dirty=False, pid=4242, host="notebook-host.example",
                       environment={"python": "3.12.1", "implementation": "cpython", "platform": "Linux-x86_64",
                                    "packages": {"mlops-lite": "0.1.0", "numpy": None}})


def _start_with(api: Any, name: str, provenance: dict[str, Any]) -> str:
    """Start a run with a provenance another process computed: the local facet's keyword,
    or the body a client sends to the start route."""
    if api.remote:
        return str(api.request("POST", "/v1/runs/start", json={"name": name, "provenance": provenance})["id"])
    return str(api.tracking.start_run(name, provenance=Provenance(**provenance)).id)


BAD_PROVENANCE: list[tuple[str, dict[str, Any], str]] = [
    ("host-too-long", {"host": "h" * 256}, "provenance.host"),
    ("empty-host", {"host": ""}, "provenance.host"),
    ("host-with-a-newline", {"host": "a\nb"}, "provenance.host"),
    ("zero-pid", {"pid": 0}, "provenance.pid"),
    ("bool-pid", {"pid": True}, "provenance.pid"),
    ("huge-pid", {"pid": 2**40}, "provenance.pid"),
    ("text-pid", {"pid": "4242"}, "provenance.pid"),
    ("not-a-commit", {"git_commit": "HEAD"}, "provenance.git_commit"),
    ("upper-case-commit", {"git_commit": "AB" * 20}, "provenance.git_commit"),
    ("text-dirty", {"git_dirty": "yes"}, "provenance.git_dirty"),
    ("dirty-without-a-commit", {"git_commit": None, "git_dirty": True}, "provenance.git_dirty"),
    ("environment-without-packages", {"environment": {"python": "3", "implementation": "c", "platform": "p"}},
     "provenance.environment"),
    ("environment-not-an-object", {"environment": "linux"}, "provenance.environment"),
    ("platform-too-long", {"environment": {**ELSEWHERE.environment, "platform": "p" * 257}},
     "provenance.environment.platform"),
    ("too-many-packages", {"environment": {**ELSEWHERE.environment, "packages": {f"p{i}": "1" for i in range(65)}}},
     "provenance.environment.packages"),
    ("numeric-version", {"environment": {**ELSEWHERE.environment, "packages": {"numpy": 2}}},
     "provenance.environment.packages"),
]


def test_a_provenance_from_elsewhere_is_recorded_as_given(api: Any) -> None:
    run_id = _start_with(api, "sent", ELSEWHERE.to_json())
    assert _recorded(api, run_id) == ELSEWHERE
    start = next(e for e in api.audit.about(f"run:{run_id}") if e.action == "run.start")
    assert (start.after["git_commit"], start.after["git_dirty"]) == ("ab" * 20, False)


@pytest.mark.parametrize(("change", "field"), [case[1:] for case in BAD_PROVENANCE],
                         ids=[case[0] for case in BAD_PROVENANCE])
def test_a_bad_provenance_names_the_field_and_records_nothing(api: Any, change: dict[str, Any], field: str) -> None:
    before = (api.tracking.count(), api.tracking.experiments(), api.audit.count())
    refused = _refused(InvalidInput, lambda: _start_with(api, "bad", {**ELSEWHERE.to_json(), **change}))
    assert refused.field == field and refused.expected
    assert (api.tracking.count(), api.tracking.experiments(), api.audit.count()) == before


def test_a_provenance_and_a_code_dir_exclude_each_other_and_the_fields_are_exact(api: Any, tmp_path: Path) -> None:
    if api.remote:  # the client sends what it computed from code_dir; a body with an unknown field is refused
        for body in ({k: v for k, v in ELSEWHERE.to_json().items() if k != "pid"},
                     {**ELSEWHERE.to_json(), "user": "someone"}, ["not", "an", "object"]):
            refused = _refused(InvalidInput, lambda body=body: api.request(
                "POST", "/v1/runs/start", json={"name": "bad", "provenance": body}))
            assert refused.field == "provenance"
    else:
        refused = _refused(InvalidInput, lambda: api.tracking.start_run("both", code_dir=tmp_path,
                                                                         provenance=ELSEWHERE))
        assert refused.field == "code_dir"
    assert api.tracking.count() == 0


# --- roles (over HTTP: reads need viewer, writes operator) ------------------------------------


@pytest.mark.parametrize("api_kind", ["remote"], indirect=True)
def test_a_viewer_reads_runs_and_an_operator_records_them(api: Any) -> None:
    with api.tracking.start_run("by-admin") as run:
        run.log_metric("loss", 1.0)
        run.log_artifact("notes.txt", b"n")
    _, viewer_secret = api.tokens.create("viewer-bot", "viewer")
    _, operator_secret = api.tokens.create("operator-bot", "operator")
    with RemotePlatform(api.url, viewer_secret) as viewer:
        assert viewer.tracking.get_run(run.id) == api.tracking.get_run(run.id)
        assert viewer.tracking.list_runs() == api.tracking.list_runs() and viewer.tracking.count() == 1
        assert viewer.tracking.metric_history(run.id, "loss") == api.tracking.metric_history(run.id, "loss")
        assert viewer.tracking.read_artifact(run.id, "notes.txt") == b"n"
        assert viewer.tracking.experiments() == api.tracking.experiments()
        for write in (lambda: viewer.tracking.start_run("by-viewer"),
                      lambda: viewer.tracking.create_experiment("by-viewer")):
            denied = _refused(PermissionDenied, write)
            assert denied.details == {"needed": "operator", "role": "viewer"}
    with RemotePlatform(api.url, operator_secret) as operator, operator.tracking.start_run("by-operator") as mine:
        mine.log_metric("loss", 0.5)
    assert api.tracking.get_run(mine.id).metrics == {"loss": 0.5}
    assert {e.actor for e in api.audit.about(f"run:{mine.id}")} == {"token:operator-bot"}
    assert api.tracking.count() == 2
