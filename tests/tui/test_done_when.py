"""Issue 14's "done when", as one scenario: an operator, from the console alone, over
HTTP with an operator's token, watches the demo's drift alert fire, sees the canary's
verdict form, gets a promotion that needs approval approved (an approver, from their own
console), promotes, rolls back, and acknowledges the alert. Every operator and approver
action is a keypress on a console (a Pilot), never a facet call; each step is asserted
on what the screen shows and in the audit chain.

What is not the operator's: the platform's setup (a second version trained and put on a
canary at 50 %, as the release flow does), the traffic (held-out rows of the demo's
drifted file, loans_drifted.csv, with their labels, sent over HTTP as the demo sends
them), the approval policy file, and the monitoring pass: the daemon's ``monitor`` job
calls ``platform.loop.check(deployment)`` on the platform the server serves
(server/jobs.py ``monitor_all``); the test calls that same facet on that same platform
instead of waiting for the schedule."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from typing import Any

import pyarrow.csv as pacsv
import pytest
from textual.pilot import Pilot

from tests.conftest import DATA, FEATURE_EXCLUDE
from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.widgets import FilterTable, PromptScreen, ResultScreen

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SIZE = (160, 48)


def screen_text(app: OperatorConsole) -> str:
    """What the terminal shows now, as lines of text (read from the console's own SVG
    screenshot, modal screens included)."""
    svg = app.export_screenshot()
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, chunk in sorted(rows[y]):
            line = line.ljust(round(x / 12.2)) + chunk
        lines.append(line.replace("\xa0", " ").rstrip())
    return "\n".join(lines)


async def press(app: OperatorConsole, pilot: Pilot[Any], *keys: str) -> str:
    """Press ``keys`` one at a time, let every load and action finish, and read the screen."""
    for key in keys:
        await pilot.press(key)
        await settle(app, pilot)
    return screen_text(app)


async def type_text(app: OperatorConsole, pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*[("space" if c == " " else c) for c in text])
    await settle(app, pilot)


async def cursor_to(app: OperatorConsole, pilot: Pilot[Any], table: FilterTable, key: str) -> None:
    """Move the table's cursor onto the row ``key`` with the arrow keys."""
    table.focus_table()
    await settle(app, pilot)
    keys = [str(k.value) for k in table.table.rows]
    assert key in keys, f"{key!r} is not a row of {table.id}: {keys}"
    await press(app, pilot, *(["up"] * len(keys)), *(["down"] * keys.index(key)))
    assert table.cursor_key == key


def send_drifted(served: Served, start: int, count: int) -> int:
    """The demo's second act: rows of loans_drifted.csv over HTTP, one request each, then
    their true labels as feedback (mlops_lite/cli/demo.py ``_serve_labelled``)."""
    rows = pacsv.read_csv(DATA / "loans_drifted.csv").to_pylist()[start:start + count]
    with served.remote("admin") as client:
        features = [f["name"] for f in client.registry.get_version("loan-default", "1.0.0").signature["inputs"]]
        answers = [client.deployments.predict("loans", [{f: row[f] for f in features}]) for row in rows]
        client.monitoring.record_feedback("loans", [(a.request_id, int(row["default"]))
                                                    for a, row in zip(answers, rows, strict=True)])
    return len(rows)


def events(served: Served, action: str, object: str) -> list[Any]:
    return [e for e in served.local.audit.about(object) if e.action == action]


