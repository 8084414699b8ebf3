"""The models section, driven with a Pilot over a real platform (local, and over HTTP with
a token per role): models -> a model's versions and alias history -> a version's lineage
tree (broken links in red, with why), comparing two versions, the palette's items, and
requesting a promotion (an operator's action, hidden from a viewer)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Static, Tree

from tests.conftest import build_loop
from tests.tui.conftest import Served, settle
from tests.unit.test_deployment_lineage import train_second
from tui import OperatorConsole
from tui.screens.compare import CompareScreen
from tui.screens.lineage import LineageScreen
from tui.screens.model import ModelScreen
from tui.widgets import Breadcrumb, FilterTable, PromptScreen, ResultScreen

pytestmark = pytest.mark.anyio
MODEL = "loan-default"


@pytest.fixture(scope="module")
def world(served: Served) -> Iterator[Served]:
    """``served`` with a second version (1.1.0, trained on other data), an alias moved
    twice and a model card on 1.0.0."""
    p = served.local
    train_second(p)
    p.registry.set_alias(MODEL, "staging", "1.0.0", reason="first look")
    p.registry.set_alias(MODEL, "staging", "1.1.0", reason="fresher data")
    p.registry.set_model_card(MODEL, "1.0.0", {"intended_use": "loan default screening",
                                               "limitations": "trained on 2024 applications"})
    p.policy.decide(MODEL, "1.1.0")
    p.policy.request_promotion(MODEL, "1.1.0", comment="fresher data")
    p.deployments.canary("loans", MODEL, "1.1.0", weight=0.2, reason="try it")
    yield served


def crumb(app: OperatorConsole) -> str:
    return str(app.screen.query_one(Breadcrumb).content)


def rows(app: OperatorConsole, selector: str = "FilterTable") -> list[str]:
    return [str(k.value) for k in app.screen.query_one(selector, FilterTable).table.rows]


def cells(app: OperatorConsole, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, FilterTable).table
    return [[str(c) for c in table.get_row(key)] for key in table.rows]


def labels(app: OperatorConsole) -> list[str]:
    tree = app.screen.query_one(Tree)
    out: list[str] = []

    def walk(n: Any) -> None:
        out.append(str(n.label))
        for child in n.children:
            walk(child)

    walk(tree.root)
    return out


def plain(renderable: Any) -> str:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def keys_shown(app: OperatorConsole) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


async def open_model(app: OperatorConsole, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("2")
    await settle(app, pilot)
    assert app.screen.TITLE == "Models" and rows(app) == [MODEL]
    await pilot.press("enter")
    await settle(app, pilot)
    assert isinstance(app.screen, ModelScreen)


@pytest.mark.parametrize("role", ["local", "viewer"])
async def test_versions_alias_history_and_lineage(world: Served, role: str) -> None:
    platform = world.local if role == "local" else world.remote(role)
    app = OperatorConsole(platform, source=role, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_model(app, pilot)
        assert crumb(app).startswith(f"mlops-lite › Models › {MODEL}")
        assert rows(app, "#versions") == ["1.1.0", "1.0.0"]  # newest first
        first = cells(app, "#versions")[1]
        digest = world.local.registry.get_version(MODEL, "1.0.0").digest
        assert first[1:3] == ["1.0.0", digest[:12]] and first[3].startswith("auc 0.8")
        assert cells(app, "#versions")[0][-1] == "staging"
        history = cells(app, "#history")
        assert [(h[1], h[3], h[6]) for h in history] == [("staging", "1.0.0 → 1.1.0", "fresher data"),
                                                          ("staging", "- → 1.0.0", "first look")]
        await pilot.press("down", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, LineageScreen) and crumb(app).startswith(
            f"mlops-lite › Models › {MODEL} › 1.0.0 lineage")
        shown = labels(app)
        version = world.local.registry.get_version(MODEL, "1.0.0")
        assert any(f"commit {version.data_commits[0][:12]}" in s for s in shown)
        assert any(s.startswith(f"run {version.run_id[:12]}") for s in shown)
        assert "intended_use: loan default screening" in shown
        assert any(s.startswith("loans: serves it now") for s in shown)
        assert any(s.startswith("revision 1 deploy (single, primary)") for s in shown)
        assert not any("broken link" in s for s in shown) and app.screen.gaps == ()
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, ModelScreen)
    if role != "local":
        platform.close()


@pytest.mark.parametrize("role", ["local", "operator"])
async def test_the_lineage_of_a_canary_shows_its_decision_request_and_revision(world: Served, role: str) -> None:
    platform = world.local if role == "local" else world.remote(role)
    app = OperatorConsole(platform, source=role, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_model(app, pilot)
        await pilot.press("enter")  # the newest version, 1.1.0
        await settle(app, pilot)
        assert isinstance(app.screen, LineageScreen) and app.screen.version == "1.1.0"
        shown = labels(app)
        [decision] = world.local.policy.decisions(MODEL, "1.1.0")
        assert any(s.startswith("passed → production") and decision.id[:8] in s for s in shown), shown
        assert "✓ metric.roc_auc" in " ".join(shown)
        assert any(s.startswith("pending: → production requested by") for s in shown)
        revision = world.local.deployments.get("loans").revision
        assert f"revision {revision} canary (canary, canary 20%)" in " ".join(shown)
        assert any(s.startswith(f"loans: serves it now (revision {revision} now)") for s in shown)
        assert app.screen.gaps == ()
    if role != "local":
        platform.close()


@pytest.mark.parametrize("role", ["local", "viewer"])
async def test_compare_the_marked_version_with_the_cursor_row(world: Served, role: str) -> None:
    platform = world.local if role == "local" else world.remote(role)
    app = OperatorConsole(platform, source=role, refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_model(app, pilot)
        await pilot.press("c")  # nothing marked: a hint, no screen
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen)
        await pilot.press("down", "space")  # mark 1.0.0
        await pilot.pause()
        assert cells(app, "#versions")[1][0] == "●"
        await pilot.press("up", "c")
        await settle(app, pilot)
        assert isinstance(app.screen, CompareScreen) and (app.screen.a, app.screen.b) == ("1.0.0", "1.1.0")
        text = plain(app.screen.query_one("#comparison", Static).content)
        expected = world.local.registry.compare_versions(MODEL, "1.0.0", "1.1.0")
        assert f"{expected.metric_deltas['roc_auc']:+.4g}" in text
        assert ("data: CHANGED" in text) is expected.data_changed and expected.data_changed
        assert "signature: unchanged" in text
    if role != "local":
        platform.close()


async def test_palette_items_open_models_and_versions(world: Served) -> None:
    app = OperatorConsole(world.local, source="local", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        assert {f"Model {MODEL}", f"Version {MODEL}@1.0.0", f"Version {MODEL}@1.1.0"} <= set(app.palette_items)
        assert cells(app, "#models") == [[MODEL, "2", "1.1.0", "loans@1.0.0 loans@1.1.0", ""]]  # primary, canary
        await pilot.press("1")
        await settle(app, pilot)
        app.palette_items[f"Version {MODEL}@1.1.0"][1]()
        await settle(app, pilot)
        assert isinstance(app.screen, LineageScreen) and app.screen.version == "1.1.0"
        assert crumb(app).startswith(f"mlops-lite › Models › {MODEL} › 1.1.0 lineage")


@pytest.mark.parametrize(("role", "may"), [("viewer", False), ("operator", True)])
async def test_request_promotion_follows_the_role(world: Served, role: str, may: bool) -> None:
    with world.remote(role) as remote:
        app = OperatorConsole(remote, source=role, refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_model(app, pilot)
            assert ("request_promotion" in keys_shown(app)) is may
            if not may:
                return
            await pilot.press("down", "p")
            await pilot.pause()
            assert isinstance(app.screen, PromptScreen)
            app.screen.query_one("Input").value = "candidate"  # type: ignore[attr-defined]
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, PromptScreen)
            app.screen.query_one("Input").value = "ready for review"  # type: ignore[attr-defined]
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, ResultScreen)
            assert app.did[-1].outcome == "ok" and "is pending" in app.did[-1].detail
    [request] = [r for r in world.local.policy.requests(MODEL, status="pending") if r.alias == "candidate"]
    assert (request.version, request.requested_by, request.comment) == ("1.0.0", "token:console-operator", "ready for review")
    world.local.policy.reject(request.id, comment="test over")


async def test_a_viewer_console_forced_to_request_is_refused_by_the_server(world: Served) -> None:
    from mlops_lite.records import Identity
    from tui.roles import Access

    with world.remote("viewer") as remote:
        app = OperatorConsole(remote, source="viewer", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_model(app, pilot)
            app.access = Access(Identity(name="console-viewer", role="operator", kind="token"))
            app.screen.action_request_promotion()  # type: ignore[attr-defined]
            await pilot.pause()
            app.screen.query_one("Input").value = "forced"  # type: ignore[attr-defined]
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "refused"
            assert "PermissionDenied" in app.did[-1].detail
    assert not [r for r in world.local.policy.requests(MODEL) if r.alias == "forced"]


@pytest.fixture
def broken_home(tmp_path: Path) -> Iterator[Served]:
    """A home whose data repository was deleted after training: the version's data
    commit cannot be read any more, and the deployment's lineage says so."""
    from server import create_app
    from server.runner import serve_in_thread

    platform: Any
    platform, admin, _ = build_loop(tmp_path / "home")
    platform.data.repo("loans").delete()
    running = serve_in_thread(create_app(platform))
    try:
        yield Served(platform, running.url, {"admin": admin}, tmp_path / "home")
    finally:
        running.stop()
        platform.close()


async def test_the_lineage_tree_marks_a_broken_link(broken_home: Served) -> None:
    version = broken_home.local.registry.get_version(MODEL, "1.0.0")
    expected = broken_home.local.deployments.lineage("loans").missing
    assert expected and version.data_commits[0] in expected[0]  # the platform itself reports it
    for platform in (broken_home.local, broken_home.remote("admin")):
        app = OperatorConsole(platform, source="test", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_model(app, pilot)
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, LineageScreen)
            shown = labels(app)
            assert "✗ 1 broken link(s)" in shown, shown
            [gap] = app.screen.gaps
            assert version.data_commits[0] in gap and "was deleted" in gap
            tree = app.screen.query_one(Tree)
            red = [n for n in tree._tree_nodes.values() if "✗" in str(n.label)]
            assert red and all("red" in str(n.label.style or "") or any("red" in str(s.style)
                                                                      for s in n.label.spans) for n in red)
        if platform is not broken_home.local:
            platform.close()
