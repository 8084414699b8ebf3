"""Training through a feature service, asked of a local Platform and a RemotePlatform alike
(the ``api`` fixture, conftest.py): ``training.train_features`` builds a point-in-time
training set of the service at the entity rows' commit, trains on the rows whose features
are present, and registers a version whose signature and lineage name the service version
and the training set; the gates measure it on the slice its training held out of that same
set; no value from after an entity row's time reaches the set; the set's id is pinned by
commit, definitions and entity rows; and a retrain through the recipe builds a new set at
the newer commit.

The data: customers' score history (``customers/``) with created-time ties, and loan
applications (``applications/``, the entity rows) whose label follows the score as of the
application's time. Planted after every application of a customer: rows whose score is
1e9 and whose segment is ``LEAK``; none may appear, and the set must equal the one built
at the commit before they were planted.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops_lite import Conflict
from mlops_lite.training.classifier import split_rows
from tests.contract.conftest import home_of

SERVICE = "credit"
MODEL = "credit-default"
TTL = timedelta(days=45)
LEAK = "LEAK-FUTURE-7f3a"
START = datetime(2024, 1, 1)

DEFINITIONS = """
[[entity]]
name = "customer"
join_keys = {customer_id = "int64"}

[[feature_view]]
name = "history"
entities = ["customer"]
source = {repository = "loans", path = "customers/*.csv"}
timestamp_field = "event_timestamp"
created_timestamp_field = "created"
ttl = "%s"
features = {score = "float64", segment = "string"}

