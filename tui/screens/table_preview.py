"""The objects at a ref, and a table's preview: its schema (beside the repository's pinned
schema for that path, when one applies) and its first rows. The preview reads through
``repo.query`` with a LIMIT (DuckDB reads what the limit needs, locally or on the
server), never the whole table."""

from __future__ import annotations

import fnmatch
import itertools
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from tui.screens.base import ConsoleScreen
from tui.widgets import FilterTable, Row

PREVIEW_ROWS = 50
MAX_OBJECTS = 2000
TABLE_SUFFIXES = (".csv", ".parquet")


def is_table(path: str) -> bool:
    return path.lower().endswith(TABLE_SUFFIXES)


def size_text(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


class TablesScreen(ConsoleScreen):
    """Every object at a ref (tables first); ``enter`` on a table previews it."""

    TITLE = "Tables"

    def __init__(self, repository: str, ref: str) -> None:
        super().__init__()
        self.repository, self.ref = repository, ref

    def crumb(self) -> str:
        return f"at {self.ref[:12]}"

    def scope(self) -> dict[str, str]:
        return {"repository": self.repository}

    def body(self) -> ComposeResult:
        yield FilterTable((("path", "Path"), ("size", "Size"), ("kind", "Kind"), ("staged", "Staged")),
                          id="objects", title=f"Objects at {self.ref[:12]}")

    def load(self) -> Any:
        objects = self.platform.data.repo(self.repository).ref(self.ref).objects()
        return list(itertools.islice(objects, MAX_OBJECTS + 1))

    def show(self, data: Any) -> None:
        shown = sorted(data[:MAX_OBJECTS], key=lambda o: (not is_table(o.path), o.path))
        table = self.query_one(FilterTable)
        more = f", first {MAX_OBJECTS}" if len(data) > MAX_OBJECTS else ""
        table.border_title = f"Objects at {self.ref[:12]} ({len(shown)}{more})"
        table.set_rows(Row(o.path, (o.path, size_text(o.size), "table" if is_table(o.path) else "",
                                    Text("staged", style="yellow") if o.staged else ""))
                       for o in shown)

    def open_row(self, key: str, table: FilterTable) -> None:
        if not is_table(key):
            self.notify(f"{key} is not a table (CSV or Parquet)", severity="warning")
            return
        self.app.push_screen(TablePreviewScreen(self.repository, self.ref, key))


class TablePreviewScreen(ConsoleScreen):
    """A table at a ref: the commit it was read at, its schema and its first rows."""

    TITLE = "Preview"
    AUTO_REFRESH = False
    DEFAULT_CSS = """
    TablePreviewScreen #schema { height: 8; }
    TablePreviewScreen #summary { height: auto; }
    """

    def __init__(self, repository: str, ref: str, path: str) -> None:
        super().__init__()
        self.repository, self.ref, self.path = repository, ref, path
        self.columns: tuple[str, ...] = ()

    def crumb(self) -> str:
        return f"{self.path} at {self.ref[:12]}"

    def scope(self) -> dict[str, str]:
        return {"repository": self.repository}

    def body(self) -> ComposeResult:
        yield Static("", id="summary")
        yield FilterTable((("column", "Column"), ("type", "Type"), ("pinned", "Pinned schema")), id="schema",
                          title="Schema")
        yield FilterTable((), id="rows", title="Rows")

    def load(self) -> Any:
        repo = self.platform.data.repo(self.repository)
        result = repo.query(f"SELECT * FROM preview LIMIT {PREVIEW_ROWS}", preview=(self.ref, self.path))
        pinned = [rule for rule in repo.config().schemas if fnmatch.fnmatch(self.path, rule.paths)]
        return result, pinned

    def show(self, data: Any) -> None:
        result, pinned = data
        table = result.table
        commit = result.commits.get("preview", "")
        expected = {c.name: c for rule in pinned for c in rule.columns}
        summary = Text(f"{self.path} at {self.ref} (commit {commit[:12]}): first {table.num_rows} row(s)"
                       f"{' (at most ' + str(PREVIEW_ROWS) + ')' if table.num_rows >= PREVIEW_ROWS else ''}, "
                       f"{table.num_columns} column(s)")
        if pinned:
            unexpected = [n for n in table.column_names if n not in expected]
            missing = [n for n in expected if n not in table.column_names]
            summary.append(f"\npinned by schema {', '.join(r.paths for r in pinned)}: ")
            if unexpected or missing:
                summary.append(f"unexpected {unexpected} missing {missing}", style="bold red")
            else:
                summary.append("the columns match", style="green")
        self.query_one("#summary", Static).update(summary)
        schema_rows = []
        for field in table.schema:
            rule = expected.get(field.name)
            pin: Any = (f"{rule.type}{'' if rule.nullable else ', not null'}" if rule
                        else Text("not in the schema", style="red") if pinned else "")
            schema_rows.append(Row(field.name, (field.name, str(field.type), pin)))
        for name, rule in expected.items():
            if name not in table.column_names:
                schema_rows.append(Row(name, (Text(name, style="red"), Text("missing", style="red"), rule.type)))
        self.query_one("#schema", FilterTable).set_rows(schema_rows)
        rows = self.query_one("#rows", FilterTable)
        names = tuple(table.column_names)
        if names != self.columns:
            rows.set_rows(())
            rows.table.clear(columns=True)
            for name in names:
                rows.table.add_column(name, key=name)
            self.columns = names
        rows.border_title = f"Rows (first {table.num_rows})"
        values = table.to_pylist()
        rows.set_rows(Row(str(i), tuple(_cell(v.get(n)) for n in names)) for i, v in enumerate(values))


def _cell(value: Any) -> str | Text:
    if value is None:
        return Text("∅", style="dim")
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"
