"""The Runs & flows section, driven with a Pilot over a real platform (local, and over
HTTP with viewer and operator tokens): the newest runs with their status and metrics, a
run's params, metrics and a chart of each metric's history by step; with no Prefect
server the flows part says so and the runs still show; with Prefect's test server, a
flow run's state and its log tailed live as the flow logs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import RichLog, Static

from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.screens.flow_run import FlowRunScreen
from tui.screens.run import RunScreen
from tui.screens.runs import RunsScreen
from tui.widgets import Breadcrumb, FilterTable

pytestmark = pytest.mark.anyio


def rows(app: OperatorConsole, table_id: str) -> list[str]:
    return [str(k.value) for k in app.screen.query_one(table_id, FilterTable).table.rows]


def crumb(app: OperatorConsole) -> str:
    return str(app.screen.query_one(Breadcrumb).content)


@pytest.fixture(scope="module")
def stepped(served: Served) -> str:
    """A run with a metric logged over steps (loss falling) beside the trained one."""
    with served.local.tracking.start_run("console-steps", experiment="console") as run:
        run.log_params({"lr": 0.1, "epochs": 5})
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1), "score": 0.5 + step / 10}, step=step)
    return str(run.id)


@pytest.fixture(params=["local", "viewer", "operator"])
def console(request: pytest.FixtureRequest, served: Served, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[OperatorConsole]:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # no Prefect server here
    if request.param == "local":
        yield OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
        return
    with served.remote(request.param) as remote:
        yield OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)


async def test_runs_and_a_runs_metric_charts_without_prefect(served: Served, stepped: str,
                                                            console: OperatorConsole) -> None:
    app = console
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        assert rows(app, "#runs") == [r.id for r in served.local.tracking.list_runs(limit=100)]
        assert rows(app, "#runs")[0] == stepped
        note = str(app.screen.query_one("#flows-note", Static).content)
        assert note == "Flow runs: no Prefect server here (`mlops-lite up` runs one beside the API)"
        assert rows(app, "#flows") == [] and "connection lost" not in crumb(app)
        assert "Run console-steps" in " ".join(app.palette_items)

        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunScreen) and crumb(app).startswith("mlops-lite › Runs & flows › console-steps")
        assert rows(app, "#metrics") == ["loss", "score"] and rows(app, "#params") == ["epochs", "lr"]
        history = served.local.tracking.metric_history(stepped, "loss")
        assert app.screen.charted == "loss"
        assert app.screen.chart_points() == [(p.step, p.value) for p in history] and len(history) == 5
        await pilot.press("down")  # the chart follows the cursor
        assert app.screen.charted == "score"
        assert [v for _, v in app.screen.chart_points()] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
        summary = str(app.screen.query_one("#summary", Static).content)
        assert "console-steps" in summary and "finished" in summary and stepped in summary
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)


# --- with Prefect's test server (entering it costs 10-40 s: slow) ------------------------


@pytest.fixture(scope="module")
def prefect_url(prefect_harness: None) -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "operator"])
async def test_a_flow_run_and_its_log_tailed_live(served: Served, prefect_url: str, kind: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow, get_run_logger
    from prefect.logging.handlers import APILogWorker

    monkeypatch.setenv("PREFECT_API_URL", prefect_url)
    go_on = threading.Event()

    @flow(name=f"console-tail-{kind}")
    def tail_me() -> None:
        logger = get_run_logger()
        logger.warning("first line")  # the tests log WARNING and up
        APILogWorker.drain_all(timeout=10)
        go_on.wait(60)
        logger.warning("second line")

    running = threading.Thread(target=tail_me, daemon=True)
    running.start()
    platform: Any = served.local if kind == "local" else served.remote(kind)
    try:
        app = OperatorConsole(platform, source="test", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("6")
            await settle(app, pilot)
            deadline = time.monotonic() + 30
            while not any(r.flow == f"console-tail-{kind}" for r in served.local.flows.runs(limit=20)):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            await pilot.press("r")
            await settle(app, pilot)
            ours = next(r for r in served.local.flows.runs(limit=20) if r.flow == f"console-tail-{kind}")
            assert ours.id in rows(app, "#flows")
            assert "newest flow runs" in str(app.screen.query_one("#flows-note", Static).content)
            flows = app.screen.query_one("#flows", FilterTable)
            flows.focus_table()
            flows.table.move_cursor(row=rows(app, "#flows").index(ours.id))
            await pilot.press("enter")
            await settle(app, pilot)
            screen = app.screen
            assert isinstance(screen, FlowRunScreen) and f"Runs & flows › console-tail-{kind}/{ours.name}" in crumb(app)

            async def until(predicate: Any) -> None:
                deadline = time.monotonic() + 30
                while not predicate():
                    assert time.monotonic() < deadline, [line.message for line in screen.lines]
                    await pilot.press("r")
                    await settle(app, pilot)
                    await asyncio.sleep(0.3)

            await until(lambda: any(line.message == "first line" for line in screen.lines))
            assert "Running" in str(screen.query_one("#summary", Static).content)
            go_on.set()
            await until(lambda: any(line.message == "second line" for line in screen.lines)
                        and screen.flow_run.state == "COMPLETED")
            messages = [line.message for line in screen.lines]
            assert messages.count("first line") == 1 and messages.count("second line") == 1  # appended once
            assert messages.index("first line") < messages.index("second line")
            assert len(screen.query_one("#log", RichLog).lines) >= 2
            assert "Completed" in str(screen.query_one("#summary", Static).content)
    finally:
        go_on.set()
        running.join(30)
        if kind != "local":
            platform.close()


@pytest.mark.slow
async def test_a_viewer_sees_flow_runs_and_is_told_the_log_needs_an_operator(
        served: Served, prefect_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow

    monkeypatch.setenv("PREFECT_API_URL", prefect_url)

    @flow(name="console-viewer")
    def quiet() -> int:
        return 1

    quiet()
    ours = next(r for r in served.local.flows.runs(limit=20) if r.flow == "console-viewer")
    with served.remote("viewer") as remote:
        app = OperatorConsole(remote, source="test", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("6")
            await settle(app, pilot)
            assert ours.id in rows(app, "#flows")
            app.screen.open_row(ours.id, app.screen.query_one("#flows", FilterTable))
            await settle(app, pilot)
            assert isinstance(app.screen, FlowRunScreen)
            log = app.screen.query_one("#log", RichLog)
            assert any("the log needs the operator role over HTTP" in line.text for line in log.lines)
            assert "Completed" in str(app.screen.query_one("#summary", Static).content)
