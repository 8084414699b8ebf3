"""The Deployment screen over a real platform, local and over HTTP with role tokens: the
charts with the alert thresholds at 80x24, a canary's verdict forming under real traffic,
the revisions, and every action (promote, roll back to a chosen revision, canary weight,
abort, blue-green switch, monitor now, retrain), each confirmed, with the server's answer
or refusal (the gates) and the audit event it made."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Input

from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.screens.deployment import DeploymentScreen
from tui.widgets import ConfirmScreen, FilterTable, PromptScreen, ResultScreen

pytestmark = pytest.mark.anyio

ACTIONS = {"promote", "rollback", "weight", "abort", "switch", "monitor", "retrain"}
_CANDIDATES: dict[str, str] = {}
SHOWN: list[str] = []  # what each action's answer showed, newest last


def candidate_version(served: Served) -> str:
    """A second version of loan-default (other bytes than 1.0.0), trained once per home."""
    key = str(served.home)
    if key not in _CANDIDATES:
        from mlops_lite import TrainingSpec
        from tests.conftest import FEATURE_EXCLUDE

        p = served.local
        table = p.data.repo("loans").ref("main").read_table("loans/train.csv").table
        spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender",
                                  algorithm="random_forest")
        result = p.training.train("loans", "main", "loans/train.csv", spec)
        _CANDIDATES[key] = p.registry.register_from_run("loan-default", result.run.id).version
    return _CANDIDATES[key]


def traffic(platform: Any, name: str, requests: int) -> None:
    from tests.tui.test_pulse import feature_rows

    rows = feature_rows(platform, 3)
    for _ in range(requests):
        platform.deployments.predict(name, rows)
    platform.monitoring.flush()


def screen_text(app: OperatorConsole) -> str:
    """What the terminal shows, line by line (the SVG screenshot's text)."""
    import html
    import re

    lines: dict[float, list[str]] = {}
    for match in re.finditer(r'<text[^>]*y="([\d.]+)"[^>]*>(.*?)</text>', app.export_screenshot()):
        lines.setdefault(float(match.group(1)), []).append(html.unescape(match.group(2)))
    return "\n".join("".join(lines[y]).replace("\xa0", " ") for y in sorted(lines))


def keys_shown(app: OperatorConsole) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


def keys_enabled(app: OperatorConsole) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}


def summary(app: OperatorConsole) -> str:
    screen = app.screen_stack[-1] if isinstance(app.screen, DeploymentScreen) else app.screen_stack[-2]
    return str(screen.query_one("#summary").content)


def client(served: Served, where: str) -> Any:
    return served.local if where == "local" else served.remote(where)


async def open_screen(app: OperatorConsole, pilot: Any, name: str) -> DeploymentScreen:
    await settle(app, pilot)
    screen = DeploymentScreen(name)
    await app.push_screen(screen)
    await settle(app, pilot)
    return screen


async def act(app: OperatorConsole, pilot: Any, *keys: str) -> Any:
    """Press ``keys`` (the action, then its answers), wait for the result, close it;
    answers the log entry of what was done."""
    count = len(app.did)
    await pilot.press(*keys)
    await settle(app, pilot)
    for _ in range(50):
        if len(app.did) > count:
            break
        await pilot.pause(0.1)
        await settle(app, pilot)
    assert isinstance(app.screen, ResultScreen), app.screen
    SHOWN.append(" ".join(screen_text(app).split()))
    await pilot.press("escape")
    await settle(app, pilot)
    return app.did[-1]


