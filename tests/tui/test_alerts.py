"""The Alerts section, driven with a Pilot over a real platform whose monitor fires real
alerts (``alerts.evaluate`` with observations, as the loop feeds it): locally and over
HTTP with viewer and operator tokens. Firing first, the evidence, acknowledge and who,
silence with a duration (a bad one refused in place), the silences and lifting one, and
the server's refusal when a console shows what the token may not do."""

from __future__ import annotations

import html
import io
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Input, Static

from mlops_lite.records import Identity
from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.roles import Access
from tui.screens.alert import AlertScreen, SilenceScreen, SilencesScreen
from tui.screens.alerts import AlertsScreen
from tui.widgets import Breadcrumb, FilterTable, ResultScreen

pytestmark = pytest.mark.anyio

_subjects = itertools.count()


def observe(served: Served, metric: str, subject: str, value: float, **evidence: Any) -> Any:
    from mlops_lite.alerts import Observation

    return served.local.alerts.evaluate([Observation(metric, subject, value, evidence)])


@pytest.fixture
def subject(served: Served) -> Iterator[str]:
    """A subject of its own per test, with a firing accuracy alert, a pending latency one
    and a resolved drift one; every alert is resolved again afterwards."""
    name = f"dep{next(_subjects)}"
    observe(served, "drift.share", name, 0.5, drifted=["income"])
    observe(served, "drift.share", name, 0.1)
    observe(served, "latency.p99_ms", name, 400.0, p99_ms=400.0)
    observe(served, "quality.accuracy", name, 0.5, labelled=80, correct=40)
    yield name
    observe(served, "quality.accuracy", name, 0.9)
    observe(served, "latency.p99_ms", name, 10.0)


def rows(app: OperatorConsole) -> list[tuple[str, ...]]:
    table = app.screen.query_one(FilterTable)
    return [tuple(str(c) for c in table.table.get_row(key)) for key in table.table.rows]


def keys_shown(app: OperatorConsole) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


