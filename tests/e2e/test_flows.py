"""The Prefect flows against a real Prefect test API and a real local platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import DATA, FEATURE_EXCLUDE

# The sample's dataset, as a caller names it: the flows name none.
SAMPLE = {"deployment": "loans", "model": "loan-default", "repository": "loans", "path": "loans/train.csv",
          "target": "default", "exclude": list(FEATURE_EXCLUDE), "sensitive": "gender"}


@pytest.fixture
def bound(prefect_harness, home: Path):
    import flows
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local

    platform = open_local(load_settings(home=home))
    flows.bind(platform)
    yield platform
    flows.unbind(platform)
    platform.close()


def test_release_loop_runs_every_step_and_records_lineage(bound) -> None:
    import flows

    bound.data.repo("loans").create(classification="internal")  # the sample is synthetic; a real one: personal

    home = str(bound.settings.home)
    state = flows.release_loop(home, str(DATA / "loans.csv"), **SAMPLE, return_state=True)
    assert state.is_completed()
    result = state.result()
    version = bound.registry.get_version("loan-default", result["version"])
    assert result["version"] == "1.0.0" and result["revision"] == 1
    assert version.data_commits == (result["commit"],) and version.run_id == result["run_id"]
    assert bound.deployments.get("loans").digest == version.digest
    assert bound.tracking.get_run(result["run_id"]).status == "finished"
    assert bound.audit.verify() is None

    # the run's evaluation is a Prefect artifact: quality, fairness, ONNX parity
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"evaluation-{result['run_id'][:12]}"])), limit=1)
    for heading in ("## Quality (held out)", "| roc_auc |", "## Fairness", "| demographic_parity_difference |",
                    "## ONNX parity"):
        assert heading in artifact.data, heading

    again = flows.release_loop(home, str(DATA / "loans.csv"), **SAMPLE)
    assert again["commit"] == result["commit"] and again["version"] == "1.0.0"
    assert again["revision"] == 2


def test_flow_runs_are_recorded_by_prefect(bound) -> None:
    import anyio
    from prefect.client.orchestration import get_client

    import flows

    bound.data.repo("loans").create(classification="internal")  # the sample is synthetic; a real one: personal

    state = flows.ingest_flow(str(bound.settings.home), str(DATA / "loans.csv"), "loans", "loans/train.csv",
                              return_state=True)

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(state.state_details.flow_run_id)

    run = anyio.run(read)
    assert run.name == "ingest loans/loans/train.csv@main"
    assert run.state.is_completed()


def test_bad_input_fails_fast_without_retries_and_changes_nothing(bound, tmp_path: Path) -> None:
    import flows

    state = flows.ingest_flow(str(bound.settings.home), str(tmp_path / "missing.csv"), "loans", "loans/train.csv",
                              return_state=True)
    assert state.is_failed()
    assert "no such file" in str(state.result(raise_on_failure=False))
    assert bound.data.repositories() == []


def test_a_failing_gate_fails_the_deploy_flow_and_moves_nothing(bound) -> None:
    import flows

    bound.data.repo("loans").create(classification="internal")  # the sample is synthetic; a real one: personal

    home = str(bound.settings.home)
    result = flows.release_loop(home, str(DATA / "loans.csv"), **SAMPLE)
    bound.policy.min_roc_auc = 0.999
    state = flows.deploy_flow(home, "loans", "loan-default", result["version"], return_state=True)
    assert state.is_failed()
    assert "metric.roc_auc" in str(state.result(raise_on_failure=False))
    assert bound.deployments.get("loans").revision == result["revision"]


def test_the_flows_name_no_dataset() -> None:
    """The sample is the caller's: nothing in flows/ names its repository, model or columns."""
    import flows

    folder = Path(flows.__file__).parent
    for source in folder.glob("*.py"):
        text = source.read_text().lower()
        for word in ("loans", "loan-default", "gender"):
            assert word not in text, f"{source.name} names {word!r}"


def test_a_retrain_reads_its_recipe_from_the_lineage_of_what_serves(bound, tmp_path: Path) -> None:
    """Another dataset than the sample (its own repository, folder, model and target): the
    closed loop retrains it from the deployment's name alone, with the serving version's
    recipe, on the files of its folder with the fresh file beside them."""
    import pyarrow.csv as pacsv

    import flows
    from mlops_lite.training import TrainingRecipe

    home = str(bound.settings.home)

    def renamed(source: str, rows: slice) -> Path:
        table = pacsv.read_csv(DATA / source).slice(rows.start, rows.stop - rows.start)
        out = tmp_path / f"{source}-{rows.start}.csv"
        pacsv.write_csv(table.rename_columns(["defaulted" if c == "default" else c for c in table.column_names]), out)
        return out

    bound.data.repo("credit").create(classification="internal")
    first = flows.release_loop(home, str(renamed("loans.csv", slice(0, 3000))), deployment="credit",
                               model="credit-risk", repository="credit", path="credit/2025.csv",
                               target="defaulted", exclude=["name", "email", "phone", "gender", "age"],
                               sensitive="age", algorithm="hist_gradient_boosting")
    recipe = TrainingRecipe.of(bound.deployments.lineage("credit"))
    assert (recipe.model, recipe.repository, recipe.path, recipe.pattern) == (
        "credit-risk", "credit", "credit/2025.csv", "credit/*.csv")
    spec = recipe.spec
    assert (spec.target, spec.sensitive, spec.algorithm, spec.seed, spec.test_size) == (
        "defaulted", "age", "hist_gradient_boosting", 42, 0.2)
    assert spec.params == {"max_iter": 100, "random_state": 42}
    assert not {"name", "email", "phone", "gender", "age", "defaulted"} & {*spec.numeric, *spec.categorical}
    assert TrainingRecipe.from_dict(recipe.as_dict()) == recipe
    assert recipe.but(algorithm="random_forest").spec.params == {}  # the recorded params were the other's
    assert recipe.but(params={"max_iter": 50}).spec.params == {"max_iter": 50, "random_state": 42}

    result = flows.retrain_release_flow(home, "credit", str(renamed("loans_drifted.csv", slice(0, 1000))))
    assert result["decision"] == "blocked"  # no fresh labels were served: it stops at the gates
    run = bound.tracking.get_run(result["run_id"])
    assert run.tags["repository"] == "credit" and run.tags["path"] == "credit/*.csv"
    assert run.params["algorithm"] == "hist_gradient_boosting" and run.params["sensitive"] == "age"
    version = bound.registry.get_version("credit-risk", result["version"])
    assert version.signature["target"] == "defaulted" and result["version"] == "1.1.0"
    files = sorted(o.path for o in bound.data.repo("credit").ref(result["commit"]).objects())
    assert files[0] == "credit/2025.csv" and files[1].startswith("credit/fresh-") and len(files) == 2
    assert version.signature["inputs"] == bound.registry.get_version("credit-risk", first["version"]).signature["inputs"]
