"""The console's frame, driven with a Pilot over a real platform (local, and over HTTP
with a token per role): sections, drill-down and back along the breadcrumb, help, the
filter, role-aware actions, and a lost connection that shows and recovers."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable

from mlops_lite.errors import BackendUnavailable
from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.screens.base import ConsoleScreen
from tui.widgets import Breadcrumb, FilterTable, HelpScreen

pytestmark = pytest.mark.anyio


def crumb(app: OperatorConsole) -> str:
    return str(app.screen.query_one(Breadcrumb).content)


def keys_shown(app: OperatorConsole) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


def shown_rows(app: OperatorConsole) -> list[str]:
    table = app.screen.query_one(FilterTable)
    return [str(k.value) for k in table.table.rows]


async def test_sections_drill_down_and_back(served: Served) -> None:
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, ConsoleScreen) and app.screen.TITLE == "Pulse"
        assert shown_rows(app) == ["loans"]
        assert crumb(app).startswith("mlops-lite › Pulse")
        assert "local: test · local:" in crumb(app) and "(admin)" in crumb(app)
        await pilot.press("enter")
        await settle(app, pilot)
        assert crumb(app).startswith("mlops-lite › Pulse › loans")
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen.TITLE == "Pulse"
        await pilot.press("2")
        await settle(app, pilot)
        assert app.screen.TITLE == "Models" and shown_rows(app) == ["loan-default"]
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("1")
        await settle(app, pilot)
        assert app.screen.TITLE == "Pulse"


async def test_slash_filters_the_table_and_escape_clears_it(served: Served) -> None:
    served.local.deployments.deploy("other", "loan-default", "1.0.0")
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert sorted(shown_rows(app)) == ["loans", "other"]
        await pilot.press("slash", "o", "t", "h")
        assert shown_rows(app) == ["other"]
        await pilot.press("escape")
        assert sorted(shown_rows(app)) == ["loans", "other"]
        assert isinstance(app.focused, DataTable)


@pytest.mark.parametrize(("role", "may_promote"), [("viewer", False), ("operator", True), ("approver", True)])
async def test_write_actions_follow_the_role(served: Served, role: str, may_promote: bool) -> None:
    with served.remote(role) as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(app, pilot)
            assert f"console-{role} ({role})" in crumb(app)
            await pilot.press("enter")
            await settle(app, pilot)
            assert ("promote" in keys_shown(app)) is may_promote


async def test_read_only_hides_every_write_action(served: Served) -> None:
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600, read_only=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert "promote" not in keys_shown(app) and "read-only" in crumb(app)


class Flaky:
    """A platform whose server goes away and comes back: ``down`` makes every call raise."""

    def __init__(self, platform: Any) -> None:
        self._platform = platform
        self.down = False

    def __getattr__(self, name: str) -> Any:
        if self.down and name not in ("close",):
            raise BackendUnavailable("cannot reach mlops-lite at http://127.0.0.1:9: connection refused")
        return getattr(self._platform, name)


async def test_a_lost_connection_shows_and_recovers(served: Served) -> None:
    flaky = Flaky(served.local)
    app = OperatorConsole(flaky, source="remote: http://127.0.0.1:9", refresh_seconds=3600)  # type: ignore[arg-type]
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert "loans" in shown_rows(app)
        flaky.down = True
        await pilot.press("r")
        await settle(app, pilot)
        assert app.is_running and "connection lost" in crumb(app)
        assert "loans" in shown_rows(app)  # what was shown stays
        flaky.down = False
        await pilot.press("r")
        await settle(app, pilot)
        assert "connection lost" not in crumb(app)


async def test_the_mouse_drills_in_and_the_footer_keys_click(served: Served) -> None:
    """A click on the highlighted row opens it (as enter does); a click on a footer key runs it."""
    from textual.widgets import DataTable

    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        row = [str(k.value) for k in table.rows].index("loans")
        table.move_cursor(row=row)
        await pilot.click(DataTable, offset=(2, 1 + row))
        await pilot.click(DataTable, offset=(2, 1 + row))
        await settle(app, pilot)
        assert crumb(app).startswith("mlops-lite › Pulse › loans")
        await pilot.press("escape")
        await settle(app, pilot)
        help_key = next(k for k in app.screen.query("FooterKey") if getattr(k, "action", "") == "help")
        await pilot.click(help_key)
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
