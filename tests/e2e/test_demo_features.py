"""The demo's feature store part, as a new user meets it: ``mlops-lite demo`` twice on a
fresh home (a subprocess each), then the home read back. A model is trained through the
``loan-default-by-customer`` feature service at a pinned data commit, deployed as
``loans-by-customer`` and answered by customer id; the sample data behind it is
generated deterministically and carries a label signal only a point-in-time join finds."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops_lite.samples import LOAN_FEATURES

CLI = str(Path(sys.executable).with_name("mlops-lite"))
DATA = Path(__file__).resolve().parents[2] / "data"
SERVICE = LOAN_FEATURES.service
DEPLOYMENT = "loans-by-customer"


@dataclass(frozen=True)
class DemoHome:
    home: Path
    first: str  # the first run's stdout
    second: str


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoHome]:
    home = tmp_path_factory.mktemp("demo-features") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"MLOPS_LITE_HOME": str(home), "COLUMNS": "220"})
    outs = []
    for _ in range(2):
        done = subprocess.run([CLI, "demo", "--requests", "20", "--no-loop"], env=env, capture_output=True, text=True,
                              timeout=400)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        outs.append(" ".join(done.stdout.split()))
    yield DemoHome(home, outs[0], outs[1])


def _open(home: Path):  # type: ignore[no-untyped-def]
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local

    return open_local(load_settings(home=home))


@pytest.mark.slow
def test_the_demo_applies_the_definitions_once(demo_home: DemoHome) -> None:
    with _open(demo_home.home) as platform:
        current = {(r.kind, r.name) for r in platform.features.list()}
        assert current == {("entity", "customer"), ("feature_view", "customer_history"),
                           ("on_demand", "loan_burden"), ("feature_service", SERVICE)}
        # the second run applied the same text: no new version of anything
        assert len(platform.features.history("feature_view", "customer_history")) == 1
        assert len(platform.features.versions(SERVICE)) == 1
        version = platform.features.service(SERVICE).version
    assert f"{SERVICE} version {version} (4 definition(s) changed" in demo_home.first, demo_home.first
    assert f"{SERVICE} version {version} (0 definition(s) changed" in demo_home.second, demo_home.second
    assert "customer_history: 250 keys (full, 250 written)" in demo_home.first
    assert "customer_history: 250 keys (incremental, 0 written)" in demo_home.second


@pytest.mark.slow
def test_the_training_set_is_pinned_at_the_commit_the_run_cites(demo_home: DemoHome) -> None:
    with _open(demo_home.home) as platform:
        sets = platform.features.training_sets(SERVICE)
        assert len(sets) == 1, sets  # the same commit, definitions and entity rows both runs
        record = sets[0]
        main = platform.data.repo("loans").commit("main").id
        assert record.commits == {"loans": main}
        assert record.entities["commit"] == main and record.entities["path"] == LOAN_FEATURES.applications_path
        assert record.rows == 1600
        table = platform.features.training_set_table(record.id)
        rows = table.to_pylist()
        # applications from customers the history never saw (ids 901..) have no features
        unknown = [r for r in rows if r["customer_id"] > 900]
        assert unknown and all(r["n_late_payments"] is None for r in unknown)
        runs = [r for r in platform.tracking.list_runs() if r.tags.get("feature_service") == SERVICE]
        assert runs and all(r.tags["training_set"] == record.id and r.data_commits[0] == main for r in runs)
    assert f"{record.id}: 1600 rows, point in time at loans@{main[:12]}" in demo_home.first


@pytest.mark.slow
def test_loans_by_customer_serves_a_version_trained_through_the_service(demo_home: DemoHome) -> None:
    with _open(demo_home.home) as platform:
        deployment = platform.deployments.get(DEPLOYMENT)
        version = platform.registry.get_version(deployment.model, deployment.version)
        bound = version.signature["feature_service"]
        assert bound["name"] == SERVICE
        assert bound["version"] == platform.features.service(SERVICE).version
        assert bound["training_set"] == platform.features.training_sets(SERVICE)[0].id
        assert bound["join_keys"] == {"customer_id": "int64"}
        inputs = {i["name"] for i in version.signature["inputs"]}
        assert {"n_late_payments", "credit_utilization", "monthly_payment", "loan_amount"} <= inputs
        assert "customer_id" not in inputs and "event_timestamp" not in inputs
        # the second run trained the same bytes: the same version, deployed again
        assert (deployment.version, deployment.revision) == ("1.0.0", 2)

        answer = platform.features.predict(DEPLOYMENT, [{"customer_id": 42, "loan_amount": 15000.0,
                                                         "term_months": 36}])
        assert (answer.model, answer.version) == (deployment.model, "1.0.0")
        assert answer.predictions[0] in (0, 1) and 0.0 <= answer.probabilities[0][-1] <= 1.0
    assert ('POST /v1/deployments/loans-by-customer/predict {"entities": [{"customer_id": 42, "loan_amount": '
            '15000.0, "term_months": 36}]} -> default') in demo_home.first, demo_home.first
    assert "POST /v1/features/loan-default-by-customer: customer 42: present" in demo_home.first
    assert f"from {SERVICE}@1.0.0" in demo_home.first
    for out in (demo_home.first, demo_home.second):
        assert "customer 42: present" in out and ": expired" in out and ": missing" in out, out


@pytest.mark.slow
def test_the_gate_measures_the_model_on_its_training_sets_held_out_slice(demo_home: DemoHome) -> None:
    with _open(demo_home.home) as platform:
        deployment = platform.deployments.get(DEPLOYMENT)
        version = platform.registry.get_version(deployment.model, deployment.version)
        gates = {g.gate: g for g in platform.policy.evaluate(version)}
        gate = gates["metric.roc_auc"]
        assert gate.passed, gate.detail
        assert gate.measured >= platform.settings.min_roc_auc
        assert gate.evidence["data"]["training_set"] == version.signature["feature_service"]["training_set"]
        # the claim is checked on the same rows the run held out: the figures agree
        assert abs(gate.measured - version.metrics["roc_auc"]) < 1e-6
        assert gate.measured > 0.75


@pytest.mark.slow
def test_the_monitor_checks_loans_by_customer_against_its_training_set(demo_home: DemoHome) -> None:
    """The window's reference is the stored training set (the entity rows lack the features),
    and the by-customer model, trained on the newest commit of loans, sees no new data."""
    from mlops_lite.monitoring.loop import reference_of

    with _open(demo_home.home) as platform:
        deployment = platform.deployments.get(DEPLOYMENT)
        reference, features = reference_of(platform, deployment.model, deployment.version)
        assert {"n_late_payments", "monthly_payment"} <= {name for name, _ in features}
        left_out = platform.registry.get_version(deployment.model, deployment.version).metrics["rows_without_features"]
        assert left_out > 0 and reference.num_rows == 1600 - left_out  # the rows it trained from
        check = platform.loop.check(DEPLOYMENT)
        assert check["retrain"] is False and "new data" not in check["reason"], check


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("mlops_lite_sample_features_generate", DATA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generator_writes_the_same_bytes_each_time(tmp_path: Path) -> None:
    gen = _generator()
    first = gen.write_features(tmp_path / "a")
    second = gen.write_features(tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() == (DATA / a.name).read_bytes(), f"{a.name} differs from `python data/generate.py`"
    assert sum(p.stat().st_size for p in first) < 400 * 1024


def test_the_history_has_late_corrections_churn_and_unknown_applicants() -> None:
    import duckdb

    con = duckdb.connect()
    history, applications = DATA / LOAN_FEATURES.history, DATA / LOAN_FEATURES.applications
    corrected = con.execute(f"SELECT count(*) FROM (SELECT customer_id, event_timestamp FROM read_csv('{history}') "
                            "GROUP BY ALL HAVING count(*) > 1 AND count(DISTINCT created_timestamp) = 2)").fetchone()
    assert corrected is not None and corrected[0] > 20
    stale = con.execute(f"SELECT count(*) FROM (SELECT customer_id, max(event_timestamp) AS last FROM "
                        f"read_csv('{history}') GROUP BY ALL) WHERE last < TIMESTAMP '2026-01-01' - INTERVAL 120 DAY"
                        ).fetchone()
    assert stale is not None and stale[0] > 10
    unknown = con.execute(f"SELECT count(*) FROM read_csv('{applications}') WHERE customer_id NOT IN "
                          f"(SELECT customer_id FROM read_csv('{history}'))").fetchone()
    assert unknown is not None and unknown[0] > 20


def test_the_label_follows_the_history_as_of_each_application() -> None:
    """The default was drawn from the (corrected) snapshot as of the application: late
    payments joined point in time rank defaults better than the customer's latest ones."""
    import duckdb
    from sklearn.metrics import roc_auc_score

    con = duckdb.connect()
    history, applications = DATA / LOAN_FEATURES.history, DATA / LOAN_FEATURES.applications
    snapshots = (f"(SELECT * FROM read_csv('{history}') QUALIFY row_number() OVER "
                 "(PARTITION BY customer_id, event_timestamp ORDER BY created_timestamp DESC) = 1)")
    as_of = con.execute(f"SELECT a.\"default\", h.n_late_payments FROM read_csv('{applications}') a ASOF JOIN "
                        f"{snapshots} h ON a.customer_id = h.customer_id AND a.event_timestamp >= h.event_timestamp"
                        ).fetchall()
    latest = con.execute(f"SELECT a.\"default\", h.n_late_payments FROM read_csv('{applications}') a JOIN "
                         f"(SELECT * FROM {snapshots} QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY "
                         "event_timestamp DESC) = 1) h USING (customer_id)").fetchall()
    assert len(as_of) == len(latest) > 1400

    def auc(rows: list[tuple[int, int]]) -> float:
        return float(roc_auc_score([r[0] for r in rows], [r[1] for r in rows]))

    assert auc(as_of) > 0.78
    assert auc(as_of) > auc(latest) + 0.03