async def test_an_operator_runs_the_demo_loop_from_the_console(served: Served) -> None:
    local = served.local
    # --- setup, as the release flow leaves it: 1.0.1 on a canary at 50 % ---------------
    table = local.data.repo("loans").ref("main").read_table("loans/train.csv").table
    from mlops_lite import TrainingSpec

    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender")
    run = local.training.train("loans", "main", "loans/train.csv", replace(spec, params={"C": 0.5}),
                               run_name="retrain-logistic_regression").run
    candidate = local.registry.register_from_run("loan-default", run.id).version
    with served.remote("admin") as admin:
        admin.deployments.canary("loans", "loan-default", candidate, weight=0.5, reason="the retrained version")

    with served.remote("operator") as remote:
        app = OperatorConsole(remote, source=f"remote: {served.url}", refresh_seconds=3600)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            assert "console-operator (operator)" in screen_text(app)

            # --- 1. the canary's verdict forms, on the deployment screen --------------
            text = await press(app, pilot, "enter", "v")
            assert "Pulse › loans" in text
            assert f"canary loan-default@{candidate} at 50%" in text and "verdict so far: WAIT" in text
            send_drifted(served, 0, 16)
            text = await press(app, pilot, "r")
            waiting = re.search(r"(\d+) canary and (\d+) primary requests so far; need 20 each", text)
            assert waiting is not None and int(waiting[1]) + int(waiting[2]) == 16, text
            send_drifted(served, 16, 384)
            text = await press(app, pilot, "r")
            verdict = re.search(r"verdict so far: (PROMOTE|ROLLBACK)", text)
            assert verdict is not None, text
            assert re.search(r"canary p99 [\d.]+ ms", text)  # the figures it judged on, per slot
            assert re.search(r"requests\s+\d+\s+\d+", text)

            # --- 2. the drift alert fires, on the alerts screen -----------------------
            text = await press(app, pilot, "4")
            assert "Alerts" in text and not re.search(r"firing .*drift-feature", text)
            since = local.deployments.revisions("loans")[-1].changed_at
            checked = local.loop.check("loans", since=since)  # what the daemon's monitor job calls
            assert any(t["rule"] == "drift-feature" and t["state"] == "firing" for t in checked["transitions"])
            text = await press(app, pilot, "r")
            drift_row = next((line for line in text.splitlines() if "drift-feature" in line), "")
            assert "firing" in drift_row and "loans" in drift_row, text
            fired = events(served, "alert.fire", "alert:drift-feature@loans")
            assert fired and fired[-1].actor == "monitor"

            # --- 3. a promotion that needs approval -----------------------------------
            (served.home / "policies").mkdir(exist_ok=True)
            (served.home / "policies" / "loan-default.toml").write_text("[approvals]\nrequired = 1\n")
            await press(app, pilot, "1")
            assert app.screen.TITLE == "Deployment"
            text = await press(app, pilot, "p", "y")
            assert isinstance(app.screen, ResultScreen) and "Promote" in text and "refused" in text, text
            assert "PolicyViolation" in text and re.search(r"approvals\s+│\s+NO\s+│\s+0\s+│\s+>= 1", text), text
            assert app.did[-1].outcome == "refused"
            assert not events(served, "deployment.promote", "deployment:loans")
            await press(app, pilot, "escape")

            # the operator asks for it: models -> loan-default -> the candidate -> p
            await press(app, pilot, "2", "enter")
            assert app.screen.TITLE == "Model"
            await cursor_to(app, pilot, app.screen.query_one("#versions", FilterTable), candidate)
            await press(app, pilot, "p")
            assert isinstance(app.screen, PromptScreen)  # which alias: production is offered
            await press(app, pilot, "enter")
            await type_text(app, pilot, "drift on main; the retrained canary holds")
            text = await press(app, pilot, "enter")
            assert f"loan-default@{candidate} → production is pending" in text, text
            assert "requested by token:console-operator" in text
            requested = events(served, "approval.request", f"model:loan-default@{candidate}")
            assert requested and requested[-1].actor == "token:console-operator"
            await press(app, pilot, "escape")

            # the approver, from their own console: the inbox -> approve with a comment
            with served.remote("approver") as approver_remote:
                approver = OperatorConsole(approver_remote, source=f"remote: {served.url}", refresh_seconds=3600)
                async with approver.run_test(size=SIZE) as approver_pilot:
                    await settle(approver, approver_pilot)
                    text = await press(approver, approver_pilot, "3")
                    assert f"loan-default@{candidate}" in text and "pending" in text, text
                    assert "approvals" in text  # the gates' evidence beside the request
                    await press(approver, approver_pilot, "a")
                    assert isinstance(approver.screen, PromptScreen)
                    await type_text(approver, approver_pilot, "checked the canary figures")
                    text = await press(approver, approver_pilot, "enter")
                    assert f"loan-default@{candidate} → production is approved" in text, text
                    assert "approved by token:console-approver" in text
                    assert approver.did[-1].outcome == "ok"
            approved = events(served, "approval.approve", f"model:loan-default@{candidate}")
            assert approved and approved[-1].actor == "token:console-approver"

            # now the promotion passes the gates
            await press(app, pilot, "1")
            text = await press(app, pilot, "p", "y")
            assert isinstance(app.screen, ResultScreen) and "done" in text, text
            assert f"loans is single: loan-default {candidate}" in text, text
            assert "audit: seq" in text and "deployment.promote deployment:loans by token:console-operator" in text
            assert local.deployments.get("loans").version == candidate
            await press(app, pilot, "escape")

            # --- 4. roll back to revision 1 (1.0.0 alone), chosen on the revisions tab -
            await press(app, pilot, "h")
            await cursor_to(app, pilot, app.screen.query_one("#revisions", FilterTable), "1")
            text = await press(app, pilot, "b")
            assert "Roll loans back to revision 1" in text, text
            text = await press(app, pilot, "y")
            assert "done" in text and "loans is single: loan-default 1.0.0" in text, text
            assert "deployment.rollback deployment:loans by token:console-operator" in text
            rolled = events(served, "deployment.rollback", "deployment:loans")
            assert rolled and rolled[-1].actor == "token:console-operator"
            assert local.deployments.get("loans").version == "1.0.0"
            await press(app, pilot, "escape")

            # --- 5. acknowledge the drift alert ---------------------------------------
            await press(app, pilot, "4")
            alert = next(a for a in local.alerts.list() if a.rule == "drift-feature" and a.is_open)
            await cursor_to(app, pilot, app.screen.query_one("#alerts", FilterTable), alert.id)
            text = await press(app, pilot, "a")
            assert "drift-feature on loans" in text and "acknowledged by token:console-operator" in text, text
            acked = events(served, "alert.acknowledge", "alert:drift-feature@loans")
            assert acked and acked[-1].actor == "token:console-operator"
            await press(app, pilot, "escape")
            text = await press(app, pilot, "r")
            drift_row = next((line for line in text.splitlines() if "drift-feature" in line), "")
            assert "console-operator" in drift_row, text

            # --- 6. the audit section: the chain verifies, and what this console did --
            text = await press(app, pilot, "7")
            for action in ("alert.acknowledge", "deployment.rollback", "deployment.promote", "approval.approve",
                           "approval.request", "alert.fire"):
                assert action in text, f"{action} is not on the audit screen:\n{text}"
            text = await press(app, pilot, "v")
            assert "audit chain verifies" in text, text
            text = await press(app, pilot, "d")
            assert "What did I do: 5 action(s)" in text, text
            for title in ("Promote the candidate", "Request promotion", "Roll back to revision 1", "Acknowledge alert"):
                assert title in text
            assert "refused" in text and "deployment.rollback" in text
            assert [(d.title, d.outcome) for d in app.did] == [
                ("Promote the candidate", "refused"), ("Request promotion", "ok"), ("Promote the candidate", "ok"),
                ("Roll back to revision 1", "ok"), ("Acknowledge alert", "ok")], app.did
    assert local.audit.verify() is None
