"""A home made by the code before the feature store, opened by the current code: the
feature tables are created, the old data and model still read and predict the same,
and the feature store works on it (apply, training set, materialize, online lookup,
training through a feature service, entity-keyed predict)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import text

from mlops_lite.errors import InvalidInput
from tests.conftest import DATA, FEATURE_EXCLUDE, REPO

FIRST_FEATURE_COMMIT = "features: the feature store's core"

OLD_HOME_SCRIPT = """
import json, sys
from pathlib import Path
import pyarrow.csv as pacsv
from mlops_lite import TrainingSpec
from mlops_lite.config import load_settings
from mlops_lite.home import init_home
from mlops_lite.platform import open_local
from sqlalchemy import text

home, data, exclude = sys.argv[1], Path(sys.argv[2]), tuple(sys.argv[3].split(","))
settings = load_settings(home=home)
init_home(settings)
p = open_local(settings)
p.data.repo("loans").create(classification="internal", exist_ok=True)
p.data.ingest("loans", data / "loans.csv", "loans/train.csv")
table = p.data.repo("loans").ref("main").read_table("loans/train.csv").table
spec = TrainingSpec.infer(table, target="default", exclude=exclude, sensitive="gender",
                          algorithm="logistic_regression")
result = p.training.train("loans", "main", "loans/train.csv", spec)
version = p.registry.register_from_run("loan-default", result.run.id)
p.deployments.deploy("loans", version.model, version.version)
features = [*spec.numeric, *spec.categorical]
rows = [{k: r[k] for k in features} for r in pacsv.read_csv(data / "loans_holdout.csv").to_pylist()[:10]]
prediction = p.deployments.predict("loans", rows)
with p._store.engine.connect() as connection:
    tables = sorted(r[0] for r in connection.execute(text(
        "select table_name from information_schema.tables where table_schema = current_schema()")))
import mlops_lite
print(json.dumps({"code": mlops_lite.__file__, "tables": tables, "commit": p.data.repo("loans").commit("main").id, "rows": table.num_rows,
                  "run": result.run.id, "version": version.version, "digest": version.digest,
                  "instances": rows, "predictions": list(prediction.predictions),
                  "probabilities": [list(x) for x in prediction.probabilities]}))
p.close()
"""

DEFINITIONS = """
[[entity]]
name = "customer"
join_keys = {customer_id = "int64"}

[[feature_view]]
name = "history"
entities = ["customer"]
source = {repository = "loans", path = "customers/*.csv"}
ttl = "60d"
features = {n_loans = "int64", balance = "float64"}

[[on_demand]]
name = "ratios"
request = {amount = "float64"}
sources = ["history"]
features = {burden = {dtype = "float64", expression = "amount / (balance + 1)"}}

[[feature_service]]
name = "credit"
features = ["history", "ratios:burden"]
"""


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout


def _before_features() -> str:
    """The parent of the commit that brought the feature store's core."""
    for line in _git("log", "--format=%H %s").splitlines():
        commit, _, subject = line.partition(" ")
        if subject.startswith(FIRST_FEATURE_COMMIT):
            return _git("rev-parse", f"{commit}^").strip()
    raise LookupError(FIRST_FEATURE_COMMIT)


