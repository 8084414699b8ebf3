"""The approvals inbox, driven with a Pilot over a real platform (local, and over HTTP
with a token per role) under a policy that needs one approval: the gates' evidence,
approve and reject with a comment, complete moving the alias, and the server's
four-eyes refusals shown as they came."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import Input, Static

from mlops_lite.records import Identity
from tests.conftest import policy_files
from tests.tui.conftest import Served, settle
from tests.tui.test_models import plain
from tui import OperatorConsole
from tui.roles import Access
from tui.screens.approvals import ApprovalsScreen
from tui.widgets import ConfirmScreen, FilterTable, PromptScreen, ResultScreen

pytestmark = pytest.mark.anyio
MODEL = "loan-default"


@pytest.fixture(scope="module")
def gated(served: Served) -> Iterator[Served]:
    """``served`` under a policy where a promotion needs one approval."""
    with policy_files(served.home / "policies") as write:
        write(MODEL, "[approvals]\nrequired = 1\n")
        yield served


def keys_shown(app: OperatorConsole) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


def rows(app: OperatorConsole) -> list[str]:
    return [str(k.value) for k in app.screen.query_one(FilterTable).table.rows]


def evidence(app: OperatorConsole) -> str:
    return plain(app.screen.query_one("#evidence", Static).content)


def result(app: OperatorConsole) -> str:
    """The text of the result modal on top: its title and body (the refusal, its gates)."""
    assert isinstance(app.screen, ResultScreen)
    return "\n".join(plain(w.content) for w in app.screen.query(Static))


async def open_inbox(app: OperatorConsole, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("3")
    await settle(app, pilot)
    assert isinstance(app.screen, ApprovalsScreen)


async def answer(app: OperatorConsole, pilot: Any, text: str) -> None:
    assert isinstance(app.screen, PromptScreen)
    app.screen.query_one(Input).value = text
    await pilot.press("enter")
    await settle(app, pilot)


def close_open_requests(served: Served, alias: str) -> None:
    for request in served.local.policy.requests(MODEL):
        if request.alias == alias and request.status in ("pending", "approved"):
            served.local.policy.reject(request.id, comment="test over")


@pytest.mark.parametrize(("role", "shown"), [("viewer", set()), ("operator", {"complete"}),
                                              ("approver", {"approve", "reject", "complete"})])
async def test_actions_follow_the_role(gated: Served, role: str, shown: set[str]) -> None:
    request = gated.local.policy.request_promotion(MODEL, "1.0.0", alias="roles", comment="for the keys")
    try:
        with gated.remote(role) as remote:
            app = OperatorConsole(remote, source=role, refresh_seconds=3600)
            async with app.run_test(size=(80, 24)) as pilot:
                await open_inbox(app, pilot)
                assert request.id in rows(app)
                assert keys_shown(app) & {"approve", "reject", "complete"} == shown
                assert "approvals" in evidence(app) and "1 failing (approvals)" in evidence(app)
    finally:
        close_open_requests(gated, "roles")


async def test_request_approve_and_complete_moves_the_alias(gated: Served) -> None:
    """The loop over HTTP: an operator requests, an approver approves with a comment (the
    operator's console cannot), the operator completes and the alias moves."""
    with gated.remote("operator") as operator:
        request = operator.policy.request_promotion(MODEL, "1.0.0", alias="production", comment="ready")
        app = OperatorConsole(operator, source="operator", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_inbox(app, pilot)
            assert rows(app)[0] == request.id and "approve" not in keys_shown(app)
            await pilot.press("c", "y")  # too early: the server refuses, with the gates
            await settle(app, pilot)
            assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "refused"
            shown = result(app)
            assert "PolicyViolation" in shown and "approvals" in shown and "NO" in shown, shown
    with gated.remote("approver") as approver:
        app = OperatorConsole(approver, source="approver", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_inbox(app, pilot)
            assert "1 failing (approvals)" in evidence(app)
            await pilot.press("a")
            await pilot.pause()
            await answer(app, pilot, "checked the drift report")
            assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "ok", app.did[-1]
            assert "is approved" in app.did[-1].detail and "approval.approve" in (app.did[-1].audit or "")
            await pilot.press("escape")
            await settle(app, pilot)
            assert "all pass" in evidence(app) and "c completes it" in evidence(app)
            assert "approve by token:console-approver" in evidence(app)
    assert gated.local.policy.get_request(request.id).status == "approved"
    with gated.remote("operator") as operator:
        app = OperatorConsole(operator, source="operator", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_inbox(app, pilot)
            item = f"Approval {MODEL}@1.0.0 → production"
            assert app.palette_items[item][0] == "approved, requested by token:console-operator"
            await pilot.press("c")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle(app, pilot)
            assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "ok", app.did[-1]
            assert "production of loan-default now points to 1.0.0" in app.did[-1].detail
            await pilot.press("escape")
            await settle(app, pilot)
            assert request.id not in rows(app) and item not in app.palette_items
    assert gated.local.registry.get_alias(MODEL, "production").version == "1.0.0"
    assert gated.local.policy.get_request(request.id).status == "completed"


async def test_the_author_approving_their_own_request_is_refused(gated: Served) -> None:
    with gated.remote("approver") as approver:
        request = approver.policy.request_promotion(MODEL, "1.0.0", alias="review", comment="my own")
        try:
            app = OperatorConsole(approver, source="approver", refresh_seconds=3600)
            async with app.run_test(size=(80, 24)) as pilot:
                await open_inbox(app, pilot)
                assert "approve" in keys_shown(app)  # the console offers it: the rule is the server's
                await pilot.press("a")
                await pilot.pause()
                await answer(app, pilot, "looks fine to me")
                assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "refused"
                assert "PermissionDenied" in app.did[-1].detail and "four-eyes" in app.did[-1].detail
                assert "refused" in str(app.screen.query_one("Label").content)
        finally:
            close_open_requests(gated, "review")
    after = gated.local.policy.get_request(request.id)
    assert [v.vote for v in after.votes] == ["reject"] and "review" not in gated.local.registry.aliases(MODEL)


async def test_a_local_console_rejects_with_a_comment(gated: Served) -> None:
    with gated.remote("operator") as operator:
        request = operator.policy.request_promotion(MODEL, "1.0.0", alias="nightly")
    try:
        app = OperatorConsole(gated.local, source="local", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_inbox(app, pilot)
            await pilot.press("x")
            await pilot.pause()
            await answer(app, pilot, "")  # a reason is needed: the prompt stays
            assert isinstance(app.screen, PromptScreen)
            await answer(app, pilot, "not during the freeze")
            assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "ok"
            assert "is rejected" in app.did[-1].detail
    finally:
        close_open_requests(gated, "nightly")
    rejected = gated.local.policy.get_request(request.id)
    assert rejected.status == "rejected" and rejected.votes[-1].comment == "not during the freeze"


async def test_an_operator_console_forced_to_approve_is_refused_by_the_server(gated: Served) -> None:
    request = gated.local.policy.request_promotion(MODEL, "1.0.0", alias="forced")
    try:
        with gated.remote("operator") as operator:
            app = OperatorConsole(operator, source="operator", refresh_seconds=3600)
            async with app.run_test(size=(80, 24)) as pilot:
                await open_inbox(app, pilot)
                app.access = Access(Identity(name="token:console-operator", role="approver", kind="token"))
                app.refresh_bindings()
                await pilot.pause()
                assert "approve" in keys_shown(app)
                await pilot.press("a")
                await pilot.pause()
                await answer(app, pilot, "")
                assert isinstance(app.screen, ResultScreen) and app.did[-1].outcome == "refused"
                assert "PermissionDenied" in app.did[-1].detail
    finally:
        close_open_requests(gated, "forced")
    assert not gated.local.policy.get_request(request.id).approvers


async def test_the_evidence_follows_the_cursor_and_is_measured_once_per_request(gated: Served) -> None:
    first = gated.local.policy.request_promotion(MODEL, "1.0.0", alias="first")
    second = gated.local.policy.request_promotion(MODEL, "1.0.0", alias="second")
    try:
        app = OperatorConsole(gated.local, source="local", refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_inbox(app, pilot)
            assert rows(app)[:2] == [second.id, first.id]
            assert evidence(app).startswith(f"{MODEL}@1.0.0 → second") and "gates now" in evidence(app)
            screen = app.screen
            assert isinstance(screen, ApprovalsScreen)
            assert [key[0] for key in screen._measured] == [second.id]  # only the row under the cursor
            await pilot.press("down")
            await settle(app, pilot)
            assert evidence(app).startswith(f"{MODEL}@1.0.0 → first") and "1 failing (approvals)" in evidence(app)
            await pilot.press("up", "r")
            await settle(app, pilot)
            assert sorted(key[0] for key in screen._measured) == sorted([first.id, second.id])
    finally:
        close_open_requests(gated, "first")
        close_open_requests(gated, "second")
