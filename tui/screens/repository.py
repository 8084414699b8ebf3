"""One repository: its rules and its branches (head commit, staged changes); from a
branch its commit log, the diff of two refs, the tables at a ref, and the checks a merge
of the branch would run (mlops_lite/data/premerge.py, as ``mlops-lite ci data-check``)."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from mlops_lite.errors import MlopsLiteError
from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row

LOG_AMOUNT = 200
MAX_BRANCHES = 100
CHECKED_BRANCHES = 20  # branches whose pre-merge checks the list runs (each reads its changed tables)


def short(commit: str | None) -> str:
    return commit[:12] if commit else "(none)"


def one_line(text: str, limit: int = 60) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[:limit - 1] + "…"


def rules_text(config: Any) -> Text:
    """The repository's rules in a few lines."""
    text = Text()
    text.append(f"{config.classification}", style="bold")
    text.append(f" · protected: {', '.join(config.protected_branches) or 'none'}")
    if config.max_object_bytes is not None:
        text.append(f" · objects <= {config.max_object_bytes} bytes")
    if config.effective_pii_patterns:
        text.append(f" · PII: {len(config.effective_pii_patterns)} pattern(s)")
    for rule in config.schemas:
        columns = ", ".join(f"{c.name}:{c.type}{'' if c.nullable else '!'}" for c in rule.columns)
        text.append(f"\nschema {rule.paths}: {columns}")
    if not config.has_rules:
        text.append("\nno data rules (schemas, PII, size): checks see conflicts only", style="dim")
    return text


class RepositoryScreen(ConsoleScreen):
    TITLE = "Repository"
    BINDINGS = [Binding("l", "log", "Log"), Binding("t", "tables", "Tables"),
                Binding("m", "mark", "Mark"), Binding("d", "diff", "Diff"), Binding("c", "checks", "Checks")]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.repository = name
        self.default = "main"
        self.marked: str | None = None
        # Pre-merge verdicts by (branch, head, staged paths and digests): a branch's checks
        # run again only when it moved. Touched by the (exclusive) load worker only.
        self._verdicts: dict[tuple[Any, ...], Text] = {}

    def crumb(self) -> str:
        return self.repository

    def scope(self) -> dict[str, str]:
        return {"repository": self.repository}

    def body(self) -> ComposeResult:
        yield Static("", id="rules")
        yield FilterTable((("branch", "Branch"), ("head", "Head"), ("checks", "Checks"), ("when", "When"),
                           ("author", "Author"), ("staged", "Staged"), ("message", "Message")),
                          id="branches", title="Branches")

    def load(self) -> Any:
        repo = self.platform.data.repo(self.repository)
        info = repo.info()
        config = repo.config()
        rules = json.dumps(config.to_json(), sort_keys=True, default=str)
        rows = []
        for index, b in enumerate(repo.branches()[:MAX_BRANCHES]):
            branch = repo.branch(b.name)
            staged = branch.uncommitted()
            verdict = Text("-", style="dim")
            if b.name != info.default_branch and index < CHECKED_BRANCHES:
                verdict = self._verdict(repo, b.name, info.default_branch, (
                    b.head, tuple(sorted((d.path, d.type, d.right or "") for d in staged)), rules))
            rows.append((b, branch.head(), len(staged), verdict))
        return info, config, rows

    def _verdict(self, repo: Any, branch: str, into: str, state: tuple[Any, ...]) -> Text:
        """The checks a merge of ``branch`` into ``into`` runs, in a word; cached while the
        branch, its staged changes and the rules stay as they were."""
        from mlops_lite.data.premerge import premerge

        key = (branch, into, *state)
        if key not in self._verdicts:
            try:
                checked = premerge(repo, branch, into)
            except MlopsLiteError as exc:
                return Text(f"error: {exc.message}"[:40], style="red")
            failed = len(checked.failed) + (1 if checked.conflicts else 0)
            self._verdicts[key] = (Text(f"FAILED {failed}", style="bold red") if failed
                                   else Text("passed", style="green"))
        return self._verdicts[key]

    def show(self, data: Any) -> None:
        info, config, rows = data
        self.default = info.default_branch
        self.query_one("#rules", Static).update(rules_text(config))
        table = self.query_one(FilterTable)
        table.border_title = "Branches" + (f" (marked: {self.marked}, d diffs it with the cursor)"
                                           if self.marked else "")
        table.set_rows(
            Row(b.name, (Text(b.name, style="bold") if b.name == self.default else b.name, short(b.head), verdict,
                         f"{head.created_at:%Y-%m-%d %H:%M}" if head else "", head.author if head else "",
                         Text(str(staged), style="yellow") if staged else "0",
                         one_line(head.message) if head else ""))
            for b, head, staged, verdict in rows)

    def cursor(self) -> str | None:
        return self.query_one(FilterTable).cursor_key

    def open_row(self, key: str, table: FilterTable) -> None:
        self.app.push_screen(LogScreen(self.repository, key))

    def action_log(self) -> None:
        if (branch := self.cursor()) is not None:
            self.app.push_screen(LogScreen(self.repository, branch))

    def action_tables(self) -> None:
        from tui.screens.table_preview import TablesScreen

        if (branch := self.cursor()) is not None:
            self.app.push_screen(TablesScreen(self.repository, branch))

    def action_mark(self) -> None:
        branch = self.cursor()
        self.marked = None if branch == self.marked else branch
        self.query_one(FilterTable).border_title = "Branches" + (
            f" (marked: {self.marked}, d diffs it with the cursor)" if self.marked else "")

    def action_diff(self) -> None:
        """The diff from the marked branch (else the default one) to the branch under the cursor."""
        right = self.cursor()
        if right is None:
            return
        left = self.marked or self.default
        if left == right:
            self.notify(f"mark another branch (m) to diff with {right}", severity="warning")
            return
        self.app.push_screen(DiffScreen(self.repository, left, right))

    def action_checks(self) -> None:
        branch = self.cursor()
        if branch is None:
            return
        if branch == self.default:
            self.notify(f"{branch} is the branch others merge into: pick another", severity="warning")
            return
        self.app.push_screen(ChecksScreen(self.repository, branch, self.default))


