"""The Audit section, driven with a Pilot over a real platform (local, and over HTTP with
viewer and operator tokens): the chain newest first with the `/` and field filters, a
chain edited behind the platform's back verified with its first bad event named (as
`mlops-lite audit verify` says it), a viewer told plainly that the chain needs the
operator role, and "what did I do" listing an action this console took."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from textual.widgets import Input, Static

from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.screens.audit import AuditScreen, DidScreen, parse_fields
from tui.widgets import Breadcrumb, FilterTable, ResultScreen

pytestmark = pytest.mark.anyio


def rows(app: OperatorConsole, table_id: str = "#events") -> list[str]:
    return [str(k.value) for k in app.screen.query_one(table_id, FilterTable).table.rows]


def verdict(app: OperatorConsole) -> str:
    return str(app.screen.query_one("#verdict", Static).content)


def keys_shown(app: OperatorConsole) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


async def filter_fields(app: OperatorConsole, pilot: Any, value: str) -> None:
    await pilot.press("f")
    field = app.screen.query_one("#fields", Input)
    assert app.focused is field
    field.value = value
    await pilot.press("enter")
    await settle(app, pilot)


@pytest.fixture(params=["local", "operator"])
def console(request: pytest.FixtureRequest, served: Served) -> Iterator[OperatorConsole]:
    if request.param == "local":
        yield OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
        return
    with served.remote(request.param) as remote:
        yield OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)


async def test_the_chain_newest_first_with_field_filters(served: Served, console: OperatorConsole) -> None:
    served.local.registry.set_alias("loan-default", "staging", "1.0.0", reason="for the audit screen")
    app = console
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await settle(app, pilot)
        assert isinstance(app.screen, AuditScreen)
        newest = served.local.audit.events(limit=1000)
        assert rows(app) == [str(e.seq) for e in newest]
        assert f"of {served.local.audit.count()} events" in str(app.screen.query_one("#events").border_title)

        await filter_fields(app, pilot, "action:model.alias.")
        expected = [str(e.seq) for e in newest if e.action.startswith("model.alias.")]
        assert expected and rows(app) == expected

        # object: the object's whole history, read with audit.about, newest first
        await filter_fields(app, pilot, "object:deployment:loans")
        about = served.local.audit.about("deployment:loans")
        assert about and rows(app) == [str(e.seq) for e in reversed(about)]

        actor = newest[0].actor
        await filter_fields(app, pilot, f"actor:{actor[2:8].upper()} action:model.")
        assert rows(app) == [str(e.seq) for e in newest if actor[2:8].lower() in e.actor.lower()
                             and e.action.startswith("model.")]

        before = rows(app)
        await filter_fields(app, pilot, "colour:blue")
        assert "unknown field 'colour'" in verdict(app) and rows(app) == before

        await filter_fields(app, pilot, "")
        await pilot.press("slash", *"token")
        with_token = [str(e.seq) for e in newest
                      if "token" in f"{e.seq} {e.at:%m-%d %H:%M:%S} {e.actor} {e.action} {e.object}".lower()]
        assert with_token and rows(app) == with_token
        await pilot.press("escape")
        await pilot.press("enter")  # the event under the cursor, whole
        await pilot.pause()
        assert isinstance(app.screen, ResultScreen)
        app.save_screenshot("audit-event.svg", str(Path(served.home).parent))


def test_the_field_filter_names_what_is_wrong() -> None:
    fields = parse_fields("actor:alice action:deployment. object:deployment:loans")
    assert (fields.actor, fields.action, fields.object) == ("alice", "deployment.", "deployment:loans")
    assert parse_fields("actor=bob").actor == "bob"
    for bad, says in (("alice", "write field:value"), ("who:alice", "unknown field 'who'"), ("actor:", "field:value")):
        with pytest.raises(ValueError, match=says):
            parse_fields(bad)


async def test_a_viewer_is_told_the_chain_needs_the_operator_role(served: Served) -> None:
    with served.remote("viewer") as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("7")
            await settle(app, pilot)
            assert isinstance(app.screen, AuditScreen) and app.is_running
            said = verdict(app)
            assert "needs the operator role over HTTP" in said and "console-viewer (viewer)" in said
            assert f"It holds {served.local.audit.count()} events" in said
            assert rows(app) == []
            assert "connection lost" not in str(app.screen.query_one(Breadcrumb).content)
            assert "verify" not in keys_shown(app) and "did" in keys_shown(app)
            await pilot.press("d")
            await settle(app, pilot)
            assert isinstance(app.screen, DidScreen)


async def test_a_read_only_console_still_verifies_and_escape_leaves_the_field_filter(served: Served) -> None:
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("7")
        await settle(app, pilot)
        assert {"verify", "did", "fields"} <= keys_shown(app)  # reads, all of them
        await pilot.press("f")
        assert isinstance(app.focused, Input)
        await pilot.press("escape")
        assert not isinstance(app.focused, Input) and isinstance(app.screen, AuditScreen)
        await pilot.press("v")
        await settle(app, pilot)
        assert "audit chain verifies:" in verdict(app)


# --- a chain edited behind the platform's back (a home of its own: the edit breaks it) --


@pytest.fixture(params=["local", "operator"])
def tampered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[OperatorConsole, Any]]:
    from mlops_lite.client import RemotePlatform
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local
    from server import create_app
    from server.runner import serve_in_thread

    settings = load_settings(home=tmp_path / "home")
    init_home(settings)
    local = open_local(settings)
    _, operator = local.tokens.create("console-operator", "operator")
    for name in ("a", "b", "c"):
        local.tokens.create(f"audited-{name}", "viewer")
    try:
        if request.param == "local":
            yield OperatorConsole(local, source="local: test", refresh_seconds=3600), local
            return
        running = serve_in_thread(create_app(local))
        try:
            with RemotePlatform(running.url, operator) as remote:
                yield OperatorConsole(remote, source=f"remote: {running.url}", refresh_seconds=3600), local
        finally:
            running.stop()
    finally:
        local.close()


async def test_verify_names_the_first_bad_event(tampered: tuple[OperatorConsole, Any]) -> None:
    app, local = tampered
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("7")
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        assert "audit chain verifies:" in verdict(app) and f"{local.audit.count()} events" in verdict(app)

        event = local.audit.events(limit=1000)[::-1][2]  # seq 3
        with local._store.engine.begin() as connection:
            connection.execute(text(f"update audit_events set actor = 'mallory' where seq = {event.seq}"))
        await pilot.press("r", "v")
        await settle(app, pilot)
        said = verdict(app)
        assert "audit chain does NOT verify:" in said
        assert f"event seq {event.seq} ({event.action} on {event.object}) does not verify with the audit key" in said
        table = app.screen.query_one("#events", FilterTable)
        assert table.cursor_key == str(event.seq)  # the bad event's row, marked
        app.save_screenshot("audit-tampered.svg", str(local.settings.home.parent))


async def test_what_did_i_do_lists_an_action_of_this_session(served: Served, console: OperatorConsole) -> None:
    app = console
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("7")
        await settle(app, pilot)
        app.perform(title="Move alias staging", target="loan-default", role="operator",
                    call=lambda p: p.registry.set_alias("loan-default", "staging", "1.0.0", reason="from the console"),
                    audit_object="model:loan-default/alias:staging")
        await settle(app, pilot)
        assert isinstance(app.screen, ResultScreen)
        await pilot.press("escape")
        await pilot.press("d")
        await settle(app, pilot)
        assert isinstance(app.screen, DidScreen)
        event = served.local.audit.about("model:loan-default/alias:staging")[-1]
        table = app.screen.query_one("#did", FilterTable)
        assert len(table.rows) == 1
        cells = [str(c) for c in table.rows[0].cells]
        assert cells[1:4] == ["Move alias staging", "loan-default", "ok"]
        assert cells[4] == f"seq {event.seq} {event.action} {event.object} by {event.actor}"
        assert "What did I do › " not in str(app.screen.query_one(Breadcrumb).content)
        assert "Audit › What did I do" in str(app.screen.query_one(Breadcrumb).content)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ResultScreen)
        await pilot.press("escape", "escape")
        await settle(app, pilot)
        assert isinstance(app.screen, AuditScreen)
