"""The training facet's contract, asked of a local Platform and a RemotePlatform alike
(fixtures in conftest.py): ``train`` reads a data commit, trains and records one finished
run citing that commit (on a remote platform the model trains in this process and the
server records the run); ``record`` records a model trained elsewhere; the same results,
and bad input refused with the same error and field, recording nothing.

``loop_api`` holds the 'loans' repository and loan-default 1.0.0, trained there by
logistic regression with the spec ``spec`` rebuilds; the same data and spec give the same
ONNX bytes, so what ``train`` answers registers as 1.0.0 again."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from typing import Any

import pytest

from mlops_lite import InvalidInput, NotFound, TrainingSpec
from mlops_lite.records import RunRecord
from mlops_lite.training import MODEL_ARTIFACT
from mlops_lite.training.service import TrainingResult
from tests.conftest import FEATURE_EXCLUDE
from tests.contract.conftest import refused as _refused

MODEL = "loan-default"
PATH = "loans/train.csv"



@pytest.fixture(scope="module")
def spec(loop_api: Any) -> TrainingSpec:
    """The spec behind 1.0.0, inferred from the table as read through the data facet (by glob)."""
    read = loop_api.data.repo("loans").ref("main").read_table("loans/*.csv")
    assert read.commit == loop_api.data.repo("loans").ref("main").resolve()
    assert read.table.equals(loop_api.data.repo("loans").ref("main").read_table(PATH).table)
    with pytest.raises(NotFound):
        loop_api.data.repo("loans").ref("main").read_table("nothing/*.csv")
    return TrainingSpec.infer(read.table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender")


def _recorded(api: Any) -> tuple[int, list[str]]:
    return api.tracking.count(), [run.id for run in api.tracking.list_runs(limit=500)]


# --- train --------------------------------------------------------------------------------------


def test_training_records_one_run_at_the_commit_it_read(loop_api: Any, spec: TrainingSpec) -> None:
    head = loop_api.data.repo("loans").ref("main").resolve()
    first = loop_api.registry.get_version(MODEL, "1.0.0")
    count = loop_api.tracking.count()
    result = loop_api.training.train("loans", "main", PATH, spec, run_name="contract-train", experiment="contract")
    assert type(result) is TrainingResult and type(result.run) is RunRecord
    assert loop_api.tracking.count() == count + 1
    run = loop_api.tracking.get_run(result.run.id)
    assert run == result.run
    assert (run.name, run.experiment, run.status, run.data_commits) == ("contract-train", "contract", "finished",
                                                                        (head,))
    assert {k: run.tags[k] for k in ("repository", "path", "ref")} == {"repository": "loans", "path": PATH,
                                                                      "ref": "main"}
    assert result.data_commit == head and run.params["algorithm"] == "logistic_regression"
    if loop_api.remote:  # it trained in this process; the server only recorded the finished run
        assert run.tags["trained_by_pid"] == str(os.getpid())
    onnx = loop_api.tracking.read_artifact(run.id, MODEL_ARTIFACT)
    assert hashlib.sha256(onnx).hexdigest() == result.model_digest == first.digest  # the same bytes as 1.0.0
    assert result.signature == first.signature
    assert result.metrics == pytest.approx(first.metrics) and run.metrics == pytest.approx(result.metrics)
    assert loop_api.registry.register_from_run(MODEL, run.id).version == "1.0.0"


def test_another_algorithm_trains_a_new_version(loop_api: Any, spec: TrainingSpec) -> None:
    forest = dataclasses.replace(spec, algorithm="random_forest", params={"n_estimators": 10})
    result = loop_api.training.train("loans", "main", PATH, forest)
    assert result.run.name == "train-random_forest" and result.run.experiment == "default"
    assert result.run.params["algorithm"] == "random_forest"
    version = loop_api.registry.register_from_run(MODEL, result.run.id)
    assert version.version != "1.0.0" and version.digest == result.model_digest
    assert (version.run_id, version.data_commits) == (result.run.id, (result.data_commit,))
    assert version.signature == result.signature


# --- record -------------------------------------------------------------------------------------


def test_a_model_trained_elsewhere_is_recorded_as_one_run(loop_api: Any) -> None:
    first = loop_api.registry.get_version(MODEL, "1.0.0")
    onnx = loop_api.registry.model_bytes(MODEL, "1.0.0")
    count = loop_api.tracking.count()
    result = loop_api.training.record("worker-run", data_commit=first.data_commits[0], experiment="contract",
                                      tags={"repository": "loans", "path": PATH, "host": "gpu-1"},
                                      params={"algorithm": "logistic_regression", "C": 1.0},
                                      metrics={"roc_auc": 0.75, "accuracy": 0.8}, onnx=onnx,
                                      signature=first.signature)
    assert type(result) is TrainingResult and loop_api.tracking.count() == count + 1
    assert (result.data_commit, result.model_digest, result.signature) == (first.data_commits[0], first.digest,
                                                                          first.signature)
    assert result.metrics == {"roc_auc": 0.75, "accuracy": 0.8}
    run = loop_api.tracking.get_run(result.run.id)
    assert run == result.run
    assert (run.name, run.experiment, run.status, run.data_commits) == ("worker-run", "contract", "finished",
                                                                        first.data_commits)
    assert run.params == {"algorithm": "logistic_regression", "C": "1.0"}  # params are kept as text
    assert run.metrics == {"roc_auc": 0.75, "accuracy": 0.8}
    assert {k: run.tags[k] for k in ("repository", "path", "host")} == {"repository": "loans", "path": PATH,
                                                                       "host": "gpu-1"}
    assert loop_api.tracking.read_artifact(run.id, MODEL_ARTIFACT) == onnx
    assert loop_api.registry.register_from_run(MODEL, run.id).version == "1.0.0"


# --- refusals -----------------------------------------------------------------------------------

# (id, the call on ``training`` given the spec, the field)
BAD_TRAINING: list[tuple[str, Callable[[Any, TrainingSpec], Any], str]] = [
    ("unknown-algorithm", lambda t, s: t.train("loans", "main", PATH, dataclasses.replace(s, algorithm="magic")),
     "algorithm"),
    ("test-size-out-of-range", lambda t, s: t.train("loans", "main", PATH, dataclasses.replace(s, test_size=0.9)),
     "test_size"),
    ("no-features", lambda t, s: t.train("loans", "main", PATH, dataclasses.replace(s, numeric=(), categorical=())),
     "features"),
    ("column-not-in-the-table", lambda t, s: t.train("loans", "main", PATH,
                                                     dataclasses.replace(s, numeric=(*s.numeric, "shoe_size"))),
     "columns"),
]


def _record_call(**change: Any) -> Callable[[Any, TrainingSpec], Any]:
    def call(training: Any, spec: TrainingSpec) -> Any:
        arguments: dict[str, Any] = {
            "data_commit": training.commit, "tags": {"repository": "loans"}, "params": {},
            "metrics": {"roc_auc": 0.7}, "onnx": b"not empty", "signature": {"inputs": [], "classes": [0, 1]}}
        return training.facet.record("bad", **{**arguments, **change})
    return call


BAD_RECORD: list[tuple[str, Callable[[Any, TrainingSpec], Any], str]] = [
    ("no-model", _record_call(onnx=b""), "artifacts.model.onnx"),
    ("signature-without-classes", _record_call(signature={"inputs": []}), "signature.classes"),
    ("signature-without-inputs", _record_call(signature={"classes": [0, 1]}), "signature.inputs"),
    ("no-repository", _record_call(tags={}), "tags.repository"),
    ("a-ref-not-a-commit", _record_call(data_commit="main"), "data_commit"),
]


@pytest.mark.parametrize(("call", "field"), [case[1:] for case in BAD_TRAINING],
                         ids=[case[0] for case in BAD_TRAINING])
def test_a_bad_spec_is_refused_and_records_nothing(loop_api: Any, spec: TrainingSpec,
                                                   call: Callable[[Any, TrainingSpec], Any], field: str) -> None:
    before = _recorded(loop_api)
    refused = _refused(InvalidInput, lambda: call(loop_api.training, spec))
    assert refused.field == field and refused.expected and refused.message
    assert _recorded(loop_api) == before


@pytest.mark.parametrize(("call", "field"), [case[1:] for case in BAD_RECORD], ids=[case[0] for case in BAD_RECORD])
def test_a_bad_record_is_refused_and_records_nothing(loop_api: Any, spec: TrainingSpec,
                                                     call: Callable[[Any, TrainingSpec], Any], field: str) -> None:
    class Handle:
        facet = loop_api.training
        commit = loop_api.data.repo("loans").ref("main").resolve()

    before = _recorded(loop_api)
    refused = _refused(InvalidInput, lambda: call(Handle, spec))
    assert refused.field == field and refused.expected and refused.message
    assert _recorded(loop_api) == before


def test_what_is_not_there_is_not_found_and_nothing_is_recorded(loop_api: Any, spec: TrainingSpec) -> None:
    training = loop_api.training
    before = _recorded(loop_api)
    # the words the core says (a remote platform reads the data over the lakeFS-compatible
    # API, whose client names the operation first)
    for call, words in (
            (lambda: training.train("no-such-repo", "main", PATH, spec),
             "data repository 'no-such-repo' does not exist"),
            (lambda: training.train("loans", "no-such-branch", PATH, spec),
             "'no-such-branch' is not a branch, tag or commit of 'loans'"),
            (lambda: training.train("loans", "main", "loans/missing.csv", spec),
             "object 'loans/missing.csv' is not in loans@"),
            (lambda: training.record("bad", data_commit="0" * 64, tags={"repository": "loans"}, params={},
                                     metrics={}, onnx=b"x", signature={"inputs": [], "classes": [0, 1]}),
             f"commit '{'0' * 64}' is not in 'loans'")):
        assert words in _refused(NotFound, call).message
    assert _recorded(loop_api) == before


def test_a_branch_with_staged_changes_to_the_table_is_refused(loop_api: Any, spec: TrainingSpec) -> None:
    """A run cites the commit it read: staged bytes are in no commit, so training on them is
    refused, naming the path, and records nothing; once committed, the run cites that commit."""
    from mlops_lite import Conflict

    repo = loop_api.data.repo("loans")
    branch = repo.branch("staged-train")
    branch.create("main", exist_ok=True)
    original = repo.ref("main").read_bytes(PATH)
    branch.upload(PATH, original.replace(b"\n", b"\n", 1) + original.split(b"\n", 2)[1] + b"\n")
    before = _recorded(loop_api)
    for path in (PATH, "loans/*.csv"):
        with pytest.raises(Conflict) as refused:
            loop_api.training.train("loans", "staged-train", path, spec)
        assert f"loans/staged-train has uncommitted changes to {PATH}" in str(refused.value)
    assert _recorded(loop_api) == before
    commit = branch.commit("one more row")
    result = loop_api.training.train("loans", "staged-train", PATH, spec)
    assert result.data_commit == commit.id
    branch.delete()
