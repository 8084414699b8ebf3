"""The gates measure a version themselves: its ONNX file, scored on the policy's
registered evaluation data or on the slice of its recorded data commit its training held
out, never on the metrics its run claims.

One real platform per module: loan-default 1.0.0 trained on loans/train.csv and
deployed (``build_loop``), the hold-out table committed at loans/holdout.csv. A "poor"
model answers the same for every row (ROC AUC 0.5) and is recorded with the claims of a
great one. Policy files are removed after every test.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mlops_lite import InvalidInput, TrainingSpec
from mlops_lite.policy.evaluation import MEASURABLE, Scorer, metric_value
from mlops_lite.training.classifier import split_rows, train_classifier

from ..conftest import DATA, FEATURE_EXCLUDE, build_loop, policy_files

MODEL = "loan-default"
PATH = "loans/train.csv"
EVALUATION = '[evaluation]\nrepository = "loans"\npath = "loans/holdout.csv"\ntarget = "default"\n'


def _constant(table: pa.Table, spec: TrainingSpec, value: float = 0.0) -> Any:
    """A model that answers the same for every row (ROC AUC 0.5): trained with every
    feature held at one value, it learned the base rate and nothing else."""
    columns = {name: pa.array([value] * table.num_rows) for name in spec.numeric}
    columns.update({name: pa.array(["same"] * table.num_rows) for name in spec.categorical})
    for name in {spec.target, spec.sensitive} - {None}:
        columns[name] = table.column(name)
    return train_classifier(pa.table(columns), spec)


def _record(p: Any, name: str, *, trained: Any, commit: str, metrics: dict[str, float],
            tags: dict[str, str] | None = None) -> Any:
    result = p.training.record(name, data_commit=commit, tags=tags or {"repository": "loans", "path": PATH},
                               params=trained.params, metrics=metrics, onnx=trained.onnx,
                               signature=trained.signature)
    return p.registry.register_from_run(MODEL, result.run.id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    p, _, spec = build_loop(tmp_path_factory.mktemp("gate-evaluation") / "home")
    p.data.repo("loans").create(classification="internal", exist_ok=True)
    p.data.ingest("loans", DATA / "loans_holdout.csv", "loans/holdout.csv")
    read = p.data.repo("loans").ref("main").read_table(PATH)
    poor = _constant(read.table, spec)
    assert poor.metrics["roc_auc"] == 0.5
    liar = _record(p, "poor-claims-great", trained=poor, commit=read.commit,
                   metrics={**poor.metrics, "roc_auc": 0.99, "accuracy": 0.99})
    yield SimpleNamespace(p=p, spec=spec, good=p.registry.get_version(MODEL, "1.0.0"), liar=liar, poor=poor,
                          commit=read.commit, table=read.table, policies=p.settings.home / "policies")
    p.close()


@pytest.fixture
def policies(world: Any) -> Any:
    with policy_files(world.policies) as write:
        yield write


def _gates(results: Any) -> dict[str, Any]:
    return {g.gate: g for g in results}


# ---- the held-out slice ------------------------------------------------------------------

def test_the_split_depends_on_the_target_and_the_recorded_parameters_alone() -> None:
    target = np.asarray([0, 1] * 50 + [0] * 100)
    fitted, held = split_rows(target, test_size=0.2, seed=42)
    again_fitted, again_held = split_rows(target, test_size=0.2, seed=42)
    assert held.tolist() == again_held.tolist() and fitted.tolist() == again_fitted.tolist()
    assert sorted([*fitted, *held]) == list(range(200)) and len(held) == 40
    assert held.tolist() != split_rows(target, test_size=0.2, seed=43)[1].tolist()
    assert np.mean(target[held]) == pytest.approx(np.mean(target), abs=0.01)  # stratified


def test_the_held_out_slice_measures_what_training_recorded(world) -> None:
    """Cut again from the run's recorded path, commit, target and split, the slice gives
    every recorded metric back (to ONNX parity): the slice is the one training held out."""
    p, good = world.p, world.good
    scorer = Scorer(p.data, p.registry.model_bytes, lambda run_id: dict(p.tracking.get_run(run_id).tags))
    source = scorer.held_out(good)
    assert (source.kind, source.repository, source.commit, source.path, source.target) == (
        "held-out", "loans", good.data_commits[0], PATH, "default")
    assert (source.test_size, source.seed) == (0.2, 42)
    scored = scorer.score(good, source, sensitive="gender")
    assert scored.rows == int(good.metrics["test_rows"]) == 1200
    for metric in ("roc_auc", "accuracy", "f1", "precision", "recall", "demographic_parity_difference"):
        assert metric_value(scored, metric, sensitive="gender") == pytest.approx(good.metrics[metric], abs=1e-4)
    assert scored.evidence() == {"kind": "held-out", "repository": "loans", "commit": good.data_commits[0],
                                 "path": PATH, "target": "default", "rows": 1200, "test_size": 0.2, "seed": 42}


def test_scoring_is_cached_by_model_digest_and_data_commit(world) -> None:
    p, good = world.p, world.good
    loads: list[tuple[str, str]] = []

    def model_bytes(model: str, version: str) -> bytes:
        loads.append((model, version))
        return p.registry.model_bytes(model, version)

    scorer = Scorer(p.data, model_bytes, lambda run_id: dict(p.tracking.get_run(run_id).tags))
    first = scorer.score(good, scorer.held_out(good))
    assert scorer.score(good, scorer.held_out(good)) is first and loads == [(MODEL, good.version)]
    registered = scorer.score(good, scorer.source(good, _evaluation()))
    assert registered is not first and registered.rows == 500 and len(loads) == 2
    assert scorer.score(good, scorer.source(good, _evaluation())) is registered and len(loads) == 2


def _evaluation() -> Any:
    from mlops_lite.policy.document import Evaluation

    return Evaluation(repository="loans", path="loans/holdout.csv", target="default")


# ---- the threshold gates ------------------------------------------------------------------

def test_a_poor_model_claiming_great_metrics_fails_on_what_it_measures(world) -> None:
    p, liar = world.p, world.liar
    assert liar.metrics["roc_auc"] == 0.99  # what the uploader sent is stored as sent
    gate = _gates(p.policy.evaluate(liar))["metric.roc_auc"]
    assert gate.passed is False and gate.bound == ">= 0.6"
    assert gate.measured == pytest.approx(0.5)
    assert gate.evidence["claimed"] == 0.99 and gate.evidence["measured"] == gate.measured
    assert gate.evidence["data"] == {"kind": "held-out", "repository": "loans", "commit": world.commit,
                                     "path": PATH, "target": "default", "rows": 1200, "test_size": 0.2, "seed": 42}
    assert gate.evidence["claim"]["honest"] is False and gate.evidence["claim"]["difference"] > 0.3
    assert "claims 0.99" in gate.detail and f"loans@{world.commit}:{PATH}" in gate.detail


def test_a_lie_fails_even_above_the_bound(world, policies) -> None:
    """The bound alone would pass (measured ~0.5 >= 0.4): the claim 0.99 fails the gate."""
    p, liar = world.p, world.liar
    policies(MODEL, "[thresholds]\nroc_auc = 0.4\n")
    gate = _gates(p.policy.evaluate(liar))["metric.roc_auc"]
    assert gate.measured >= 0.4 and gate.passed is False
    assert "more than the 0.02 allowed" in gate.detail
    policies(MODEL, "[thresholds]\nroc_auc = 0.4\n[claims]\ntolerance = 0.6\n")
    assert _gates(p.policy.evaluate(liar))["metric.roc_auc"].passed is True


def test_an_honest_version_passes_with_its_claim_beside_the_measure(world, policies) -> None:
    p, good = world.p, world.good
    policies(MODEL, "[thresholds]\nroc_auc = 0.7\naccuracy = 0.8\nf1 = 0.3\n")
    gates = _gates(p.policy.evaluate(good))
    for metric in ("roc_auc", "accuracy", "f1"):
        gate = gates[f"metric.{metric}"]
        assert gate.passed is True, gate.detail
        assert gate.evidence["claimed"] == good.metrics[metric]
        assert gate.evidence["claim"]["checked"] is True and gate.evidence["claim"]["difference"] < 1e-4


def test_registered_evaluation_data_is_what_the_thresholds_measure_on(world, policies) -> None:
    p, good, liar = world.p, world.good, world.liar
    policies(MODEL, "[thresholds]\nroc_auc = 0.8\n" + EVALUATION)
    gate = _gates(p.policy.evaluate(good))["metric.roc_auc"]
    head = p.data.repo("loans").ref("main").resolve()
    assert gate.passed is True and gate.evidence["data"] == {
        "kind": "registered", "repository": "loans", "commit": head, "path": "loans/holdout.csv",
        "target": "default", "rows": 500}
    assert gate.measured != pytest.approx(good.metrics["roc_auc"], abs=1e-3)  # other rows than the claim's
    assert gate.evidence["claim"]["held_out"] == pytest.approx(good.metrics["roc_auc"], abs=1e-4)
    assert "the registered evaluation data" in gate.detail
    lied = _gates(p.policy.evaluate(liar))["metric.roc_auc"]
    assert lied.passed is False and lied.evidence["data"]["kind"] == "registered" and lied.measured < 0.6


def test_a_metric_the_gates_cannot_measure_fails_whatever_is_claimed(world, policies) -> None:
    p, liar = world.p, world.liar
    assert "train_rows" not in MEASURABLE and liar.metrics["train_rows"] == 4800
    policies(MODEL, "[thresholds]\ntrain_rows = 1000\n")
    gate = _gates(p.policy.evaluate(liar))["metric.train_rows"]
    assert gate.passed is False and gate.measured is None
    assert "not a metric the gates can measure" in gate.detail and "4800" in gate.detail


def test_without_evaluation_data_a_version_fails_closed(world, policies) -> None:
    """A run that names no path (or a path not in its commit) cannot be measured: the gate
    fails and says why, whatever the run claims."""
    p = world.p
    nameless = _record(p, "no-path", trained=_constant(world.table, world.spec, 1.0),
                       commit=world.commit, metrics={"roc_auc": 0.99}, tags={"repository": "loans"})
    gate = _gates(p.policy.evaluate(nameless))["metric.roc_auc"]
    assert gate.passed is False and gate.measured is None and gate.evidence["claimed"] == 0.99
    assert "records no path" in gate.detail and "not evidence" in gate.detail
    elsewhere = _record(p, "missing-path", trained=_constant(world.table, world.spec, 2.0),
                        commit=world.commit, metrics={"roc_auc": 0.99},
                        tags={"repository": "loans", "path": "loans/missing.csv"})
    gate = _gates(p.policy.evaluate(elsewhere))["metric.roc_auc"]
    assert gate.passed is False and gate.measured is None and "loans/missing.csv" in gate.detail


def test_no_regression_without_evaluation_data_measures_both_versions(world, policies) -> None:
    p, liar = world.p, world.liar
    p.registry.set_alias(MODEL, "production", "1.0.0", reason="baseline")
    policies(MODEL, "[thresholds]\nroc_auc = 0.0\n[claims]\ntolerance = 1.0\n[regression]\ntolerance = 0.05\n")
    gate = _gates(p.policy.evaluate(liar))["regression.roc_auc"]
    assert gate.passed is False and gate.measured < 0.6 and gate.evidence["reference"] > 0.8
    assert gate.evidence["data"]["kind"] == gate.evidence["reference_data"]["kind"] == "held-out"


def test_the_evidence_is_stored_with_the_decision(world) -> None:
    p, liar = world.p, world.liar
    decision = p.policy.decide(MODEL, liar.version, actor="ci")
    assert decision.passed is False
    stored = p.policy.get_decision(decision.id)
    assert stored == decision
    gate = next(g for g in stored.gates if g.gate == "metric.roc_auc")
    assert gate.evidence["claimed"] == 0.99 and gate.evidence["data"]["rows"] == 1200


def test_a_bad_claims_tolerance_names_the_key(world, policies) -> None:
    path = policies(MODEL, '[claims]\ntolerance = "loose"\n')
    with pytest.raises(InvalidInput) as info:
        world.p.policy.evaluate(world.good)
    assert info.value.field == "claims.tolerance" and info.value.details["file"] == str(path)


def test_the_training_spec_records_what_the_slice_needs(world) -> None:
    """What a gate cuts the slice from is what training records: the params hold the
    split, the signature the target."""
    good = world.good
    spec = TrainingSpec.recorded(good.signature, good.params)
    assert (spec.target, spec.test_size, spec.seed) == ("default", 0.2, 42)
    assert not set(FEATURE_EXCLUDE) & {i["name"] for i in good.signature["inputs"]}


def test_a_decision_stored_before_gates_had_evidence_reads_back_with_none(world) -> None:
    """Decisions keep their gates as JSON: one stored by the previous code has no
    ``evidence`` key, and reads back with an empty one (no migration needed)."""
    import uuid

    from mlops_lite.clock import utcnow
    from mlops_lite.metadata.tables.policy import PolicyDecisionRow

    p, good = world.p, world.good
    old = PolicyDecisionRow(id=uuid.uuid4().hex, model=MODEL, version=good.version, alias="production",
                            decided_at=utcnow(), passed=True, actor="ci", override_reason=None, digest=good.digest,
                            gates=[{"gate": "metric.roc_auc", "passed": True, "measured": 0.81, "bound": ">= 0.6",
                                    "detail": "the version's recorded metric (its training run's held-out split)"}],
                            policy={"document": {}, "files": []})
    with p._store.session() as session:
        session.add(old)
    decision = p.policy.get_decision(old.id)
    assert [(g.gate, g.measured, g.evidence) for g in decision.gates] == [("metric.roc_auc", 0.81, {})]
