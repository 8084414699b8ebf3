"""The policy engine: TOML policies, every gate passing and failing, stored decisions,
overrides, the approval workflow with four eyes, and the alert sinks.

One real platform per module (``world``): loan-default 1.0.0 trained on loans.csv and
deployed (``build_loop``), a weak 1.1.0 (logistic regression with C=1e-6) on the same
data, the hold-out table committed at loans/holdout.csv, and ``production`` -> 1.0.0.
Policy files are removed after every test.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mlops_lite import Conflict, InvalidInput, NotFound, PermissionDenied, PolicyViolation, TrainingSpec
from mlops_lite.policy import LogSink, WebhookSink
from mlops_lite.policy.fairness import demographic_parity_difference, equalized_odds_difference, group_rates
from mlops_lite.records import Identity

from ..conftest import DATA, FEATURE_EXCLUDE, build_loop, policy_files

MODEL = "loan-default"
EVALUATION = """
[evaluation]
repository = "loans"
ref = "main"
path = "loans/holdout.csv"
target = "default"
"""

ALICE = Identity("alice", "approver")
BOB = Identity("bob", "admin")
CAROL = Identity("carol", "approver")
OLIVIA = Identity("olivia", "operator")


def _train(p: Any, path: str = "loans/train.csv", ref: str = "main", **options: Any) -> Any:
    table = p.data.repo("loans").ref(ref).read_table(path).table
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender", **options)
    return p.training.train("loans", ref, path, spec)


def _moves(p: Any, alias: str) -> list[tuple[str, ...]]:
    """The alias's moves, as (model, alias, to_version, reason, actor), oldest first."""
    if alias not in p.registry.aliases(MODEL) and not p.registry.alias_history(MODEL):
        return []
    return [(MODEL, alias, e.to_version or "", e.reason, e.actor) for e in p.registry.alias_history(MODEL)
            if e.alias == alias]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    p, _, _ = build_loop(tmp_path_factory.mktemp("policy") / "home")
    good = p.registry.get_version(MODEL, "1.0.0")
    p.data.repo("loans").create(classification="internal", exist_ok=True)
    p.data.ingest("loans", DATA / "loans_holdout.csv", "loans/holdout.csv")
    weak = p.registry.register_from_run(MODEL, _train(p, params={"C": 1e-6}).run.id)
    assert (weak.version, float(weak.params["C"])) == ("1.1.0", 1e-6)
    p.registry.set_alias(MODEL, "production", good.version, reason="first release")
    yield SimpleNamespace(p=p, good=good, weak=weak, policies=p.settings.home / "policies")
    p.close()


@pytest.fixture
def policies(world: Any) -> Any:
    """write(name, text) puts a policy file in the home; all are removed afterwards."""
    with policy_files(world.policies) as write:
        yield write


def _gates(results: Any) -> dict[str, Any]:
    return {g.gate: g for g in results}