async def test_charts_render_at_80x24_with_the_thresholds(served: Served) -> None:
    served.local.deployments.deploy("charts", "loan-default", "1.0.0")
    traffic(served.local, "charts", 8)
    app = OperatorConsole(served.local, source="local: test", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_screen(app, pilot, "charts")
        view = screen.view
        assert view is not None and view.latency["p99"][-1] is not None and view.rate["req/s"][-1] == 8 / 300
        assert [t.value for t in view.limits["latency"]] == [250.0]
        assert [t.value for t in view.limits["errors"]] == [0.05] and [t.value for t in view.limits["drift"]] == [0.25]
        shown = screen_text(app)
        for title in ("latency ms (alert 250ms)", "req/s", "error rate (alert 0.05)", "drift PSI (alert 0.25)"):
            assert title in shown, title
        assert "now:" in summary(app) and "none open" in summary(app)
        await pilot.press("h")
        await settle(app, pilot)
        assert [r.key for r in screen.query_one(FilterTable).rows] == ["1"]


@pytest.mark.parametrize("where", ["local", "operator"])
async def test_a_canary_verdict_forms_as_traffic_comes_in(served: Served, where: str) -> None:
    version = candidate_version(served)
    name = f"canary-{where}"
    served.local.deployments.deploy(name, "loan-default", "1.0.0")
    served.local.deployments.canary(name, "loan-default", version, weight=0.5)
    platform = client(served, where)
    app = OperatorConsole(platform, source=where, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_screen(app, pilot, name)
        assert app.offline is None and "canary: WAIT" in summary(app) and "need 20 each" in summary(app)
        await pilot.press("v")
        await settle(app, pilot)
        traffic(served.local, name, 90)
        await pilot.press("r")
        await settle(app, pilot)
        text = summary(app)
        assert "canary: WAIT" not in text and ("PROMOTE" in text or "ROLLBACK" in text), text
        shown = screen_text(app)
        assert "verdict so far:" in shown and "canary p99" in shown
        assert "requests" in shown and "p99 ms" in shown and "primary" in shown
    if where != "local":
        platform.close()


@pytest.mark.parametrize("where", ["local", "operator"])
async def test_every_release_action_is_confirmed_and_shows_its_audit_event(served: Served, where: str) -> None:
    version = candidate_version(served)
    name = f"acts-{where}"
    served.local.deployments.deploy(name, "loan-default", "1.0.0")
    platform = client(served, where)
    try:
        app = OperatorConsole(platform, source=where, refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_screen(app, pilot, name)
            served.local.deployments.canary(name, "loan-default", version, weight=0.1)  # revision 2
            await pilot.press("r")
            await settle(app, pilot)
            assert {"weight", "abort", "promote"} <= keys_enabled(app) and "switch" not in keys_enabled(app)

            # The weight: asked, checked, confirmed.
            await pilot.press("w")
            await settle(app, pilot)
            assert isinstance(app.screen, PromptScreen)
            app.screen.query_one(Input).value = "30%"
            done = await act(app, pilot, "enter", "y")
            assert done.outcome == "ok" and "deployment.canary deployment:" + name in (done.audit or "")
            record = served.local.deployments.get(name)
            assert (record.revision, record.weight) == (3, 0.3)

            # Abort: back to the revision before the canary began (1), not to the 10% one.
            done = await act(app, pilot, "x", "y")
            assert done.outcome == "ok" and "deployment.rollback" in (done.audit or "")
            record = served.local.deployments.get(name)
            assert (record.revision, record.strategy, record.version) == (4, "single", "1.0.0")

            # Declining a confirmation changes nothing.
            served.local.deployments.canary(name, "loan-default", version, weight=0.2)  # revision 5
            await pilot.press("r")
            await settle(app, pilot)
            await pilot.press("p")
            await settle(app, pilot)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await settle(app, pilot)
            assert served.local.deployments.get(name).revision == 5

            done = await act(app, pilot, "p", "y")
            assert done.outcome == "ok" and "deployment.promote" in (done.audit or "")
            assert "the release gates:" in SHOWN[-1] and "metric.roc_auc" in SHOWN[-1], SHOWN[-1]
            assert (served.local.deployments.get(name).strategy, served.local.deployments.get(name).version) == \
                ("single", version)

            # Roll back to the revision chosen in the table (2: the 10% canary).
            await pilot.press("h")
            await settle(app, pilot)
            table = screen.query_one("#revisions", FilterTable)
            table.table.move_cursor(row=[r.key for r in table.rows].index("2"))
            done = await act(app, pilot, "b", "y")
            record = served.local.deployments.get(name)
            assert done.outcome == "ok" and (record.revision, record.strategy, record.weight) == (7, "canary", 0.1)

            # Blue-green: stage, then switch from the console.
            served.local.deployments.stage(name, "loan-default", version)
            await pilot.press("r")
            await settle(app, pilot)
            assert "switch" in keys_enabled(app)
            done = await act(app, pilot, "s", "y")
            record = served.local.deployments.get(name)
            assert done.outcome == "ok" and "deployment.switch" in (done.audit or "")
            assert (record.version, record.candidate_version, record.live_slot) == (version, "1.0.0", "green")

            # Monitor now: the monitor job's pass (no confirmation), its answer shown.
            traffic(served.local, name, 3)
            done = await act(app, pilot, "m")
            assert done.outcome == "ok" and "window of " + name in done.detail and screen.last_check is not None

            # Retrain: asked why, confirmed, recorded as the caller; the standby of the
            # blue-green release holds it (a release is in progress).
            await pilot.press("t")
            await settle(app, pilot)
            assert isinstance(app.screen, PromptScreen)
            app.screen.query_one(Input).value = "drift on income"
            done = await act(app, pilot, "enter", "y")
            assert done.outcome == "ok" and "loop.retrain_requested" in (done.audit or "")
            assert done.detail.startswith("recorded: the next monitoring pass"), done.detail
            # In the daemon (which wires its retrain runner) the blue-green standby holds it.
            started: list[str] = []
            served.local.loop.runner = lambda deployment, reason: started.append(deployment)
            try:
                await pilot.press("t")
                await settle(app, pilot)
                app.screen.query_one(Input).value = "still drifting"
                done = await act(app, pilot, "enter", "y")
            finally:
                served.local.loop.runner = None
            assert done.detail.startswith("recorded, but held: a release is in progress"), done.detail
            assert started == []
    finally:
        if where != "local":
            platform.close()


async def test_a_promotion_that_fails_a_gate_shows_the_gates(served: Served) -> None:
    version = candidate_version(served)
    served.local.deployments.deploy("gated", "loan-default", "1.0.0")
    served.local.deployments.canary("gated", "loan-default", version, weight=0.1)
    before = served.local.policy.min_roc_auc
    served.local.policy.min_roc_auc = 0.999
    try:
        with served.remote("operator") as remote:
            app = OperatorConsole(remote, source="remote", refresh_seconds=3600)
            async with app.run_test(size=(80, 24)) as pilot:
                await open_screen(app, pilot, "gated")
                await pilot.press("p", "y")
                await settle(app, pilot)
                for _ in range(50):
                    if app.did:
                        break
                    await pilot.pause(0.1)
                assert isinstance(app.screen, ResultScreen) and app.screen.has_class("failed")
                done = app.did[-1]
                assert done.outcome == "refused"
                shown = screen_text(app)
                assert "PolicyViolation" in shown and "refused" in shown
                assert "gate" in shown and "measured" in shown and "NO" in shown
        assert served.local.deployments.get("gated").strategy == "canary"
    finally:
        served.local.policy.min_roc_auc = before


async def test_a_viewer_sees_the_screen_and_no_action(served: Served) -> None:
    version = candidate_version(served)
    served.local.deployments.deploy("viewed", "loan-default", "1.0.0")
    served.local.deployments.canary("viewed", "loan-default", version, weight=0.1)
    with served.remote("viewer") as remote:
        app = OperatorConsole(remote, source="remote", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_screen(app, pilot, "viewed")
            assert not (ACTIONS & keys_shown(app))
            text = summary(app)
            assert "now:" in text and "the verdict needs the operator role" in text
            await pilot.press("p")
            await settle(app, pilot)
            assert served.local.deployments.get("viewed").revision == 2


async def test_an_operator_console_forced_to_act_is_still_refused_by_the_server(served: Served) -> None:
    """The console hides what the role may not do; the server refuses it regardless."""
    from mlops_lite.records import Identity
    from tui.roles import Access

    served.local.deployments.deploy("forced", "loan-default", "1.0.0")
    served.local.deployments.deploy("forced", "loan-default", "1.0.0")  # revision 2
    with served.remote("viewer") as remote:
        app = OperatorConsole(remote, source="remote", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_screen(app, pilot, "forced")
            app.access = Access(Identity(name="console-viewer", role="operator", kind="token"))
            app.screen.refresh_bindings()
            await pilot.pause()
            done = await act(app, pilot, "b", "y")
            assert done.outcome == "refused" and "PermissionDenied" in done.detail
    assert served.local.deployments.get("forced").revision == 2
