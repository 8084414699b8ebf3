"""The Data section, driven with a Pilot over a real platform, locally and over HTTP with
a viewer's token: repositories, a repository's rules and branches (head, staged
changes), a branch's log, the diff of two refs, a table's preview at a ref (schema beside
the pinned one, first rows) at 80x24, and the pre-merge checks of a branch whose file
breaks the pinned schema."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Static

from tests.tui.conftest import Served, settle
from tui import OperatorConsole
from tui.screens.data import DataScreen
from tui.screens.repository import ChecksScreen, DiffScreen, LogScreen, RepositoryScreen
from tui.screens.table_preview import TablePreviewScreen, TablesScreen
from tui.widgets import Breadcrumb, FilterTable

pytestmark = pytest.mark.anyio

REPO = "tuidata"
BAD = b"id,amount,email\n4,1.0,x@example.com\n"


@pytest.fixture(scope="module")
def repository(served: Served) -> str:
    """A repository pinning the schema of loans/*.csv: main with two commits, 'good'
    adding a clean file (committed), 'bad' with a staged file that has an extra column."""
    from mlops_lite.data.checks import ColumnRule, SchemaRule

    repo = served.local.data.repo(REPO)
    repo.create(classification="internal")
    repo.configure(protected_branches=[], schemas=[
        SchemaRule("loans/*.csv", (ColumnRule("id", "int", False), ColumnRule("amount", "float")))])
    main = repo.branch("main")
    main.upload("loans/a.csv", b"id,amount\n1,10.5\n2,20.0\n")
    main.commit("first loans")
    main.upload("notes.txt", b"not a table")
    main.commit("a note")
    for name in ("good", "bad"):
        repo.branch(name).create("main")
    rows = "".join(f"{i},{i * 1.5}\n" for i in range(3, 203))
    repo.branch("good").upload("loans/b.csv", ("id,amount\n" + rows).encode())
    repo.branch("good").commit("two hundred more loans")
    repo.branch("bad").upload("loans/c.csv", BAD)
    repo.configure(protected_branches=["main"])
    return REPO


@contextmanager
def platform_for(served: Served, who: str) -> Iterator[Any]:
    if who == "local":
        yield served.local
    else:
        with served.remote(who) as remote:
            yield remote


def rows(app: OperatorConsole, selector: str = "FilterTable") -> list[tuple[str, ...]]:
    table = app.screen.query_one(selector, FilterTable)
    return [tuple(str(c) for c in table.table.get_row(key)) for key in table.table.rows]


def text_of(app: OperatorConsole, selector: str) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(app.screen.query_one(selector, Static).content)
    return console.export_text()


async def screen_text(app: OperatorConsole, pilot: Any, *expect: str) -> str:
    """The screen as an operator reads it: the SVG screenshot's text, line by line (after
    the frames that paint what the last load filled; on a loaded machine those frames can
    come late, so it looks again, for up to 5 s, until every ``expect`` shows)."""
    text = ""
    for _ in range(25):
        await pilot.pause(0.2)
        await pilot.wait_for_scheduled_animations()
        lines: dict[float, list[tuple[float, str]]] = {}
        for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>',
                             app.export_screenshot()):
            lines.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
        text = "\n".join("".join(t for _, t in sorted(parts)) for _, parts in sorted(lines.items())).replace("\xa0", " ")
        if all(e in text for e in expect):
            break
    return text


def cursor_to(app: OperatorConsole, key: str, selector: str = "FilterTable") -> None:
    table = app.screen.query_one(selector, FilterTable)
    table.table.move_cursor(row=[str(k.value) for k in table.table.rows].index(key))
    assert table.cursor_key == key


async def open_repository(app: OperatorConsole, pilot: Any) -> None:
    await settle(app, pilot)
    await pilot.press("5")
    await settle(app, pilot)
    assert isinstance(app.screen, DataScreen)
    listed = {r[0]: r for r in rows(app)}
    assert listed[REPO][1:4] == ("main", "3", "main")
    cursor_to(app, REPO)
    await pilot.press("enter")
    await settle(app, pilot)
    assert isinstance(app.screen, RepositoryScreen)


@pytest.mark.parametrize("who", ["local", "viewer"])
async def test_branches_log_diff_and_a_table_preview(served: Served, repository: str, who: str) -> None:
    with platform_for(served, who) as platform:
        app = OperatorConsole(platform, source=who, refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_repository(app, pilot)
            expected = ("schema loans/*.csv", "Checks", "FAILED 1", "passed", "Staged")
            screen = await screen_text(app, pilot, *expected)
            for seen in expected:
                assert seen in screen, seen
            rules = text_of(app, "#rules")
            assert "internal · protected: main" in rules and "schema loans/*.csv: id:int!, amount:float" in rules
            branches = {r[0]: r for r in rows(app)}
            heads = {b.name: b.head for b in served.local.data.repo(REPO).branches()}
            assert set(branches) == {"main", "good", "bad"}
            assert branches["good"][1] == heads["good"][:12] and branches["good"][6] == "two hundred more loans"
            assert branches["bad"][5] == "1" and branches["good"][5] == "0"  # staged changes
            assert branches["bad"][6] == "a note"
            assert (branches["bad"][2], branches["good"][2], branches["main"][2]) == ("FAILED 1", "passed", "-")

            cursor_to(app, "good")
            await pilot.press("enter")  # its log
            await settle(app, pilot)
            assert isinstance(app.screen, LogScreen)
            assert [r[3] for r in rows(app)] == ["two hundred more loans", "a note", "first loans"]
            assert "mlops-lite › Data › tuidata › log good" in str(app.screen.query_one(Breadcrumb).content)
            first = served.local.data.repo(REPO).log("good")[-1].id
            cursor_to(app, first)
            await pilot.press("enter")  # the objects at that commit
            await settle(app, pilot)
            assert isinstance(app.screen, TablesScreen) and [r[0] for r in rows(app)] == ["loans/a.csv"]
            await pilot.press("escape", "escape")
            await settle(app, pilot)

            await pilot.press("d")  # the default branch (main) .. the cursor's (good)
            await settle(app, pilot)
            assert isinstance(app.screen, DiffScreen)
            size = str(len(served.local.data.repo(REPO).ref("good").read_bytes("loans/b.csv")))
            assert rows(app) == [("added", "loans/b.csv", size)]
            assert "from main to good: 1 added" in text_of(app, "#summary")
            await pilot.press("enter")  # the added table, as good has it
            await settle(app, pilot)
            assert isinstance(app.screen, TablePreviewScreen) and (app.screen.ref, app.screen.path) == \
                ("good", "loans/b.csv")
            await pilot.press("escape", "escape")
            await settle(app, pilot)
            cursor_to(app, "good")  # pick two: mark good, then diff it with bad
            await pilot.press("m")
            cursor_to(app, "bad")
            await pilot.press("d")
            await settle(app, pilot)
            assert isinstance(app.screen, DiffScreen) and app.screen.left == "good" and app.screen.right == "bad"
            assert rows(app) == [("removed", "loans/b.csv", size)]  # bad's own file is only staged
            assert "from good to bad: 1 removed" in text_of(app, "#summary")
            await pilot.press("escape")
            await settle(app, pilot)

            cursor_to(app, "good")
            await pilot.press("t")
            await settle(app, pilot)
            assert isinstance(app.screen, TablesScreen)
            assert [r[0] for r in rows(app)] == ["loans/a.csv", "loans/b.csv", "notes.txt"]
            cursor_to(app, "loans/b.csv")
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, TablePreviewScreen)
            assert rows(app, "#schema") == [("id", "int64", "int, not null"), ("amount", "double", "float")]
            preview = rows(app, "#rows")
            assert len(preview) == 50 and preview[0] == ("3", "4.5") and preview[-1] == ("52", "78.0")
            summary = text_of(app, "#summary")
            assert f"commit {heads['good'][:12]}" in summary and "first 50 row(s) (at most 50)" in summary
            assert "the columns match" in summary
            expected = ("loans/b.csv at good", "Column", "int64", "int, not null", "amount", "4.5")
            screen = await screen_text(app, pilot, *expected)
            for seen in expected:
                assert seen in screen, seen


async def test_a_table_breaking_the_pinned_schema_shows_in_its_preview(served: Served, repository: str) -> None:
    app = OperatorConsole(served.local, source="local", refresh_seconds=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_repository(app, pilot)
        cursor_to(app, "bad")
        await pilot.press("t")
        await settle(app, pilot)
        assert ("loans/c.csv", f"{len(BAD)} B", "table", "staged") in rows(app)
        cursor_to(app, "loans/c.csv")
        await pilot.press("enter")
        await settle(app, pilot)
        assert ("email", "string", "not in the schema") in rows(app, "#schema")
        assert "unexpected ['email'] missing []" in text_of(app, "#summary")


@pytest.mark.parametrize("who", ["local", "viewer"])
async def test_the_checks_of_a_branch_show_what_failed(served: Served, repository: str, who: str) -> None:
    with platform_for(served, who) as platform:
        app = OperatorConsole(platform, source=who, refresh_seconds=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            await open_repository(app, pilot)
            cursor_to(app, "bad")
            await pilot.press("c")
            await settle(app, pilot)
            assert isinstance(app.screen, ChecksScreen)
            assert rows(app) == [("FAILED", "data:loans/c.csv", "schema loans/*.csv"),
                                 ("passed", "merge.conflicts", "none on both sides")]
            verdict = text_of(app, "#verdict")
            assert "tuidata/bad at" in verdict and "-> main (protected): FAILED 1 of 2" in verdict
            assert "1 uncommitted change(s) checked too" in verdict
            failures = text_of(app, "#failures")
            assert "loans/c.csv" in failures and "unexpected ['email']" in failures
            screen = await screen_text(app, pilot, "FAILED 1 of 2", "unexpected ['email']")
            assert "FAILED 1 of 2" in screen and "unexpected ['email']" in screen
            await pilot.press("escape")
            await settle(app, pilot)
            cursor_to(app, "good")
            await pilot.press("c")
            await settle(app, pilot)
            assert rows(app) == [("passed", "merge.conflicts", "none on both sides"),
                                 ("passed", "data:loans/b.csv", "schema loans/*.csv")]
            assert "passed 2 of 2" in text_of(app, "#verdict") and text_of(app, "#failures").strip() == ""
