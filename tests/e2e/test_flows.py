"""The Prefect flows against a real Prefect test API and a real local platform."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import DATA


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

    home = str(bound.settings.home)
    state = flows.release_loop(home, str(DATA / "loans.csv"), return_state=True)
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

    again = flows.release_loop(home, str(DATA / "loans.csv"))
    assert again["commit"] == result["commit"] and again["version"] == "1.0.0"
    assert again["revision"] == 2


def test_flow_runs_are_recorded_by_prefect(bound) -> None:
    import anyio
    from prefect.client.orchestration import get_client

    import flows

    state = flows.ingest_flow(str(bound.settings.home), str(DATA / "loans.csv"), return_state=True)

    async def read():
        async with get_client() as client:
            return await client.read_flow_run(state.state_details.flow_run_id)

    run = anyio.run(read)
    assert run.name == "ingest loans/loans/train.csv@main"
    assert run.state.is_completed()


def test_bad_input_fails_fast_without_retries_and_changes_nothing(bound, tmp_path: Path) -> None:
    import flows

    state = flows.ingest_flow(str(bound.settings.home), str(tmp_path / "missing.csv"), return_state=True)
    assert state.is_failed()
    assert "no such file" in str(state.result(raise_on_failure=False))
    assert bound.data.repositories() == []


def test_a_failing_gate_fails_the_deploy_flow_and_moves_nothing(bound) -> None:
    import flows

    home = str(bound.settings.home)
    result = flows.release_loop(home, str(DATA / "loans.csv"))
    bound.policy.min_roc_auc = 0.999
    state = flows.deploy_flow(home, "loans", "loan-default", result["version"], return_state=True)
    assert state.is_failed()
    assert "metric.roc_auc" in str(state.result(raise_on_failure=False))
    assert bound.deployments.get("loans").revision == result["revision"]