def plain(widget: Static) -> str:
    """What a Static shows, as text (rich renderables rendered wide)."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def screen_text(app: OperatorConsole, pilot: Any) -> str:
    """The screen as an operator reads it: the SVG screenshot's text, line by line (after
    the frames that paint what the last load filled)."""
    await pilot.pause(0.2)
    await pilot.wait_for_scheduled_animations()
    lines: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', app.export_screenshot()):
        lines.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    return "\n".join("".join(t for _, t in sorted(parts)) for _, parts in sorted(lines.items())).replace("\xa0", " ")


def text_of(app: OperatorConsole, selector: str) -> str:
    return plain(app.screen.query_one(selector, Static))


def result_text(app: OperatorConsole) -> str:
    assert isinstance(app.screen, ResultScreen)
    return " ".join(plain(s) for s in app.screen.query(Static))


async def open_alerts(app: OperatorConsole, pilot: Any, subject: str) -> None:
    await settle(app, pilot)
    await pilot.press("4")
    await settle(app, pilot)
    assert isinstance(app.screen, AlertsScreen)
    await pilot.press("slash", *subject, "enter")  # only this test's alerts
    await pilot.pause()


def cursor_to(app: OperatorConsole, rule: str) -> None:
    table = app.screen.query_one(FilterTable)
    keys = [str(k.value) for k in table.table.rows]
    index = next(i for i, r in enumerate(rows(app)) if r[2] == rule)
    table.table.move_cursor(row=index)
    assert table.cursor_key == keys[index]


async def test_firing_first_with_evidence_and_ack_locally(served: Served, subject: str) -> None:
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts(app, pilot, subject)
        shown = rows(app)
        assert [r[0] for r in shown] == ["firing", "pending", "resolved"]
        assert [r[2] for r in shown] == ["accuracy-low", "latency-p99-high", "drift-share"]
        assert shown[0][1] == "crit" and shown[0][4] == "0.5 < 0.7" and shown[0][6] == ""
        assert "firing" in text_of(app, "#summary")
        assert {"Alert silences", f"Alert accuracy-low on {subject}"} <= set(app.palette_items)
        assert f"Alert drift-share on {subject}" not in app.palette_items  # resolved: not offered
        assert {"acknowledge", "silence"} <= keys_shown(app)
        await pilot.press("f")  # firing only
        await settle(app, pilot)
        assert [r[0] for r in rows(app)] == ["firing"]
        await pilot.press("f", "f", "f")  # back to all
        await settle(app, pilot)
        assert len(rows(app)) == 3
        cursor_to(app, "accuracy-low")
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, AlertScreen)
        detail = text_of(app, "#alert")
        assert '"labelled": 80' in detail and "quality.accuracy < 0.7" in detail and "no one yet" in detail
        assert f"accuracy-low on {subject}" in str(app.screen.query_one(Breadcrumb).content)
        await pilot.press("a")
        await settle(app, pilot)
        assert isinstance(app.screen, ResultScreen)
        result = result_text(app)
        who = served.local.alerts.list(subject=subject, state="firing")[0].acknowledged_by
        assert who and f"acknowledged by {who}" in result and "alert.acknowledge" in result
        assert app.did[-1].title == "Acknowledge alert" and app.did[-1].outcome == "ok"
        await pilot.press("escape")
        await settle(app, pilot)
        assert f"by {who} at" in text_of(app, "#alert") and "alert.acknowledge" in text_of(app, "#alert")
        await pilot.press("a")  # a second time: the platform says who did already
        await settle(app, pilot)
        assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "failed"
        assert "Conflict" in result_text(app)


async def test_a_viewer_sees_alerts_and_evidence_but_no_action(served: Served, subject: str) -> None:
    with served.remote("viewer") as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_alerts(app, pilot, subject)
            assert [r[2] for r in rows(app)] == ["accuracy-low", "latency-p99-high", "drift-share"]
            assert not {"acknowledge", "silence"} & keys_shown(app)
            await pilot.press("a")  # hidden, so the key does nothing
            await settle(app, pilot)
            assert isinstance(app.screen, AlertsScreen)
            await pilot.press("enter")
            await settle(app, pilot)
            assert '"labelled": 80' in text_of(app, "#alert") and "not shown" in text_of(app, "#alert")
            assert not {"acknowledge", "silence"} & keys_shown(app)
            await pilot.press("escape", "l")
            await settle(app, pilot)
            assert isinstance(app.screen, SilencesScreen) and "lift" not in keys_shown(app)
    assert served.local.alerts.list(subject=subject, state="firing")[0].acknowledged_by is None


async def test_the_server_refuses_a_viewer_forced_to_acknowledge(served: Served, subject: str) -> None:
    with served.remote("viewer") as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_alerts(app, pilot, subject)
            app.access = Access(Identity(name="console-viewer", role="operator", kind="token"))  # lie to the console
            app.refresh_bindings()
            await pilot.press("a")
            await settle(app, pilot)
            assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "refused"
            assert "PermissionDenied" in result_text(app)
    assert served.local.alerts.list(subject=subject, state="firing")[0].acknowledged_by is None


async def test_an_operator_acknowledges_and_silences_over_http(served: Served, subject: str) -> None:
    with served.remote("operator") as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_alerts(app, pilot, subject)
            await pilot.press("a")
            await settle(app, pilot)
            assert isinstance(app.screen, ResultScreen)
            assert "acknowledged by token:console-operator" in result_text(app)
            await pilot.press("escape")
            await settle(app, pilot)
            assert rows(app)[0][6] == "token:console-operator"
            assert served.local.alerts.list(subject=subject, state="firing")[0].acknowledged_by == "token:console-operator"

            cursor_to(app, "latency-p99-high")
            await pilot.press("s")
            await pilot.pause()
            modal = app.screen
            assert isinstance(modal, SilenceScreen)
            assert modal.query_one("#rule", Input).value == "latency-p99-high"
            assert modal.query_one("#subject", Input).value == subject
            before = len(served.local.alerts.silences(active=False))
            modal.query_one("#for", Input).value = "soon"
            modal.query_one("#reason", Input).value = "the fix is rolling out"
            modal.query_one("#for", Input).focus()
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is modal  # refused in place: nothing was sent
            assert "bad duration 'soon'" in text_of(app, "#error") and "2h" in text_of(app, "#error")
            assert len(served.local.alerts.silences(active=False)) == before
            modal.query_one("#for", Input).value = "2h"
            modal.query_one("#reason", Input).value = ""
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is modal and "a reason is needed" in text_of(app, "#error")
            modal.query_one("#reason", Input).value = "the fix is rolling out"
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, ResultScreen)
            result = result_text(app)
            assert "by token:console-operator: the fix is rolling out" in result and "alert.silence" in result
            (made,) = [s for s in served.local.alerts.silences() if s.subject == subject]
            assert made.rule == "latency-p99-high" and made.created_by == "token:console-operator"
            assert 7100 < (made.until - made.created_at).total_seconds() <= 7200
            await pilot.press("escape", "l")
            await settle(app, pilot)
            assert isinstance(app.screen, SilencesScreen)
            listed = [r for r in rows(app) if r[2] == subject]
            assert listed == [("in force", "latency-p99-high", subject, listed[0][3], "token:console-operator",
                               "the fix is rolling out", made.id[:12])]
            await pilot.press("slash", *subject, "enter")
            await pilot.press("u")
            await pilot.pause()
            await pilot.press("y")
            await settle(app, pilot)
            assert isinstance(app.screen, ResultScreen) and "lifted by token:console-operator" in \
                result_text(app)
            await pilot.press("escape")
            await settle(app, pilot)
            assert rows(app)[0][0].startswith("lifted") and "token:console-operator" in rows(app)[0][0]
    assert [s for s in served.local.alerts.silences() if s.subject == subject] == []


async def test_an_open_alert_shows_behind_many_newer_resolved_ones(served: Served, subject: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.screens.alerts

    monkeypatch.setattr(tui.screens.alerts, "LIMIT", 2)
    for n in range(3):  # three newer alerts, resolved
        observe(served, "drift.share", f"{subject}-r{n}", 0.5)
        observe(served, "drift.share", f"{subject}-r{n}", 0.1)
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts(app, pilot, subject)
        shown = rows(app)
        assert shown[0][:4] == ("firing", "crit", "accuracy-low", subject) and shown[1][0] == "pending"


async def test_alerts_fit_80x24(served: Served, subject: str) -> None:
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_alerts(app, pilot, subject)
        screen = await screen_text(app, pilot)
        for seen in ("firing", "accuracy-low", "0.5 < 0.7", "Acked by", "Ack", "Silence"):
            assert seen in screen, seen
        await pilot.press("enter")
        await settle(app, pilot)
        screen = await screen_text(app, pilot)
        assert "labelled" in screen and "0.5 < 0.7" in screen