def test_the_feature_flows_parameters_are_checked_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from flows.features import apply_definitions, features_apply_flow, materialize_flow, train_features_flow
    from mlops_lite.config import load_settings
    from mlops_lite.errors import InvalidInput
    from mlops_lite.flow_params import check_flow_params

    monkeypatch.delenv("MLOPS_LITE_INGEST_DIRS", raising=False)
    monkeypatch.delenv("MLOPS_LITE_URL", raising=False)
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    (home / "mlops-lite.toml").write_text("")
    settings = load_settings(home=home)
    good = {"home": str(home), "source": str(DATA / LOAN_FEATURES.definitions), "ref": "main", "views": None,
            "mode": "full", "as_of": "2026-01-01T00:00:00+00:00", "service": SERVICE, "repository": "loans",
            "path": LOAN_FEATURES.applications_path, "target": "default", "exclude": None,
            "timestamp_field": "event_timestamp"}
    for flow in (features_apply_flow, materialize_flow, train_features_flow):
        names = list(inspect.signature(flow.fn).parameters)
        check_flow_params(flow.name, {n: good[n] for n in names}, settings=settings)
    for field, value in [("service", "../x"), ("service", "a b"), ("views", "customer_history"),
                         ("views", ["a;b"]), ("mode", "latest"), ("as_of", "yesterday"), ("timestamp_field", 3),
                         ("source", "/etc/passwd")]:
        with pytest.raises(InvalidInput) as caught:
            check_flow_params("materialize", {**good, field: value}, settings=settings)
        assert caught.value.field == field, caught.value
    # a Python definitions file runs code: a flow run never applies one
    script = home / "inbox" / "defs.py"
    script.write_text("raise SystemExit('ran')\n")
    with pytest.raises(InvalidInput) as caught:
        apply_definitions.fn(str(home), str(script), "main")
    assert caught.value.field == "source"
