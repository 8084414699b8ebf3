"""The Pulse screen over a real platform with real traffic: every deployment with its
split, req/s, latency, error rate, sparklines, drift status and open alerts; enter drills
in; a viewer over HTTP sees the same figures as an operator (``monitoring.windows``); it
renders at 80x24."""

from __future__ import annotations

import time
from typing import Any

import pyarrow.csv as pacsv
import pytest

from mlops_lite.alerts import Observation
from mlops_lite.errors import InvalidInput
from tests.conftest import DATA
from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.charts import BLOCKS, Windows, spark
from tui.screens.deployment import DeploymentScreen
from tui.screens.pulse import PulseScreen
from tui.widgets import FilterTable

pytestmark = pytest.mark.anyio


def feature_rows(platform: Any, n: int = 5, model: str = "loan-default", version: str = "1.0.0") -> list[dict[str, Any]]:
    """Held-out rows with only the inputs of ``model@version``."""
    names = [s["name"] for s in platform.registry.get_version(model, version).signature["inputs"]]
    rows = pacsv.read_csv(DATA / "loans_holdout.csv").to_pylist()[:n]
    return [{k: row[k] for k in names} for row in rows]


def traffic(platform: Any, name: str, requests: int, *, failed: int = 0) -> None:
    rows = feature_rows(platform)
    for _ in range(requests):
        platform.deployments.predict(name, rows)
    for _ in range(failed):
        with pytest.raises(InvalidInput):
            platform.deployments.predict(name, [{"not_a_feature": 1.0}])
    platform.monitoring.flush()


def cells(app: OperatorConsole, key: str) -> dict[str, str]:
    table = app.screen.query_one(FilterTable)
    row = next(r for r in table.rows if r.key == key)
    return {column: str(cell) for (column, _), cell in zip(PulseScreen.COLUMNS, row.cells, strict=True)}


def test_spark_scales_and_leaves_gaps() -> None:
    assert spark([0, 1, 2, None, 4]) == "▁▃▅ █"
    assert spark([None, None]) == "  " and spark([3, 3], floor=None) == BLOCKS[0] * 2 and spark([3, 3]) == BLOCKS[-1] * 2
    windows = Windows(4, 60)
    assert len(windows.labels()) == 4 and windows.describe() == "4 windows of 1 min"


async def test_every_deployment_with_its_figures_and_enter_drills_in(served: Served) -> None:
    served.local.deployments.deploy("pulse-a", "loan-default", "1.0.0")
    traffic(served.local, "pulse-a", 12, failed=3)
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        got = cells(app, "pulse-a")
        assert (got["strategy"], got["split"], got["model"]) == ("single", "1.0.0", "loan-default r1")
        assert float(got["rps"]) == pytest.approx(12 / 300, abs=0.005)
        assert got["p50"].endswith("ms") and got["p99"].endswith("ms")
        assert got["err"] == f"{3 / 15:.1%}"
        assert got["rate_trend"][-1] in BLOCKS and got["err_trend"][-1] in BLOCKS
        assert got["drift"] == "no alert" and got["alerts"] == "0"
        assert "loans" in [r.key for r in app.screen.query_one(FilterTable).rows]
        assert "Deployment pulse-a" in app.palette_items
        svg = app.export_screenshot()
        assert "Deployment" in svg and "pulse-a" in svg
        table = app.screen.query_one(FilterTable)
        table.table.move_cursor(row=[r.key for r in table.rows].index("pulse-a"))
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, DeploymentScreen) and app.screen.deployment == "pulse-a"


async def test_drift_and_open_alerts_show_and_clear(served: Served) -> None:
    served.local.deployments.deploy("pulse-b", "loan-default", "1.0.0")
    served.local.alerts.evaluate([Observation("drift.share", "pulse-b", 0.6, {"psi": {"f_income": 0.4}})])
    try:
        app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(app, pilot)
            got = cells(app, "pulse-b")
            assert got["drift"] == "firing share 0.60" and got["alerts"] == "1 warning"
            served.local.alerts.evaluate([Observation("drift.share", "pulse-b", 0.0, {})])
            await pilot.press("r")
            await settle(app, pilot)
            got = cells(app, "pulse-b")
            assert got["drift"] == "no alert" and got["alerts"] == "0"
    finally:
        served.local.alerts.evaluate([Observation("drift.share", "pulse-b", 0.0, {})])


async def test_a_canary_shows_its_split(served: Served) -> None:
    from tests.tui.test_deployment import candidate_version

    version = candidate_version(served)
    served.local.deployments.deploy("pulse-c", "loan-default", "1.0.0")
    served.local.deployments.canary("pulse-c", "loan-default", version, weight=0.25)
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert cells(app, "pulse-c")["split"] == f"1.0.0 75% · {version} 25%"


@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_over_http_figures_follow_the_role(served: Served, role: str) -> None:
    traffic(served.local, "loans", 3)
    with served.remote(role) as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            got = cells(app, "loans")
            note = str(app.screen.query_one("#pulse-note").content)
            assert float(got["rps"]) > 0 and got["rate_trend"][-1] in BLOCKS and "windows of 5 min" in note
            assert got["split"] == "1.0.0" or "·" in got["split"]


async def test_a_hundred_deployments_build_off_the_ui_thread_and_show_fast(served: Served) -> None:
    """``load`` makes every string; ``show`` hands rows over: measured for 100 deployments."""
    for i in range(100):
        served.local.deployments.deploy(f"many-{i:03d}", "loan-default", "1.0.0")
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, PulseScreen)
        data = screen.load()
        assert len(data.rows) >= 100
        screen.query_one(FilterTable).set_rows(())
        started = time.perf_counter()
        screen.show(data)
        took = time.perf_counter() - started
        started = time.perf_counter()
        screen.show(data)  # unchanged: no redraw
        again = time.perf_counter() - started
        assert took < 0.5 and again < 0.05, (took, again)