@pytest.fixture
def old_code(tmp_path: Path) -> Iterator[Path]:
    """The code before the feature store, checked out in a worktree of its own (removed after)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and this repository's history (the code before the feature store)")
    try:
        commit = _before_features()
    except (LookupError, subprocess.CalledProcessError):
        pytest.skip(f"no commit starting {FIRST_FEATURE_COMMIT!r} in this checkout's history (a shallow clone?)")
    tree = tmp_path / "old-code"
    _git("worktree", "prune")  # a run killed before its cleanup left an entry whose folder is gone
    _git("worktree", "add", "--detach", str(tree), commit)
    try:
        assert not (tree / "mlops_lite" / "features").exists()
        yield tree
    finally:
        _git("worktree", "remove", "--force", str(tree))
        _git("worktree", "prune")


def _csv(header: str, rows: list[tuple[Any, ...]]) -> bytes:
    return (header + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in rows)).encode()


def test_a_home_made_before_the_feature_store_gets_it(old_code: Path, tmp_path: Path) -> None:
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local

    home = tmp_path / "old-home"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(old_code), "HOME": str(tmp_path),
           # With --postgres, the old code writes the same database the new one reads.
           **({"MLOPS_LITE_DATABASE_URL": os.environ["MLOPS_LITE_DATABASE_URL"]}
              if "MLOPS_LITE_DATABASE_URL" in os.environ else {})}
    made = subprocess.run([sys.executable, "-c", OLD_HOME_SCRIPT, str(home), str(DATA), ",".join(FEATURE_EXCLUDE)],
                          cwd=old_code, env=env, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    old = json.loads(made.stdout.strip().splitlines()[-1])
    assert Path(old["code"]).is_relative_to(old_code)  # the old code made it, not this checkout's
    settings = load_settings(home=home)
    before = set(old["tables"])
    assert "deployments" in before and not any(t.startswith("feature") for t in before)

    with open_local(settings) as platform:
        with platform._store.session() as db:  # type: ignore[attr-defined]
            created = {r[0] for r in db.connection().execute(text(
                "select table_name from information_schema.tables where table_schema = current_schema()"))}
        assert {"feature_definitions", "feature_service_versions", "feature_training_sets", "feature_online",
                "feature_materializations", "feature_served", "feature_overrides"} <= created
        assert before <= created

        # The old data and model read as before.
        loans = platform.data.repo("loans")
        assert loans.commit("main").id == old["commit"]
        assert loans.ref("main").read_table("loans/train.csv").table.num_rows == old["rows"]
        version = platform.registry.get_version("loan-default", old["version"])
        assert (version.digest, version.run_id) == (old["digest"], old["run"])
        prediction = platform.deployments.predict("loans", old["instances"])
        assert list(prediction.predictions) == old["predictions"]
        assert [x for p in prediction.probabilities for x in p] == pytest.approx(
            [x for p in old["probabilities"] for x in p], abs=1e-6)

        # The feature store on the old home.
        history = [(c, f"2024-{m:02d}-01 00:00:00", (c * m) % 7, round(c * 1.5 + m, 2))
                   for c in range(1, 61) for m in range(1, 5)]
        applications = [(c, f"2024-0{m}-15 00:00:00", float(100 + c), int(c > 30)) for c in range(1, 61)
                        for m in (2, 4)]
        branch = loans.branch("customers")
        branch.create()
        branch.upload("customers/history.csv", _csv("customer_id,event_timestamp,n_loans,balance", history))
        branch.upload("applications/a.csv", _csv("customer_id,event_timestamp,amount,default", applications))
        branch.commit("customer history and applications")
        branch.merge_into("main")
        definitions = tmp_path / "features.toml"
        definitions.write_text(DEFINITIONS)
        applied = platform.features.apply(definitions)
        assert applied.changed
        entities = pa.table({"customer_id": pa.array([3, 3, 61], pa.int64()),
                             "event_timestamp": pa.array([datetime(2024, 2, 15), datetime(2023, 12, 1),
                                                          datetime(2024, 2, 15)], pa.timestamp("us")),
                             "amount": [10.0, 10.0, 10.0]})
        table, _ = platform.features.historical("credit", entities, statuses=True)
        rows = table.to_pylist()
        assert (rows[0]["n_loans"], rows[0]["balance"], rows[0]["__status__n_loans"]) == ((3 * 2) % 7, 6.5, "present")
        assert rows[0]["burden"] == pytest.approx(10.0 / 7.5)
        assert [r["__status__balance"] for r in rows[1:]] == ["missing", "missing"]

        materialized, = platform.features.materialize(as_of="2024-03-10T00:00:00+00:00")
        assert (materialized.mode, materialized.keys, materialized.written) == ("full", 60, 60)
        online = platform.features.online("credit", [{"customer_id": 3, "amount": 10.0}, {"customer_id": 61,
                                                                                         "amount": 1.0}],
                                          at="2024-03-10T00:00:00+00:00", log=False)
        assert online.rows[0]["n_loans"] == (3 * 3) % 7 and online.rows[0]["balance"] == 7.5
        assert online.statuses[0] == {"n_loans": "present", "balance": "present", "burden": "present"}
        assert online.statuses[1]["n_loans"] == "missing" and online.rows[1]["balance"] is None

        trained = platform.training.train_features("credit", "loans", "main", "applications/*.csv", target="default")
        assert trained.signature["feature_service"]["version"] == applied.services["credit"]
        registered = platform.registry.register_from_run("credit-model", trained.run.id)
        platform.deployments.deploy("credit", registered.model, registered.version)
        # Served now: customer 3 gets a fresh row; the others' rows are older than the TTL.
        fresh = loans.branch("fresh")
        fresh.create()
        yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
        fresh.upload("customers/recent.csv", _csv("customer_id,event_timestamp,n_loans,balance",
                                                  [(3, yesterday, 1, 2.5)]))
        fresh.commit("customer 3 today")
        fresh.merge_into("main")
        now, = platform.features.materialize()
        assert (now.mode, now.keys) == ("incremental", 60)
        served = platform.features.predict("credit", [{"customer_id": 3, "amount": 10.0}])
        assert served.model == "credit-model" and len(served.predictions) == 1
        with pytest.raises(InvalidInput, match="expired") as stale:
            platform.features.predict("credit", [{"customer_id": 5, "amount": 10.0}])
        assert stale.value.field == "entities[0]"
        # The old deployment still answers beside the new one.
        assert list(platform.deployments.predict("loans", old["instances"]).predictions) == old["predictions"]