class LogScreen(ConsoleScreen):
    """The commits of a ref, newest first; ``enter`` (or ``t``) lists the tables at one."""

    TITLE = "Log"
    BINDINGS = [Binding("t", "tables", "Tables")]

    def __init__(self, repository: str, ref: str) -> None:
        super().__init__()
        self.repository, self.ref = repository, ref

    def crumb(self) -> str:
        return f"log {self.ref}"

    def scope(self) -> dict[str, str]:
        return {"repository": self.repository}

    def body(self) -> ComposeResult:
        yield FilterTable((("id", "Commit"), ("when", "When"), ("author", "Author"), ("message", "Message")),
                          id="log", title=f"Commits of {self.ref}")

    def load(self) -> Any:
        return self.platform.data.repo(self.repository).log(self.ref, amount=LOG_AMOUNT)

    def show(self, data: Any) -> None:
        table = self.query_one(FilterTable)
        table.border_title = f"Commits of {self.ref} ({len(data)}{'+' if len(data) >= LOG_AMOUNT else ''})"
        table.set_rows(Row(c.id, (short(c.id), f"{c.created_at:%Y-%m-%d %H:%M}", c.author, one_line(c.message)))
                       for c in data)

    def open_row(self, key: str, table: FilterTable) -> None:
        from tui.screens.table_preview import TablesScreen

        self.app.push_screen(TablesScreen(self.repository, key))

    def action_tables(self) -> None:
        if (key := self.query_one(FilterTable).cursor_key) is not None:
            self.open_row(key, self.query_one(FilterTable))