def _independent_scores(p: Any, version: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(y_true, y_pred, p_positive, gender) of ``version`` on the hold-out CSV, scored with
    onnxruntime directly (not through the policy code)."""
    import onnxruntime as ort
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(DATA / "loans_holdout.csv")
    feed = {}
    for spec in version.signature["inputs"]:
        column = table.column(spec["name"]).to_pylist()
        feed[spec["name"]] = (np.asarray(column, dtype=np.float32) if spec["type"] == "float"
                              else np.asarray(column, dtype=object)).reshape(-1, 1)
    session = ort.InferenceSession(p.registry.model_bytes(MODEL, version.version), providers=["CPUExecutionProvider"])
    labels, proba = session.run(["label", "probabilities"], feed)
    positive = version.signature["classes"][1]
    y_true = np.asarray(table.column("default").to_pylist()) == positive
    return y_true, np.asarray(labels).reshape(-1) == positive, np.asarray(proba)[:, 1], \
        [str(g) for g in table.column("gender").to_pylist()]


# ---- the default policy and TOML ----------------------------------------------------------

def test_with_no_files_the_policy_is_min_roc_auc_and_lineage(world) -> None:
    p, good = world.p, world.good
    assert not list(world.policies.glob("*.toml"))
    results = p.policy.evaluate(good)
    assert [g.gate for g in results] == ["metric.roc_auc", "lineage.complete"]
    assert all(g.passed for g in results) and results[0].bound == ">= 0.6"
    assert results[0].measured == good.metrics["roc_auc"]
    assert p.policy.enforce(good) == results
    p.policy.min_roc_auc = 0.99
    try:
        with pytest.raises(PolicyViolation) as info:
            p.policy.enforce(good)
        gates = {g["gate"]: g for g in info.value.details["gates"]}
        assert set(gates) == {"metric.roc_auc", "lineage.complete"}
        assert gates["metric.roc_auc"]["passed"] is False and gates["lineage.complete"]["passed"] is True
    finally:
        p.policy.min_roc_auc = 0.6


def test_thresholds_pass_and_fail_and_the_model_file_overrides_the_default(world, policies) -> None:
    p, good = world.p, world.good
    policies("default", "[thresholds]\nroc_auc = 0.95\naccuracy = 0.75\n")
    gates = _gates(p.policy.evaluate(good))
    assert gates["metric.roc_auc"].passed is False and gates["metric.roc_auc"].bound == ">= 0.95"
    assert gates["metric.accuracy"].passed is True and gates["metric.accuracy"].measured == good.metrics["accuracy"]
    policies(MODEL, "[thresholds]\nroc_auc = 0.7\ndemographic_parity_difference = { max = 0.0001 }\n"
                    "nowhere = { min = 0.1 }\n")
    gates = _gates(p.policy.evaluate(good))
    assert gates["metric.roc_auc"].passed is True and gates["metric.roc_auc"].bound == ">= 0.7"
    assert gates["metric.accuracy"].passed is True  # still there, from default.toml
    dp = gates["metric.demographic_parity_difference"]
    assert dp.passed is (good.metrics["demographic_parity_difference"] <= 0.0001) and dp.bound == "<= 0.0001"
    assert gates["metric.nowhere"].passed is False
    assert "not a metric the gates can measure" in gates["metric.nowhere"].detail
    policies(MODEL, "[thresholds]\nroc_auc = 0.7\ndemographic_parity_difference = { max = 0.5 }\n")
    assert all(g.passed for g in p.policy.evaluate(good))
    spec = p.policy.load(MODEL)
    assert [Path(f).name for f in spec.files] == ["default.toml", f"{MODEL}.toml"]


@pytest.mark.parametrize(("text", "key"), [
    ('[thresholds]\nroc_auc = "high"\n', "thresholds.roc_auc"),
    ("[thresholds]\nf1 = { mn = 0.5 }\n", "thresholds.f1.mn"),
    ("[thresholds]\nf1 = { min = 0.9, max = 0.5 }\n", "thresholds.f1"),
    ("[threshold]\nroc_auc = 0.7\n", "threshold"),
    ("[regression]\ntolerance = -0.1\n", "regression.tolerance"),
    ("[regression]\ntolerence = 0.1\n", "regression.tolerence"),
    ('[regression]\nmetric = "log_loss"\n' + EVALUATION, "regression.metric"),
    ('[fairness]\nsensitive = "gender"\nmax_demographic_parity_difference = 0.1\n', "fairness.sensitive"),
    ('[fairness]\nsensitive = "gender"\nmax_equalized_odds_difference = 2\n' + EVALUATION,
     "fairness.max_equalized_odds_difference"),
    ('[evaluation]\nrepository = "loans"\n', "evaluation.path"),
    ('[data]\nrequire_checked = "yes"\n', "data.require_checked"),
    ('[residency]\nallowed_regions = "ae"\n', "residency.allowed_regions"),
    ('[approvals]\nrequired = "two"\n', "approvals.required"),
    ("[approvals]\nrequired = -1\n", "approvals.required"),
    ('[notify]\nwebhook = "ftp://example.org/x"\n', "notify.webhook"),
    ("[thresholds\nroc_auc = 0.7\n", "toml"),
])
def test_toml_errors_name_the_key(world, policies, text: str, key: str) -> None:
    path = policies(MODEL, text)
    with pytest.raises(InvalidInput) as info:
        world.p.policy.evaluate(world.good)
    assert info.value.field == key
    assert key in str(info.value) and info.value.details["file"] == str(path)


def test_a_bad_policy_file_stops_a_deploy(world, policies) -> None:
    policies("default", "[thresholds]\nroc_auc = [1]\n")
    before = world.p.deployments.get("loans").revision
    with pytest.raises(InvalidInput, match=r"thresholds\.roc_auc"):
        world.p.deployments.deploy("loans", MODEL, "1.0.0")
    assert world.p.deployments.get("loans").revision == before


# ---- regression, fairness, data, residency -------------------------------------------------

def test_regression_against_production_on_the_same_evaluation_data(world, policies) -> None:
    from sklearn.metrics import roc_auc_score

    p, good, weak = world.p, world.good, world.weak
    assert p.registry.get_alias(MODEL, "production").version == good.version
    y_good, _, proba_good, _ = _independent_scores(p, good)
    y_weak, _, proba_weak, _ = _independent_scores(p, weak)
    auc_good, auc_weak = roc_auc_score(y_good, proba_good), roc_auc_score(y_weak, proba_weak)
    assert auc_good - auc_weak > 0.02  # the weak model really is worse on the hold-out

    policies(MODEL, "[regression]\ntolerance = 0.01\n" + EVALUATION)
    gate = _gates(p.policy.evaluate(weak))["regression.roc_auc"]
    assert gate.passed is False
    assert gate.measured == pytest.approx(auc_weak, abs=1e-6)
    assert gate.bound == f">= {auc_good - 0.01:.6g}"
    assert "both ONNX models scored on loans@" in gate.detail and "loans/holdout.csv" in gate.detail
    assert _gates(p.policy.evaluate(good))["regression.roc_auc"].passed is True  # production itself

    tolerance = round(auc_good - auc_weak + 0.01, 4)
    policies(MODEL, f"[regression]\ntolerance = {tolerance}\n" + EVALUATION)
    gate = _gates(p.policy.evaluate(weak))["regression.roc_auc"]
    assert gate.passed is True and gate.measured == pytest.approx(auc_weak, abs=1e-6)

    policies(MODEL, f"[regression]\nmetric = \"accuracy\"\ntolerance = 0.0\n{EVALUATION}")
    gate = _gates(p.policy.evaluate(weak))["regression.accuracy"]
    _, pred_weak, _, _ = _independent_scores(p, weak)
    assert gate.measured == pytest.approx(float(np.mean(pred_weak == y_weak)))


def test_regression_without_evaluation_data_measures_each_on_its_held_out_slice(world, policies) -> None:
    p, good, weak = world.p, world.good, world.weak
    policies(MODEL, "[regression]\ntolerance = 0.001\n")
    gate = _gates(p.policy.evaluate(weak))["regression.roc_auc"]
    assert gate.passed is (weak.metrics["roc_auc"] >= good.metrics["roc_auc"] - 0.001) is False
    # measured through ONNX (float32) on the slice training held out: the recorded value, to parity
    assert gate.measured == pytest.approx(weak.metrics["roc_auc"], abs=1e-4)
    assert "own held-out slice" in gate.detail and gate.evidence["data"]["kind"] == "held-out"
    policies(MODEL, "[regression]\ntolerance = 0.5\n")
    assert _gates(p.policy.evaluate(weak))["regression.roc_auc"].passed is True
    # no version behind the alias compared against: nothing to regress against
    policies(MODEL, '[regression]\nagainst = "champion"\n' + EVALUATION)
    gate = _gates(p.policy.evaluate(weak))["regression.roc_auc"]
    assert gate.passed is True and "no 'champion' version" in gate.detail
    # a model file switches off the default's regression gate
    policies("default", "[regression]\ntolerance = 0.0\n")
    policies(MODEL, "[regression]\nenabled = false\n")
    assert "regression.roc_auc" not in _gates(p.policy.evaluate(weak))


def test_unmeasurable_evaluation_data_fails_the_gate_and_says_why(world, policies) -> None:
    policies(MODEL, '[regression]\n[fairness]\nsensitive = "gender"\nmax_demographic_parity_difference = 0.5\n'
                    '[evaluation]\nrepository = "loans"\npath = "loans/missing.csv"\n')
    gates = _gates(world.p.policy.evaluate(world.weak))
    for name in ("regression.roc_auc", "fairness.demographic_parity_difference"):
        assert gates[name].passed is False and "NotFound" in gates[name].detail
    policies(MODEL, '[fairness]\nsensitive = "religion"\nmax_demographic_parity_difference = 0.5\n' + EVALUATION)
    gate = _gates(world.p.policy.evaluate(world.good))["fairness.demographic_parity_difference"]
    assert gate.passed is False and "religion" in gate.detail


def test_fairness_gates_pass_and_fail(world, policies) -> None:
    p, good = world.p, world.good
    policies(MODEL, '[fairness]\nsensitive = "gender"\nmax_demographic_parity_difference = 0.1\n'
                    "max_equalized_odds_difference = 0.1\n" + EVALUATION)
    gates = _gates(p.policy.evaluate(good))
    dp, eo = gates["fairness.demographic_parity_difference"], gates["fairness.equalized_odds_difference"]
    assert dp.passed and eo.passed and dp.bound == "<= 0.1"
    assert 0 < dp.measured < 0.1 and 0 < eo.measured < 0.1
    assert "female" in dp.detail and "male" in dp.detail
    # a bound under the measured figures fails each gate
    policies(MODEL, f'[fairness]\nsensitive = "gender"\nmax_demographic_parity_difference = {dp.measured / 2}\n'
                    f"max_equalized_odds_difference = {eo.measured / 2}\n" + EVALUATION)
    gates = _gates(p.policy.evaluate(good))
    assert not gates["fairness.demographic_parity_difference"].passed
    assert not gates["fairness.equalized_odds_difference"].passed
    assert gates["fairness.demographic_parity_difference"].measured == dp.measured


@pytest.fixture(scope="session")
def fairlearn_python() -> str:
    """A separate venv with fairlearn (the oracle); never installed into the project's venv."""
    venv = Path("/tmp/fairlearn-venv")
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import fairlearn, numpy"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "fairlearn", "numpy", "scikit-learn", "pandas"],
                       check=True, capture_output=True, timeout=900)
        subprocess.run(check, check=True, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"the fairlearn oracle venv could not be made in {venv}: {exc}")
    return str(python)


