"""The operator dashboard, driven with a Pilot over a real local Platform."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

import tui
from mlops_lite import (
    BackendUnavailable,
    DeploymentRecord,
    ModelRecord,
    ModelVersionRecord,
    Platform,
    RunRecord,
    TrainingSpec,
    connect,
)
from tui import Dashboard

LOANS_CSV = Path(__file__).resolve().parents[2] / "data" / "loans.csv"
PII = ("name", "email", "phone", "gender", "age")


@dataclass(frozen=True)
class Loaded:
    """A platform holding one trained, registered and deployed model, and what made it."""

    platform: Platform
    commit: str
    run: RunRecord
    version: ModelVersionRecord


def load(home: Path) -> Loaded:
    p = connect(home=home)
    p.data.repo("loans").create(classification="internal", exist_ok=True)
    commit = p.data.ingest("loans", LOANS_CSV, "loans/train.csv")
    table = p.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=PII, sensitive="gender")
    trained = p.training.train("loans", "main", "loans/train.csv", spec)
    version = p.registry.register_from_run("loan-default", trained.run.id)
    p.deployments.deploy("loans", version.model, version.version)
    return Loaded(p, commit.id, trained.run, version)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """Read only: tests that change a platform use ``evolving``."""
    state = load(tmp_path_factory.mktemp("home"))
    yield state
    state.platform.close()


@pytest.fixture(scope="module")
def evolving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Loaded, RunRecord]]:
    """A loaded platform plus a finished random-forest run that tests may register and deploy."""
    state = load(tmp_path_factory.mktemp("home"))
    p = state.platform
    table = p.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=PII, sensitive="gender",
                              algorithm="random_forest")
    forest = p.training.train("loans", "main", "loans/train.csv", spec)
    yield state, forest.run
    p.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class DownPlatform:
    """A platform whose server went away: every facet call raises."""

    remote = True

    def __init__(self) -> None:
        self.registry = self.deployments = self.tracking = self

    def list_models(self) -> list[ModelRecord]:
        raise BackendUnavailable("down")

    def list_versions(self, model: str | None = None) -> list[ModelVersionRecord]:
        raise BackendUnavailable("down")

    def list(self) -> list[DeploymentRecord]:
        raise BackendUnavailable("down")

    def list_runs(self, *, limit: int = 50) -> list[RunRecord]:
        raise BackendUnavailable("down")


async def settle(app: Dashboard, pilot: Pilot[None]) -> None:
    """Let every refresh in flight finish and its rows reach the screen."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def rows(app: Dashboard, table_id: str) -> dict[str, list[object]]:
    table = app.query_one(f"#{table_id}", DataTable)
    return {str(key.value): table.get_row(key) for key in table.rows}


def status(app: Dashboard) -> str:
    return str(app.query_one("#status", Static).content)


def cursor_key(app: Dashboard, table_id: str) -> str | None:
    table = app.query_one(f"#{table_id}", DataTable)
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


def test_the_package_exports_its_public_names() -> None:
    assert tui.__all__ == sorted(tui.__all__) == ["Dashboard", "run_dashboard"]


@pytest.mark.anyio
async def test_first_refresh_fills_the_four_tables(loaded: Loaded) -> None:
    app = Dashboard(loaded.platform, source="local: test-home", refresh_seconds=3600)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        v = loaded.version

        assert app.sub_title == "local: test-home"
        models = rows(app, "models")
        assert list(models) == ["loan-default"]
        assert models["loan-default"][:3] == ["loan-default", "1", "1.0.0"]

        versions = rows(app, "versions")
        assert list(versions) == ["loan-default@1.0.0"]
        assert versions["loan-default@1.0.0"][:6] == [
            "loan-default", "1.0.0", v.digest[:12], f"{v.metrics['roc_auc']:.3f}",
            f"{v.metrics['accuracy']:.3f}", loaded.commit[:12]]

        deployments = rows(app, "deployments")
        assert list(deployments) == ["loans"]
        assert deployments["loans"][:5] == ["loans", "loan-default", "1.0.0", "1", "single"]

        runs = rows(app, "runs")
        assert list(runs) == [loaded.run.id]
        name, state, _, auc, short_id = runs[loaded.run.id]
        assert (name, state, auc, short_id) == (
            loaded.run.name, "finished", f"{loaded.run.metrics['roc_auc']:.3f}", loaded.run.id[:8])

        assert status(app).startswith("last refreshed ")
        assert "error" not in status(app)