class DiffScreen(ConsoleScreen):
    """What changed from ``left`` to ``right``; ``enter`` previews a table as ``right`` has it."""

    TITLE = "Diff"

    def __init__(self, repository: str, left: str, right: str) -> None:
        super().__init__()
        self.repository, self.left, self.right = repository, left, right
        self.types: dict[str, str] = {}

    def crumb(self) -> str:
        return f"diff {self.left}..{self.right}"

    def scope(self) -> dict[str, str]:
        return {"repository": self.repository}

    def body(self) -> ComposeResult:
        yield Static("", id="summary")
        yield FilterTable((("type", "Change"), ("path", "Path"), ("size", "Size")), id="diff",
                          title=f"{self.left} .. {self.right}")

    def load(self) -> Any:
        return self.platform.data.repo(self.repository).diff(self.left, self.right)

    def show(self, data: Any) -> None:
        counts: dict[str, int] = {}
        for d in data:
            counts[d.type] = counts.get(d.type, 0) + 1
        self.query_one("#summary", Static).update(
            f"from {self.left} to {self.right}: "
            + (", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no difference"))
        style = {"added": "green", "removed": "red", "changed": "yellow"}
        self.query_one(FilterTable).set_rows(
            Row(d.path, (Text(d.type, style=style.get(d.type, "")), d.path, str(d.size))) for d in data)
        self.types = {d.path: d.type for d in data}

    def open_row(self, key: str, table: FilterTable) -> None:
        from tui.screens.table_preview import TablePreviewScreen, is_table

        if not is_table(key):
            self.notify(f"{key} is not a table (CSV or Parquet)", severity="warning")
            return
        ref = self.left if self.types.get(key) == "removed" else self.right
        self.app.push_screen(TablePreviewScreen(self.repository, ref, key))


class ChecksScreen(ConsoleScreen):
    """The checks a merge of ``branch`` into ``into`` runs (failed first), as
    ``mlops-lite ci data-check`` runs them; read once (``r`` reads again): they read
    every changed table."""

    TITLE = "Checks"
    AUTO_REFRESH = False

    def __init__(self, repository: str, branch: str, into: str) -> None:
        super().__init__()
        self.repository, self.branch, self.into = repository, branch, into

    def crumb(self) -> str:
        return f"checks {self.branch} -> {self.into}"

    def scope(self) -> dict[str, str]:
        return {"repository": self.repository}

    def body(self) -> ComposeResult:
        yield Static("checking…", id="verdict")
        yield FilterTable((("result", "Result"), ("check", "Check"), ("rules", "Rules")), id="checks",
                          title="Checks")
        yield Static("", id="failures")

    def load(self) -> Any:
        from mlops_lite.data.premerge import premerge

        return premerge(self.platform.data.repo(self.repository), self.branch, self.into)

    def show(self, data: Any) -> None:
        failed = len(data.failed) + (1 if data.conflicts else 0)
        total = len(data.paths) + 1
        verdict = Text(f"{data.repository}/{data.branch} at {short(data.head)} -> {data.into}"
                       f"{' (protected)' if data.protected else ''}: ")
        verdict.append(f"FAILED {failed} of {total}" if failed else f"passed {total} of {total}",
                       style="bold red" if failed else "bold green")
        if data.staged:
            verdict.append(f"\n{data.staged} uncommitted change(s) checked too; commit them before merging",
                           style="yellow")
        if not data.has_rules:
            verdict.append("\nno data rules: only conflicts were checked", style="dim")
        self.query_one("#verdict", Static).update(verdict)
        rows = [Row("merge.conflicts", (_verdict(not data.conflicts), "merge.conflicts", "none on both sides"))]
        rows += [Row(f"data:{c.path}", (_verdict(c.passed), f"data:{c.path}", c.rules)) for c in data.paths]
        rows.sort(key=lambda r: str(r.cells[0]) != "FAILED")
        self.query_one(FilterTable).set_rows(rows)
        failures = Text()
        if data.conflicts:
            failures.append(f"conflicts: changed on both {data.branch} and {data.into}: "
                            f"{', '.join(data.conflicts[:20])}\n", style="red")
        for c in data.failed:
            for reason in c.reasons:
                failures.append(f"{reason}\n", style="red")
        self.query_one("#failures", Static).update(failures)


def _verdict(passed: bool) -> Text:
    return Text("passed", style="green") if passed else Text("FAILED", style="bold red")