ORACLE = """
import json, sys
import numpy as np
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
out = []
for case in json.load(open(sys.argv[1])):
    y, p, g = np.asarray(case["y_true"]), np.asarray(case["y_pred"]), np.asarray(case["groups"])
    out.append({"dp": float(demographic_parity_difference(y, p, sensitive_features=g)),
                "eo": float(equalized_odds_difference(y, p, sensitive_features=g))})
print(json.dumps(out))
"""


def test_fairness_figures_equal_fairlearns_on_the_same_predictions(world, policies, fairlearn_python,
                                                                   tmp_path) -> None:
    p = world.p
    policies(MODEL, '[fairness]\nsensitive = "gender"\nmax_demographic_parity_difference = 0.1\n'
                    "max_equalized_odds_difference = 0.1\n" + EVALUATION)
    cases, measured = [], []
    for version in (world.good, world.weak):
        y_true, y_pred, _, groups = _independent_scores(p, version)
        gates = _gates(p.policy.evaluate(version))
        measured.append((gates["fairness.demographic_parity_difference"].measured,
                         gates["fairness.equalized_odds_difference"].measured))
        cases.append({"y_true": y_true.astype(int).tolist(), "y_pred": y_pred.astype(int).tolist(),
                      "groups": groups})
    # synthetic: (1) three groups, one with no positives (its TPR counts as 0, as in
    # fairlearn); (2) the FPR spread larger than the TPR spread; (3) the TPR spread larger
    rng = np.random.default_rng(7)
    for case in range(3):
        groups = rng.choice(["a", "b", "c"], size=400).tolist()
        g = np.asarray(groups)
        y_true = (rng.random(400) < 0.4).astype(int)
        if case == 0:
            y_true[g == "c"] = 0
            p_pos = np.where(g == "a", 0.6, 0.3)
        elif case == 1:  # positives predicted alike; negatives of "a" flagged far more often
            p_pos = np.where(y_true == 1, 0.7, np.where(g == "a", 0.6, 0.1))
        else:  # negatives predicted alike; positives of "b" found far more often
            p_pos = np.where(y_true == 0, 0.2, np.where(g == "b", 0.9, 0.3))
        y_pred = (rng.random(400) < p_pos).astype(int)
        cases.append({"y_true": y_true.tolist(), "y_pred": y_pred.tolist(), "groups": groups})
        measured.append((demographic_parity_difference(y_pred == 1, groups),
                         equalized_odds_difference(y_true == 1, y_pred == 1, groups)))
        rates = group_rates(y_true == 1, y_pred == 1, groups)
        spreads = [max(r[k] for r in rates.values()) - min(r[k] for r in rates.values())
                   for k in ("true_positive_rate", "false_positive_rate")]
        assert case != 1 or spreads[1] > spreads[0] + 0.2
        assert case != 2 or spreads[0] > spreads[1] + 0.2

    data = tmp_path / "predictions.json"
    data.write_text(json.dumps(cases))
    script = tmp_path / "oracle.py"
    script.write_text(ORACLE)
    done = subprocess.run([fairlearn_python, "-W", "ignore", str(script), str(data)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    oracle = json.loads(done.stdout)
    assert len(oracle) == len(measured) == 5
    for (dp, eo), expected in zip(measured, oracle, strict=True):
        assert dp == pytest.approx(expected["dp"], abs=1e-12)
        assert eo == pytest.approx(expected["eo"], abs=1e-12)
    # not trivially zero (the weak model, oracle[1], predicts no defaults at all: 0 and 0)
    assert all(o["eo"] > 0 and o["dp"] > 0 for o in (oracle[0], *oracle[2:]))
    assert oracle[1] == {"dp": 0.0, "eo": 0.0}


def test_group_rates_by_hand() -> None:
    rates = group_rates([True, True, False, False, True, False], [True, False, True, False, True, True],
                        ["a", "a", "a", "a", "b", "b"])
    assert rates["a"] == {"count": 4.0, "selection_rate": 0.5, "true_positive_rate": 0.5, "false_positive_rate": 0.5}
    assert rates["b"] == {"count": 2.0, "selection_rate": 1.0, "true_positive_rate": 1.0, "false_positive_rate": 1.0}
    assert demographic_parity_difference([True, False, True, True], ["a", "a", "b", "b"]) == 0.5
    assert equalized_odds_difference([True, False, True, False], [True, False, False, True],
                                      ["a", "a", "b", "b"]) == 1.0


def test_data_checked_gate(world, policies) -> None:
    p, good = world.p, world.good
    policies(MODEL, "[data]\nrequire_checked = true\n")
    gate = _gates(p.policy.evaluate(good))["data.checked"]
    assert gate.passed is True and gate.measured == {good.data_commits[0]: "on main"}

    # trained on a branch that never went through the checks
    repo = p.data.repo("loans")
    branch = repo.branch("experiment")
    branch.create("main", exist_ok=True)
    branch.upload("loans/experiment.csv", DATA / "loans_drifted.csv")
    commit = branch.commit("drifted sample")
    unchecked = p.registry.register_from_run(MODEL, _train(p, "loans/experiment.csv", "experiment").run.id)
    assert unchecked.data_commits == (commit.id,)
    gate = _gates(p.policy.evaluate(unchecked))["data.checked"]
    assert gate.passed is False and gate.measured[commit.id].startswith("not on main")
    with pytest.raises(PolicyViolation, match=r"data\.checked"):
        p.policy.enforce(unchecked)

    # merged into main through the checks: the same data is now on main
    merge = branch.merge_into("main")
    gate = _gates(p.policy.evaluate(unchecked))["data.checked"]
    assert gate.passed is True and gate.measured[commit.id] == f"same data as main@{merge.id}"

    # an unprotected default branch proves nothing
    repo.configure(protected_branches=[])
    try:
        gate = _gates(p.policy.evaluate(good))["data.checked"]
        assert gate.passed is False and "not a protected branch" in gate.detail
    finally:
        repo.configure(protected_branches=["main"])
    # the repository named in the policy must hold the commits
    p.data.repo("other").create(classification="internal", exist_ok=True)
    p.data.ingest("other", DATA / "loans_holdout.csv", "holdout.csv")
    policies(MODEL, '[data]\nrequire_checked = true\nrepository = "other"\n')
    gate = _gates(p.policy.evaluate(good))["data.checked"]
    assert gate.passed is False and gate.measured[good.data_commits[0]] == "not a commit of other"


def test_residency_gate(world, policies) -> None:
    p, good = world.p, world.good
    assert p.settings.region == "ae"
    policies("default", '[residency]\nallowed_regions = ["ae", "sa"]\n')
    gate = _gates(p.policy.evaluate(good))["residency.region"]
    # the real locations: the data commit's repository and the artifact store, both in "ae"
    assert gate.passed is True and set(gate.measured.values()) == {"ae"} and len(gate.measured) == 2
    assert {loc["kind"] for loc in gate.evidence["locations"]} == {"dataset", "artifacts"}
    policies(MODEL, '[residency]\nallowed_regions = ["eu"]\n')
    gate = _gates(p.policy.evaluate(good))["residency.region"]
    assert gate.passed is False and gate.bound == {"residency.allowed_regions": ["eu"]}


def test_enforce_lists_every_gate_passed_or_not(world, policies) -> None:
    policies(MODEL, '[residency]\nallowed_regions = ["eu"]\n[approvals]\nrequired = 1\n')
    with pytest.raises(PolicyViolation) as info:
        world.p.policy.enforce(world.good)
    gates = {g["gate"]: g["passed"] for g in info.value.details["gates"]}
    assert gates == {"metric.roc_auc": True, "lineage.complete": True, "residency.region": False,
                     "approvals": False}
    json.dumps(info.value.to_dict())  # the server can send it as it is


# ---- decisions and overrides ---------------------------------------------------------------

def test_decisions_are_stored_audited_and_queryable(world, policies) -> None:
    p, good, weak = world.p, world.good, world.weak
    # on the hold-out the thresholds measure: good ~0.84, weak ~0.80
    policies(MODEL, "[thresholds]\nroc_auc = 0.82\n[regression]\ntolerance = 0.01\n" + EVALUATION)
    first = p.policy.decide(MODEL, good.version, actor="ci")
    second = p.policy.decide(MODEL, weak.version, alias="production", actor=Identity("ci-bot", "operator"))
    assert first.passed is True and first.allowed and not first.overridden
    assert second.passed is False and second.actor == "ci-bot"
    assert {g.gate for g in second.failed} == {"metric.roc_auc", "regression.roc_auc"}
    assert second.digest == weak.digest and second.policy["document"]["regression"]["tolerance"] == 0.01

    stored = p.policy.decisions(MODEL, weak.version)
    assert stored[-1] == second
    assert p.policy.get_decision(first.id) == first
    assert p.policy.latest_decision(MODEL, weak.version) == second
    assert {d.id for d in p.policy.decisions(MODEL)} >= {first.id, second.id}
    assert p.policy.decisions(MODEL, weak.version, alias="staging") == []
    events = [e for e in p.audit.events(limit=50) if e.action == "policy.decision"]
    assert {e.after["decision_id"] for e in events} >= {first.id, second.id}
    mine = next(e for e in events if e.after["decision_id"] == second.id)
    assert mine.object == f"model:{MODEL}@{weak.version}" and mine.after["passed"] is False
    assert p.audit.verify() is None

    with pytest.raises(PolicyViolation) as info:
        p.policy.require_passing(MODEL, weak.version, actor="server")
    assert info.value.details["decision_id"] == p.policy.latest_decision(MODEL, weak.version).id
    assert {g["gate"] for g in info.value.details["gates"]} >= {"lineage.complete", "regression.roc_auc"}
    with pytest.raises(NotFound, match=r"9\.9\.9"):
        p.policy.decide(MODEL, "9.9.9", actor="ci")


def test_decisions_survive_a_reopen(tmp_path) -> None:
    from mlops_lite import connect

    p, _, _ = build_loop(tmp_path / "home")
    decision = p.policy.decide(MODEL, "1.0.0", actor="ci")
    p.close()
    with connect(home=tmp_path / "home") as again:
        assert again.policy.decisions(MODEL, "1.0.0") == [decision]


def test_an_override_needs_an_admin_and_a_reason_and_is_audited(world, policies) -> None:
    p, weak = world.p, world.weak
    policies(MODEL, "[thresholds]\nroc_auc = 0.99\n")
    with pytest.raises(PermissionDenied):
        p.policy.override(MODEL, weak.version, alias="hotfix", reason="urgent", identity=Identity("o", "operator"))
    with pytest.raises(PermissionDenied):
        p.policy.override(MODEL, weak.version, alias="hotfix", reason="urgent", identity=ALICE)
    with pytest.raises(InvalidInput) as info:
        p.policy.override(MODEL, weak.version, alias="hotfix", reason="  ", identity=BOB)
    assert info.value.field == "reason"
    assert p.policy.decisions(MODEL, weak.version, alias="hotfix") == []

    decision = p.policy.override(MODEL, weak.version, alias="hotfix", reason="incident 42: roll forward",
                                 identity=BOB)
    calls = _moves(p, "hotfix")
    assert decision.passed is False and decision.overridden and decision.allowed
    assert decision.override_reason == "incident 42: roll forward" and decision.actor == "bob"
    assert p.policy.decisions(MODEL, weak.version, alias="hotfix") == [decision]
    assert calls and calls[0][:3] == (MODEL, "hotfix", weak.version) and "incident 42" in calls[0][3]
    assert p.registry.get_alias(MODEL, "hotfix").version == weak.version
    event = next(e for e in p.audit.events(limit=20) if e.action == "policy.override")
    assert event.actor == "bob" and event.after["reason"] == "incident 42: roll forward"
    assert event.after["decision_id"] == decision.id and event.after["failed"] == ["metric.roc_auc"]


# ---- approvals -------------------------------------------------------------------------------

def test_the_approval_workflow_with_four_eyes(world, policies) -> None:
    p, good = world.p, world.good
    policies(MODEL, "[approvals]\nrequired = 2\n")
    with pytest.raises(PermissionDenied):
        p.policy.request_promotion(MODEL, good.version, alias="staging", requested_by=Identity("v", "viewer"))
    with pytest.raises(NotFound):
        p.policy.request_promotion(MODEL, "9.9.9", alias="staging", requested_by=OLIVIA)
    request = p.policy.request_promotion(MODEL, good.version, alias="staging", requested_by=OLIVIA,
                                         comment="ready for staging")
    assert (request.status, request.requested_by, request.comment, request.votes) == \
        ("pending", "olivia", "ready for staging", ())
    with pytest.raises(Conflict, match=request.id):
        p.policy.request_promotion(MODEL, good.version, alias="staging", requested_by=OLIVIA)

    with pytest.raises(PermissionDenied, match="approver"):
        p.policy.approve(request.id, identity=Identity("vic", "operator"))
    with pytest.raises(PermissionDenied, match="four-eyes"):
        p.policy.approve(request.id, identity=Identity(good.created_by, "admin"))
    with pytest.raises(PermissionDenied, match="four-eyes"):
        p.policy.approve(request.id, identity=Identity("olivia", "approver"))

    once = p.policy.approve(request.id, identity=ALICE, comment="metrics look fine")
    twice = p.policy.approve(request.id, identity=ALICE, comment="again")
    assert once == twice and once.status == "pending" and once.approvers == ("alice",) and len(once.votes) == 1
    assert once.votes[0].comment == "metrics look fine" and once.votes[0].role == "approver"

    gate = _gates(p.policy.evaluate(good, alias="staging"))["approvals"]
    assert (gate.passed, gate.measured, gate.bound) == (False, 1, ">= 2")
    assert _gates(p.policy.evaluate(good, alias="production"))["approvals"].measured == 0

    with pytest.raises(PolicyViolation) as info:
        p.policy.complete(request.id, identity=OLIVIA)
    assert _moves(p, "staging") == [] and info.value.details["request_id"] == request.id
    failed = p.policy.get_decision(info.value.details["decision_id"])
    assert [g.gate for g in failed.failed] == ["approvals"] and failed.alias == "staging"
    with pytest.raises(NotFound):
        p.registry.get_alias(MODEL, "staging")

    approved = p.policy.approve(request.id, identity=BOB, comment="ok")
    assert approved.status == "approved" and approved.approvers == ("alice", "bob")
    with pytest.raises(PermissionDenied):
        p.policy.complete(request.id, identity=Identity("v", "viewer"))
    done = p.policy.complete(request.id, identity=OLIVIA, comment="go")
    assert done.status == "completed" and done.completed_by == "olivia" and done.decision_id
    decision = p.policy.get_decision(done.decision_id)
    assert decision.passed and _gates(decision.gates)["approvals"].measured == 2
    calls = _moves(p, "staging")
    assert calls[0][:3] == (MODEL, "staging", good.version) and calls[0][4] == "olivia"
    assert request.id in calls[0][3] and decision.id in calls[0][3]
    assert p.registry.get_alias(MODEL, "staging").version == good.version
    assert p.registry.alias_history(MODEL, "staging")[-1].reason == calls[0][3]

    for vote in (p.policy.approve, p.policy.reject):
        with pytest.raises(Conflict, match="completed"):
            vote(request.id, identity=CAROL)
    with pytest.raises(Conflict):
        p.policy.complete(request.id, identity=OLIVIA)
    assert [r.id for r in p.policy.requests(MODEL, status="completed")] == [request.id]

    actions = [e.action for e in p.audit.events(limit=40) if e.object == f"model:{MODEL}@{good.version}"]
    for action in ("approval.request", "approval.approve", "approval.complete", "policy.decision"):
        assert action in actions
    assert p.audit.verify() is None


def test_a_rejected_request_takes_no_votes_and_its_approvals_do_not_count(world, policies) -> None:
    p, good = world.p, world.good
    policies(MODEL, "[approvals]\nrequired = 1\n")
    request = p.policy.request_promotion(MODEL, good.version, alias="canary", requested_by=OLIVIA)
    approved = p.policy.approve(request.id, identity=ALICE)
    assert approved.status == "approved"
    assert _gates(p.policy.evaluate(good, alias="canary"))["approvals"].passed is True
    rejected = p.policy.reject(request.id, identity=CAROL, comment="not during the freeze")
    assert rejected.status == "rejected" and [v.vote for v in rejected.votes] == ["approve", "reject"]
    with pytest.raises(Conflict, match="rejected"):
        p.policy.approve(request.id, identity=BOB)
    with pytest.raises(Conflict, match="rejected"):
        p.policy.complete(request.id, identity=OLIVIA)
    gate = _gates(p.policy.evaluate(good, alias="canary"))["approvals"]
    assert (gate.passed, gate.measured) == (False, 0)
    assert request.id in [r.id for r in p.policy.requests(MODEL, status="rejected")]
    with pytest.raises(InvalidInput):
        p.policy.requests(MODEL, status="maybe")
    # a new request can be made once the old one is closed
    again = p.policy.request_promotion(MODEL, good.version, alias="canary", requested_by="local:ci")
    done = p.policy.approve(again.id, identity=BOB, complete=True)
    assert done.status == "completed" and p.registry.get_alias(MODEL, "canary").version == good.version


def test_the_approvals_gate_never_counts_the_author(world, policies) -> None:
    """Votes are refused to the author up front; the gate excludes the author anyway (a
    vote row written by hand, or a version re-attributed, must not count)."""
    from mlops_lite.clock import utcnow
    from mlops_lite.metadata.tables.policy import ApprovalVoteRow

    p, good = world.p, world.good
    policies(MODEL, "[approvals]\nrequired = 1\n")
    request = p.policy.request_promotion(MODEL, good.version, alias="author-test", requested_by=OLIVIA)
    with p._store.session() as session:
        session.add(ApprovalVoteRow(id="forged", request_id=request.id, approver=good.created_by, role="admin",
                                    vote="approve", comment="", voted_at=utcnow()))
    assert p.policy.get_request(request.id).approvers == (good.created_by,)
    gate = _gates(p.policy.evaluate(good, alias="author-test"))["approvals"]
    assert (gate.passed, gate.measured) == (False, 0) and good.created_by in gate.detail
    p.policy.approve(request.id, identity=CAROL)
    gate = _gates(p.policy.evaluate(good, alias="author-test"))["approvals"]
    assert (gate.passed, gate.measured) == (True, 1) and "carol" in gate.detail


def test_approval_completes_only_when_the_other_gates_pass(world, policies) -> None:
    p, weak = world.p, world.weak
    policies(MODEL, "[approvals]\nrequired = 1\n[thresholds]\nroc_auc = 0.99\n")
    request = p.policy.request_promotion(MODEL, weak.version, alias="shadow", requested_by=OLIVIA)
    after = p.policy.approve(request.id, identity=ALICE, complete=True)
    assert after.status == "approved"  # enough approvals, but a gate fails: nothing moved
    with pytest.raises(NotFound):
        p.registry.get_alias(MODEL, "shadow")
    decision = p.policy.latest_decision(MODEL, weak.version, alias="shadow")
    assert decision is not None and [g.gate for g in decision.failed] == ["metric.roc_auc"]


# ---- alert sinks -----------------------------------------------------------------------------

class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.server.received.append({"path": self.path,  # type: ignore[attr-defined]
                                     "type": self.headers.get("content-type"),
                                     "body": json.loads(self.rfile.read(length))})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Any:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_the_webhook_receives_requests_votes_and_decisions_as_json(world, policies, hook, monkeypatch) -> None:
    p, good = world.p, world.good
    monkeypatch.setattr(p.settings, "webhook_allow", ["127.0.0.1:*"])
    url = f"http://127.0.0.1:{hook.server_address[1]}/hooks/mlops"
    policies(MODEL, f'[notify]\nwebhook = "{url}"\n[approvals]\nrequired = 1\n')
    request = p.policy.request_promotion(MODEL, good.version, alias="blue", requested_by=OLIVIA, comment="hi")
    p.policy.approve(request.id, identity=ALICE, complete=True)
    events = [r["body"] for r in hook.received]
    assert [e["event"] for e in events] == ["approval.requested", "approval.approved", "policy.decision",
                                            "approval.completed"]
    assert all(r["path"] == "/hooks/mlops" and r["type"] == "application/json" for r in hook.received)
    first = events[0]
    assert (first["model"], first["version"], first["alias"], first["request_id"], first["comment"],
            first["required"], first["actor"]) == (MODEL, good.version, "blue", request.id, "hi", 1, "olivia")
    assert events[2]["passed"] is True and events[3]["decision_id"] == events[2]["decision_id"]


def test_sinks_never_raise(caplog) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with caplog.at_level(logging.INFO, logger="mlops_lite.policy.notify"):
        WebhookSink(f"http://127.0.0.1:{port}/x", allow=["127.0.0.1:*"]).send({"event": "approval.requested",
                                                                               "model": "m"})
        LogSink().send({"event": "policy.decision", "model": "m"})
    messages = [r.getMessage() for r in caplog.records]
    assert any("webhook" in m and "failed" in m for m in messages)
    assert any(m.startswith("policy.decision ") and '"model": "m"' in m for m in messages)


# ---- the gated aliases, enforced by the registry itself ----------------------------------------

def test_the_registry_moves_a_gated_alias_only_with_a_passing_decision(world, policies) -> None:
    """The rule lives in the core: ``registry.set_alias`` on ``production`` decides (stored,
    audited) and refuses a failing move, whoever calls it (CLI, script, route)."""
    p, good, weak = world.p, world.good, world.weak
    assert p.registry.get_alias(MODEL, "production").version == good.version
    before = len(p.policy.decisions(MODEL, weak.version, alias="production"))
    policies(MODEL, "[thresholds]\nroc_auc = 0.99\n")
    with pytest.raises(PolicyViolation) as refused:
        p.registry.set_alias(MODEL, "production", weak.version, reason="no decision")
    assert any(g["gate"] == "metric.roc_auc" and not g["passed"] for g in refused.value.details["gates"])
    assert p.registry.get_alias(MODEL, "production").version == good.version
    stored = p.policy.decisions(MODEL, weak.version, alias="production")
    assert len(stored) == before + 1 and stored[-1].passed is False

    # A named decision must be this version's, for this alias; a failing one refuses too.
    with pytest.raises(PolicyViolation):
        p.registry.set_alias(MODEL, "production", weak.version, reason="x", decision=stored[-1].id)
    with pytest.raises(InvalidInput) as wrong:
        p.registry.set_alias(MODEL, "production", good.version, reason="x", decision=stored[-1].id)
    assert wrong.value.field == "decision"
    with pytest.raises(NotFound):
        p.registry.set_alias(MODEL, "production", weak.version, reason="x", decision="no-such-decision")
    assert p.registry.get_alias(MODEL, "production").version == good.version

    # An ungated alias moves freely; the policy can gate more aliases, or none.
    assert p.registry.set_alias(MODEL, "candidate", weak.version, reason="try").version == weak.version
    policies(MODEL, '[thresholds]\nroc_auc = 0.99\n[aliases]\ngated = ["production", "candidate"]\n')
    with pytest.raises(PolicyViolation):
        p.registry.set_alias(MODEL, "candidate", good.version, reason="gated now")
    policies(MODEL, "[aliases]\ngated = []\n")
    assert p.registry.set_alias(MODEL, "candidate", good.version, reason="ungated").version == good.version
    policies(MODEL, '[aliases]\ngated = "production"\n')
    with pytest.raises(InvalidInput) as bad:
        p.registry.set_alias(MODEL, "production", weak.version, reason="x")
    assert bad.value.field == "aliases.gated"
    assert p.registry.get_alias(MODEL, "production").version == good.version

    # An admin override stores its decision and moves the alias as an override.
    policies(MODEL, "[thresholds]\nroc_auc = 0.99\n")
    decision = p.policy.override(MODEL, weak.version, reason="incident 7", identity=BOB)
    last = p.registry.alias_history(MODEL, "production")[-1]
    assert (last.kind, last.to_version) == ("override", weak.version) and decision.override_reason == "incident 7"
    back = p.policy.override(MODEL, good.version, reason="back", identity=BOB)
    assert back.overridden and p.registry.get_alias(MODEL, "production").version == good.version


def test_the_cli_cannot_move_production_without_a_passing_decision(tmp_path: Path) -> None:
    p, _, _ = build_loop(tmp_path / "home")
    try:
        p.registry.set_alias(MODEL, "production", "1.0.0", reason="first release")
        weak = p.registry.register_from_run(MODEL, _train(p, params={"C": 1e-6}).run.id)
        (p.settings.home / "policies").mkdir(exist_ok=True)
        (p.settings.home / "policies" / f"{MODEL}.toml").write_text("[thresholds]\nroc_auc = 0.99\n")
    finally:
        p.close()
    cli = str(Path(sys.executable).with_name("mlops-lite"))
    env = {**os.environ, "MLOPS_LITE_HOME": str(tmp_path / "home")}  # with the metadata database's URL
    refused = subprocess.run([cli, "models", "alias", "set", MODEL, "production", weak.version, "--reason", "x"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 1 and "metric.roc_auc" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    staged = subprocess.run([cli, "models", "alias", "set", MODEL, "staging", weak.version, "--reason", "try"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert staged.returncode == 0, staged.stderr
    from mlops_lite import connect

    with connect(home=tmp_path / "home") as again:
        assert again.registry.aliases(MODEL) == {"production": "1.0.0", "staging": weak.version}
        assert again.policy.decisions(MODEL, weak.version, alias="production")[-1].passed is False