@pytest.mark.anyio
async def test_live_refresh_shows_a_new_deployment_and_keeps_the_cursor(
        evolving: tuple[Loaded, RunRecord]) -> None:
    state, forest = evolving
    p = state.platform
    app = Dashboard(p, source="local: test-home", refresh_seconds=0.2)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        assert cursor_key(app, "versions") == "loan-default@1.0.0"

        second = p.registry.register_from_run("loan-default", forest.id)
        p.deployments.deploy("loans", second.model, second.version)
        assert second.version != "1.0.0"

        for _ in range(50):
            await pilot.pause(0.1)
            if rows(app, "deployments")["loans"][2] == second.version:
                break
        await settle(app, pilot)

        assert rows(app, "deployments")["loans"][2] == second.version
        assert list(rows(app, "versions")) == [f"loan-default@{second.version}", "loan-default@1.0.0"]
        # The new version sorts first; the cursor follows the row it was on.
        assert cursor_key(app, "versions") == "loan-default@1.0.0"
        assert len(rows(app, "runs")) == 2


@pytest.mark.anyio
async def test_r_refreshes_now(evolving: tuple[Loaded, RunRecord]) -> None:
    state, _ = evolving
    p = state.platform
    app = Dashboard(p, source="local: test-home", refresh_seconds=3600)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        assert "loans-shadow" not in rows(app, "deployments")

        p.deployments.deploy("loans-shadow", "loan-default", state.version.version)
        await pilot.pause(0.3)
        assert "loans-shadow" not in rows(app, "deployments")

        await pilot.press("r")
        await settle(app, pilot)
        assert rows(app, "deployments")["loans-shadow"][:3] == ["loans-shadow", "loan-default", "1.0.0"]


@pytest.mark.anyio
async def test_a_failing_platform_shows_the_error_and_the_app_keeps_running(loaded: Loaded) -> None:
    app = Dashboard(DownPlatform(), source="remote: http://127.0.0.1:9", refresh_seconds=3600)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        assert status(app) == "error: BackendUnavailable: down (never refreshed)"
        assert app.query_one("#status").has_class("error")

        await pilot.press("r")
        await settle(app, pilot)
        assert app.is_running
        assert "BackendUnavailable: down" in status(app)
        assert rows(app, "models") == {}

        app.platform = loaded.platform  # the server is back
        await pilot.press("r")
        await settle(app, pilot)
        assert status(app).startswith("last refreshed ")
        assert not app.query_one("#status").has_class("error")
        assert list(rows(app, "models")) == ["loan-default"]

        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


@pytest.mark.anyio
async def test_alerts_show_firing_first_with_their_evidence(loaded: Loaded) -> None:
    from mlops_lite.alerts import Observation

    alerts = loaded.platform.alerts
    (fired,) = alerts.evaluate([Observation("drift.max_psi", "loans", 0.48, {"feature": "credit_score"})])
    try:
        app = Dashboard(loaded.platform, source="local: test-home", refresh_seconds=3600)
        async with app.run_test() as pilot:
            await settle(app, pilot)
            shown = rows(app, "alerts")
            assert next(iter(shown)) == fired.alert.id
            assert shown[fired.alert.id][:5] == ["drift-feature", "loans", "firing", "warning", "0.48"]
    finally:
        alerts.evaluate([Observation("drift.max_psi", "loans", 0.01, {})])