[[feature_service]]
name = "credit"
features = ["history"]
"""


@dataclass(frozen=True)
class History:
    customer: int
    event: datetime
    created: datetime
    score: float
    segment: str


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _history(rng: random.Random, customers: int) -> list[History]:
    rows = []
    for c in range(customers):
        for month in range(1, 7):
            event = datetime(2024, month, 1)
            rows.append(History(c, event, event, round(rng.random(), 4), rng.choice("abc")))
        if c % 7 == 0:  # a tie at the same event time: the later created row wins
            event = datetime(2024, 3, 1)
            rows.append(History(c, event, event + timedelta(days=1), round(rng.random(), 4), "tie"))
    return rows


def _as_of(history: list[History], customer: int, at: datetime) -> History | None:
    """The brute-force point-in-time value: latest event <= at (then latest created), None
    when there is none or it is older than the TTL."""
    rows = [h for h in history if h.customer == customer and h.event <= at]
    if not rows:
        return None
    best = max(rows, key=lambda h: (h.event, h.created))
    return best if at - best.event <= TTL else None


def _applications(rng: random.Random, customers: int, history: list[History]) -> list[tuple[Any, ...]]:
    rows = []
    for c in range(customers):
        moments = [datetime(2024, 3, 15), datetime(2024, 5, 20)]
        if c % 10 == 0:
            moments.append(datetime(2023, 12, 1))  # before any history: missing
        if c % 10 == 1:
            moments.append(datetime(2024, 9, 1))  # the last history is 92 days old: expired
        if c % 10 == 2:
            moments.append(datetime(2024, 6, 1) + TTL)  # exactly the TTL old: present
        if c % 10 == 3:
            moments.append(datetime(2024, 6, 1) + TTL + timedelta(seconds=1))  # a second older: expired
        for at in moments:
            found = _as_of(history, c, at)
            label = int(found.score > 0.5) if found is not None else rng.randint(0, 1)
            if rng.random() < 0.1:
                label = 1 - label
            rows.append((c, at, round(rng.random() * 1000, 2), label))
    return rows


def _csv(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


@dataclass
class FeatureHome:
    api: Any
    history: list[History]
    applications: list[tuple[Any, ...]]
    clean_commit: str  # before the future rows were planted
    planted_commit: str
    definitions: Path


def _populate(api: Any, tmp_path: Path) -> FeatureHome:
    """The data (see the module doc) committed to 'loans' and the definitions applied."""
    rng = random.Random(15)
    customers = 80
    history = _history(rng, customers)
    applications = _applications(rng, customers, history)
    repo = api.data.repo("loans")
    repo.create(classification="internal")
    branch = repo.branch("add")
    branch.create()
    branch.upload("customers/history.csv", _csv("customer_id,event_timestamp,created,score,segment", [
        f"{h.customer},{_ts(h.event)},{_ts(h.created)},{h.score},{h.segment}" for h in history]))
    branch.upload("applications/2024.csv", _csv("customer_id,event_timestamp,amount,default", [
        f"{c},{_ts(at)},{amount},{label}" for c, at, amount, label in applications]))
    branch.commit("history and applications")
    branch.merge_into("main")
    clean_commit = repo.ref("main").resolve()
    last = {c: max(at for cc, at, _, _ in applications if cc == c) for c in range(customers)}
    planted = repo.branch("plant")
    planted.create()
    planted.upload("customers/future.csv", _csv("customer_id,event_timestamp,created,score,segment", [
        f"{c},{_ts(at + delta)},{_ts(at + delta)},1000000000.0,{LEAK}"
        for c, at in last.items() for delta in (timedelta(seconds=1), timedelta(days=20))]))
    planted.commit("values from after every application")
    planted.merge_into("main")
    definitions = tmp_path / "features.toml"
    definitions.write_text(DEFINITIONS % "45d")
    api.features.apply(definitions)
    return FeatureHome(api, history, applications, clean_commit, repo.ref("main").resolve(), definitions)


@pytest.fixture
def home(api: Any, tmp_path: Path) -> Iterator[FeatureHome]:
    yield _populate(api, tmp_path)


def _train(api: Any, **kwargs: Any) -> Any:
    return api.training.train_features(SERVICE, "loans", "main", "applications/*.csv", target="default",
                                       run_name="through-features", experiment="features", **kwargs)


# --- the training set: point in time, no leakage, pinned ---------------------------------------


def test_the_training_set_is_point_in_time_and_plants_from_the_future_never_reach_it(home: FeatureHome) -> None:
    api = home.api
    record = api.features.training_set(SERVICE, repository="loans", path="applications/*.csv", ref="main")
    assert record.commits["loans"] == home.planted_commit
    table = api.features.training_set_table(record.id)
    assert table.num_rows == len(home.applications)
    rows = table.to_pylist()
    assert not any(r["segment"] == LEAK or (r["score"] is not None and r["score"] >= 1e8) for r in rows)
    # Every row against the brute-force reference: the value as of the row's time, TTL per row.
    by_key = {(r["customer_id"], r["event_timestamp"].replace(tzinfo=None)): r for r in rows}
    assert len(by_key) == len(rows)
    outcomes = {"present": 0, "none": 0, "tie": 0, "at the ttl": 0}
    for c, at, _, _ in home.applications:
        row = by_key[(c, at)]
        expected = _as_of(home.history, c, at)
        got = (row["score"], row["segment"])
        assert got == ((expected.score, expected.segment) if expected else (None, None)), (c, at)
        outcomes["present" if expected else "none"] += 1
        outcomes["tie"] += int(expected is not None and expected.segment == "tie")
        outcomes["at the ttl"] += int(expected is not None and at - expected.event == TTL)
    assert outcomes["none"] >= 24 and outcomes["tie"] >= 1 and outcomes["present"] > 100
    assert outcomes["at the ttl"] == 8
    # Nor do the plants influence it: the set at the commit before them holds the same rows.
    before = api.features.training_set(SERVICE, repository="loans", path="applications/*.csv",
                                       ref=home.clean_commit)
    assert before.id != record.id and before.commits["loans"] == home.clean_commit
    clean = api.features.training_set_table(before.id)
    key = ["customer_id", "event_timestamp"]
    assert clean.sort_by([(k, "ascending") for k in key]).equals(table.sort_by([(k, "ascending") for k in key]))


def test_the_training_set_id_is_pinned_by_commit_definitions_and_entity_rows(home: FeatureHome) -> None:
    api = home.api
    first = api.features.training_set(SERVICE, repository="loans", path="applications/*.csv", ref="main")
    again = api.features.training_set(SERVICE, repository="loans", path="applications/*.csv", ref="main")
    assert again.id == first.id and again.service_version == first.service_version
    branch = api.data.repo("loans").branch("fewer")
    branch.create()
    branch.upload("applications/2024.csv", _csv("customer_id,event_timestamp,amount,default",
                                                ["1,2024-03-15 00:00:00,10.0,1", "2,2024-05-20 00:00:00,20.0,0"]))
    branch.commit("two applications")
    other_rows = api.features.training_set(SERVICE, repository="loans", path="applications/*.csv", ref="fewer")
    assert other_rows.id != first.id and other_rows.rows == 2
    home.definitions.write_text(DEFINITIONS % "30d")
    api.features.apply(home.definitions)
    redefined = api.features.training_set(SERVICE, repository="loans", path="applications/*.csv", ref="main")
    assert redefined.service_version != first.service_version and redefined.id != first.id


def test_a_branch_with_uncommitted_entity_rows_is_refused(home: FeatureHome) -> None:
    api = home.api
    branch = api.data.repo("loans").branch("dirty")
    branch.create()
    branch.upload("applications/2024.csv", _csv("customer_id,event_timestamp,amount,default",
                                                ["1,2024-03-15 00:00:00,10.0,1"]))
    runs = api.tracking.count()
    with pytest.raises(Conflict) as refused:
        api.training.train_features(SERVICE, "loans", "dirty", "applications/*.csv", target="default")
    assert "applications/2024.csv" in str(refused.value)
    assert api.tracking.count() == runs


# --- training, registering, gating ---------------------------------------------------------------


def test_train_features_records_the_service_and_the_training_set(home: FeatureHome) -> None:
    api = home.api
    result = _train(api)
    record = api.features.get_training_set(result.run.tags["training_set"])
    assert record.commits["loans"] == home.planted_commit and result.data_commit == home.planted_commit
    tags = api.tracking.get_run(result.run.id).tags
    assert {k: tags[k] for k in ("repository", "path", "ref", "feature_service", "feature_service_version",
                                 "training_set", "entity_timestamp")} == {
        "repository": "loans", "path": "applications/*.csv", "ref": "main", "feature_service": SERVICE,
        "feature_service_version": record.service_version, "training_set": record.id,
        "entity_timestamp": "event_timestamp"}
    bound = result.signature["feature_service"]
    assert bound == {"name": SERVICE, "version": record.service_version, "training_set": record.id,
                     "join_keys": {"customer_id": "int64"}, "timestamp_field": "event_timestamp"}
    inputs = {i["name"] for i in result.signature["inputs"]}
    assert {"score", "segment", "amount"} <= inputs and not inputs & {"customer_id", "event_timestamp", "default"}
    missing = sum(1 for c, at, _, _ in home.applications if _as_of(home.history, c, at) is None)
    assert result.metrics["rows_without_features"] == missing

    version = api.registry.register_from_run(MODEL, result.run.id)
    assert version.signature["feature_service"] == bound
    lineage = api.registry.lineage(MODEL, version.version)
    assert (lineage.feature_service, lineage.feature_service_version, lineage.training_set) == (
        SERVICE, record.service_version, record.id)
    api.deployments.deploy("credit", MODEL, version.version, reason="entity-keyed")
    slot = api.deployments.lineage("credit").slots[0]
    assert (slot.feature_service, slot.feature_service_version, slot.training_set) == (
        SERVICE, record.service_version, record.id)


def test_the_gates_measure_the_slice_its_training_held_out_of_the_training_set(home: FeatureHome) -> None:
    api = home.api
    result = _train(api)
    version = api.registry.register_from_run(MODEL, result.run.id)
    policies = home_of(api) / "policies"
    policies.mkdir(exist_ok=True)
    (policies / f"{MODEL}.toml").write_text("[thresholds]\nroc_auc = 0.6\naccuracy = 0.6\n")
    gates = {g.gate: g for g in api.policy.evaluate(version)}
    auc = gates["metric.roc_auc"]
    assert isinstance(auc.measured, float) and auc.passed and auc.measured >= 0.6, auc
    assert auc.evidence["data"]["training_set"] == result.run.tags["training_set"]
    # The slice is the held-out part of the rows training kept: those with their features present.
    kept = sum(1 for c, at, _, _ in home.applications if _as_of(home.history, c, at) is not None)
    labels = [label for c, at, _, label in home.applications if _as_of(home.history, c, at) is not None]
    assert len(labels) == kept
    _, held_out = split_rows(__import__("numpy").asarray(labels), test_size=float(version.params["test_size"]),
                             seed=int(version.params["seed"]))
    assert auc.evidence["data"]["rows"] == len(held_out)
    # The same rows its training held out: what the gate measures is what the run measured.
    assert auc.evidence["claimed"] == pytest.approx(auc.measured, abs=1e-6)
    assert result.metrics["test_rows"] == len(held_out)
    (policies / f"{MODEL}.toml").write_text("[thresholds]\nroc_auc = 0.9999\n")
    failed = {g.gate: g for g in api.policy.evaluate(version)}["metric.roc_auc"]
    assert not failed.passed and isinstance(failed.measured, float) and failed.measured == auc.measured


# --- the retrain --------------------------------------------------------------------------------


def test_a_retrain_through_the_recipe_builds_a_new_training_set_at_the_newer_commit(home: FeatureHome) -> None:
    from mlops_lite.training.recipe import TrainingRecipe

    api = home.api
    result = _train(api)
    version = api.registry.register_from_run(MODEL, result.run.id)
    api.deployments.deploy("credit", MODEL, version.version, reason="entity-keyed")
    recipe = TrainingRecipe.of(api.deployments.lineage("credit"))
    assert recipe.feature_service == SERVICE and recipe.training_set == result.run.tags["training_set"]
    assert recipe.entity_timestamp == "event_timestamp" and recipe.path == "applications/*.csv"
    branch = api.data.repo("loans").branch("fresh")
    branch.create()
    branch.upload("applications/2025.csv", _csv("customer_id,event_timestamp,amount,default",
                                                ["3,2024-06-02 00:00:00,50.0,1", "4,2024-06-03 00:00:00,60.0,0"]))
    branch.commit("fresh applications")
    branch.merge_into("main")
    newer = api.data.repo("loans").ref("main").resolve()
    retrained = recipe.train(api.training, "main")
    fresh = api.features.get_training_set(retrained.run.tags["training_set"])
    assert fresh.id != recipe.training_set and fresh.commits["loans"] == newer
    assert fresh.rows == len(home.applications) + 2
    assert retrained.signature["feature_service"]["training_set"] == fresh.id
    assert retrained.run.params["algorithm"] == version.params["algorithm"]


# --- the command line ---------------------------------------------------------------------------


def test_the_cli_trains_through_a_feature_service_and_like_follows_its_recipe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from mlops_lite import connect
    from mlops_lite.cli import app

    with connect(home=tmp_path / "home") as platform:
        _populate(platform, tmp_path)
    monkeypatch.setenv("MLOPS_LITE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--feature-service", SERVICE, "--repo", "loans", "--ref", "main",
                                  "--path", "applications/*.csv", "--target", "default", "--register", MODEL,
                                  "--alias", "candidate", "--json"])
    assert trained.exit_code == 0, trained.output
    first = json.loads(trained.output)
    assert first["feature_service"]["name"] == SERVICE and first["version"] == "1.0.0"
    lineage = runner.invoke(app, ["models", "lineage", f"{MODEL}@candidate"])
    assert lineage.exit_code == 0, lineage.output
    assert f"features   service {SERVICE} version {first['feature_service']['version']}, training set " \
           f"{first['feature_service']['training_set']}" in lineage.output
    again = runner.invoke(app, ["train", "--like", f"{MODEL}@candidate", "--repo", "loans", "--ref", "main",
                                "--path", "applications/*.csv", "--algorithm", "random_forest", "--json"])
    assert again.exit_code == 0, again.output
    second = json.loads(again.output)
    assert second["feature_service"]["name"] == SERVICE
    assert second["feature_service"]["training_set"] == first["feature_service"]["training_set"]
    assert second["model_digest"] != first["model_digest"]


# --- the flows: materialize after a merge to main ------------------------------------------------


def test_a_merge_to_main_materializes_the_views_over_that_repository(tmp_path: Path) -> None:
    from flows.context import bind, unbind
    from flows.loop import materialize_features
    from mlops_lite import connect

    with connect(home=tmp_path / "home") as platform:
        bind(platform)
        try:
            home = str(platform.settings.home)
            assert materialize_features.fn(home, "loans") == []  # no definitions: nothing, silently
            _populate(platform, tmp_path)
            assert materialize_features.fn(home, "elsewhere") == []
            assert platform.features.materializations("history") == []
            assert materialize_features.fn(home, "loans") == ["history"]
            done = platform.features.materializations("history")
            assert len(done) == 1 and done[0].data_commit == platform.data.repo("loans").ref("main").resolve()
            assert materialize_features.fn(home, "loans") == ["history"]
            again = platform.features.materializations("history")
            assert len(again) == 2 and again[0].mode == "incremental" and again[0].written == 0
        finally:
            unbind(platform)


@pytest.mark.slow  # the evaluation report is a Prefect artifact: an ephemeral Prefect API starts (~20 s)
def test_the_retrain_flow_trains_a_feature_service_candidate_through_the_service(tmp_path: Path) -> None:
    from flows.closed_loop import _through, read_recipe, train_candidate
    from flows.context import bind, unbind
    from mlops_lite import connect

    with connect(home=tmp_path / "home") as platform:
        bind(platform)
        try:
            home = str(platform.settings.home)
            _populate(platform, tmp_path)
            first = _train(platform)
            version = platform.registry.register_from_run(MODEL, first.run.id)
            platform.deployments.deploy("credit", MODEL, version.version, reason="entity-keyed")
            recipe = read_recipe.fn(home, "credit", None, None)
            assert _through(recipe) == {"feature_service": SERVICE, "entity_timestamp": "event_timestamp",
                                        "service_version": platform.features.service(SERVICE).version}
            commit = platform.data.repo("loans").ref("main").resolve()
            trained = train_candidate.fn(home, "loans", commit, recipe["path"], recipe["spec"], **_through(recipe))
            run = platform.tracking.get_run(trained["run_id"])
            assert run.tags["feature_service"] == SERVICE and run.tags["ref"] == commit
            assert run.tags["training_set"] == first.run.tags["training_set"]  # the same commit and rows: the same set
            table_recipe = {k: v for k, v in recipe.items() if k not in ("feature_service", "service_version")}
            assert _through(table_recipe) == {}
        finally:
            unbind(platform)


# --- views over another repository --------------------------------------------------------------


def test_a_run_cites_every_commit_its_training_set_was_joined_at(home: FeatureHome, tmp_path: Path) -> None:
    """A view over a second repository: the run cites the entity rows' commit first, then the
    other repository's, read from the stored training set (the same locally and over HTTP);
    the gates still measure it; a recorded run whose commit is not its training set's is refused."""
    api = home.api
    bureau = api.data.repo("bureau")
    bureau.create(classification="internal")
    branch = bureau.branch("add")
    branch.create()
    branch.upload("reports/r.csv", _csv("customer_id,event_timestamp,inquiries", [
        f"{c},{_ts(START + timedelta(days=d))},{(c * 7 + d) % 5}" for c in range(80) for d in (0, 60, 120)]))
    branch.commit("bureau reports")
    branch.merge_into("main")
    two = DEFINITIONS % "45d" + """
[[feature_view]]
name = "bureau"
entities = ["customer"]
source = {repository = "bureau", path = "reports/*.csv"}
ttl = "365d"
features = {inquiries = "int64"}
"""
    home.definitions.write_text(two.replace('features = ["history"]', 'features = ["history", "bureau"]'))
    api.features.apply(home.definitions)
    result = _train(api)
    loans, other = home.planted_commit, bureau.ref("main").resolve()
    assert api.tracking.get_run(result.run.id).data_commits == (loans, other)
    assert "inquiries" in {i["name"] for i in result.signature["inputs"]}
    version = api.registry.register_from_run(MODEL, result.run.id)
    assert version.data_commits == (loans, other)
    auc = {g.gate: g for g in api.policy.evaluate(version)}["metric.roc_auc"]
    assert isinstance(auc.measured, float) and auc.evidence["data"]["training_set"] == result.run.tags["training_set"]
    api.deployments.deploy("credit", MODEL, version.version, reason="two repositories")
    slot = api.deployments.lineage("credit").slots[0]
    assert [(c.repository, c.id) for c in slot.commits] == [("loans", loans), ("bureau", other)]
    assert not [gap for gap in slot.missing if "data commit" in gap], slot.missing
    from mlops_lite import InvalidInput

    runs = api.tracking.count()
    with pytest.raises(InvalidInput) as refused:
        api.training.record("forged", data_commit=home.clean_commit, tags=dict(result.run.tags),
                            params=dict(version.params), metrics={}, onnx=api.registry.model_bytes(
                                MODEL, version.version), signature=result.signature)
    assert refused.value.field == "data_commit" and api.tracking.count() == runs
