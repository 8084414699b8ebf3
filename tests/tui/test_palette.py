"""The command palette, driven with a Pilot over a real platform (local, and over HTTP
with viewer and operator tokens): it finds objects of sections never shown (a model, a
repository) and opens them, finds a deployment and opens it, offers the actions of the
current screen its role allows (a viewer none that write), and never calls the platform
on the event loop (its objects are read in a thread worker)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from textual.command import CommandInput, CommandList, CommandPalette

from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.screens.base import ConsoleScreen
from tui.widgets import Breadcrumb

pytestmark = pytest.mark.anyio


def crumb(app: OperatorConsole) -> str:
    return str(app.screen.query_one(Breadcrumb).content)


async def search(app: OperatorConsole, pilot: Any, query: str) -> list[str]:
    """Open the palette, type ``query``, answer the hits' titles (best first)."""
    if not isinstance(app.screen, CommandPalette):
        await pilot.press("colon")
        await settle(app, pilot)
    assert isinstance(app.screen, CommandPalette)
    app.screen.query_one(CommandInput).value = query
    for _ in range(20):
        await pilot.pause(0.05)
        await app.workers.wait_for_complete()
    hits = app.screen.query_one(CommandList)
    return [str(hits.get_option_at_index(i).prompt).split("\n")[0] for i in range(hits.option_count)]


async def choose(app: OperatorConsole, pilot: Any, title: str) -> None:
    """Search ``title`` and open the hit of that title."""
    titles = await search(app, pilot, title)
    assert title in titles, titles
    hits = app.screen.query_one(CommandList)
    hits.highlighted = titles.index(title)
    await pilot.press("enter")
    await settle(app, pilot)


@pytest.fixture(params=["local", "viewer", "operator"])
def console(request: pytest.FixtureRequest, served: Served, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[OperatorConsole]:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    if request.param == "local":
        yield OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
        return
    with served.remote(request.param) as remote:
        yield OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)


async def test_the_palette_finds_objects_and_opens_them(served: Served, console: OperatorConsole) -> None:
    app = console
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        # The models and data sections were never shown: their objects come from the catalog.
        assert not any(t.startswith(("Model ", "Repository ")) for t in app.palette_items)
        await choose(app, pilot, "Model loan-default")
        assert app.current_mode == "models" and crumb(app).startswith("mlops-lite › Models › loan-default")
        await choose(app, pilot, "Version loan-default@1.0.0")
        assert crumb(app).startswith("mlops-lite › Models › loan-default › ")
        assert "1.0.0" in crumb(app).split("   ")[0]
        await choose(app, pilot, "Deployment loans")
        assert app.current_mode == "pulse" and crumb(app).startswith("mlops-lite › Pulse › loans")
        await choose(app, pilot, "Repository loans")
        assert app.current_mode == "data" and crumb(app).startswith("mlops-lite › Data › loans")
        run = served.local.tracking.list_runs(limit=1)[0]
        await choose(app, pilot, f"Run {run.name} {run.id[:8]}")
        assert app.current_mode == "runs" and crumb(app).startswith(f"mlops-lite › Runs & flows › {run.name}")
        await choose(app, pilot, "Go to Audit")
        assert app.current_mode == "audit"


@pytest.mark.parametrize(("role", "may_write"), [("viewer", False), ("operator", True)])
async def test_the_palette_offers_the_screens_actions_the_role_allows(served: Served, role: str,
                                                                       may_write: bool) -> None:
    with served.remote(role) as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await pilot.press("enter")  # the deployment's screen
            await settle(app, pilot)
            deployment_screen = app.screen
            titles = await search(app, pilot, "monitor")
            assert ("Monitor (m)" in titles) is may_write, titles
            titles = await search(app, pilot, "promote")
            assert "Promote (p)" not in titles  # no candidate: the screen's check_action disables it
            titles = await search(app, pilot, "refresh")
            assert "Refresh (r)" in titles  # a read: every role
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.screen is deployment_screen
            if may_write:
                await choose(app, pilot, "Monitor (m)")  # runs as the key would
                await settle(app, pilot)
                assert [d.title for d in app.did] and app.did[-1].target == "loans"


class Watched:
    """A platform whose facet calls are recorded with the thread they ran on."""

    def __init__(self, platform: Any, calls: list[tuple[str, bool]]) -> None:
        self._platform, self._calls = platform, calls

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._platform, name)
        if name in ("deployments", "registry", "data", "alerts", "tracking", "flows", "audit", "policy",
                    "monitoring"):
            return _Facet(value, name, self._calls)
        return value


class _Facet:
    def __init__(self, facet: Any, name: str, calls: list[tuple[str, bool]]) -> None:
        self._facet, self._name, self._calls = facet, name, calls

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._facet, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((f"{self._name}.{name}", threading.current_thread() is threading.main_thread()))
            return value(*args, **kwargs)
        return call


async def test_the_palette_reads_the_platform_off_the_event_loop(served: Served) -> None:
    calls: list[tuple[str, bool]] = []
    app = OperatorConsole(Watched(served.local, calls), source="local: test",  # type: ignore[arg-type]
                          refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        calls.clear()
        titles = await search(app, pilot, "loan")
        assert "Model loan-default" in titles and "Repository loans" in titles
        await search(app, pilot, "Deployment")
        read = {name for name, _ in calls}
        assert {"deployments.list", "registry.list_models", "data.repositories"} <= read
        assert [name for name, on_loop in calls if on_loop] == []  # none on the event loop's thread
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")
        assert isinstance(app.screen, ConsoleScreen)


@pytest.mark.slow
async def test_the_palette_finds_a_flow_run_and_opens_its_log(served: Served, prefect_harness: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))

    @flow(name="console-palette")
    def found() -> int:
        return 1

    found()
    ours = next(r for r in served.local.flows.runs(limit=20) if r.flow == "console-palette")
    with served.remote("operator") as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            await choose(app, pilot, f"Flow run console-palette/{ours.name}")
            assert app.current_mode == "runs"
            assert crumb(app).startswith(f"mlops-lite › Runs & flows › console-palette/{ours.name}")
