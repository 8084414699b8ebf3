"""Widgets every screen of the console shares: a table with a ``/`` filter that keeps its
cursor across refreshes, the breadcrumb, and the modal screens (confirm, result, help,
text input)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

Cell = str | Text


@dataclass(frozen=True)
class Row:
    """A table row: a key stable across refreshes (the cursor follows it) and its cells."""

    key: str
    cells: tuple[Cell, ...]

    def matches(self, needle: str) -> bool:
        return needle in " ".join(str(c) for c in self.cells).lower()


class FilterTable(Vertical):
    """A ``DataTable`` with a filter line: ``/`` opens it, typing narrows the rows (every
    cell, case-insensitive), ``esc`` clears and closes it. ``set_rows`` replaces the rows,
    does nothing when they did not change (a refresh of an unchanged screen costs no
    redraw), and keeps the cursor on the same row key."""

    DEFAULT_CSS = """
    FilterTable {
        height: 1fr;
        & > Input { display: none; height: 3; }
        &.filtering > Input { display: block; }
        & > DataTable { height: 1fr; }
    }
    """

    BINDINGS = [Binding("slash", "open_filter", "Filter", key_display="/")]

    def __init__(self, columns: Sequence[tuple[str, str]], *, id: str | None = None, title: str = "") -> None:
        super().__init__(id=id)
        self._columns = tuple(columns)
        self._rows: tuple[Row, ...] = ()
        self._shown: tuple[Row, ...] | None = None
        self.needle = ""
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: type to narrow, esc to clear", classes="filter")
        table: DataTable[Cell] = DataTable(cursor_type="row", zebra_stripes=True)
        for key, label in self._columns:
            table.add_column(label, key=key)
        yield table

    @property
    def table(self) -> DataTable[Cell]:
        return self.query_one(DataTable)

    @property
    def rows(self) -> tuple[Row, ...]:
        return self._rows

    def set_rows(self, rows: Iterable[Row]) -> None:
        self._rows = tuple(rows)
        self._render_rows()

    def _render_rows(self) -> None:
        shown = tuple(r for r in self._rows if r.matches(self.needle)) if self.needle else self._rows
        if shown == self._shown:
            return
        self._shown = shown
        table = self.table
        current = self.cursor_key
        index = table.cursor_row
        table.clear()
        for row in shown:
            table.add_row(*row.cells, key=row.key)
        if shown:
            keys = [r.key for r in shown]
            table.move_cursor(row=keys.index(current) if current in keys else min(max(index, 0), len(shown) - 1))

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, or None on an empty table."""
        table = self.table
        if not 0 <= table.cursor_row < table.row_count:
            return None
        return str(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value)

    def action_open_filter(self) -> None:
        self.add_class("filtering")
        self.query_one(Input).focus()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.needle = event.value.strip().lower()
        self._render_rows()

    @on(Input.Submitted)
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    def key_escape(self) -> bool:
        if self.has_class("filtering"):
            self.query_one(Input).value = ""
            self.remove_class("filtering")
            self.table.focus()
            return True
        return False

    def focus_table(self) -> None:
        self.table.focus()


class Breadcrumb(Static):
    """Where the operator is: the screens on the stack, oldest first."""

    DEFAULT_CSS = "Breadcrumb { height: 1; background: $boost; padding: 0 1; }"

    def show(self, parts: Sequence[str], right: str = "") -> None:
        text = Text(" › ".join(parts), style="bold")
        if right:
            text.append("   " + right, style="dim")
        self.update(text)


# ------------------------------------------------------------------------------ modals

class ConfirmScreen(ModalScreen[bool]):
    """Ask before a dangerous action: what it does, to what. ``y``/Enter on Yes confirms."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $warning; padding: 1 2;
                               background: $surface; }
    ConfirmScreen Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    ConfirmScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self._title, self._body = title, body

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self._title, style="bold"))
            yield Static(self._body)
            with Horizontal():
                yield Button("No", id="no")
                yield Button("Yes", id="yes", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PromptScreen(ModalScreen[str | None]):
    """Ask for one value (a comment, a reason, a weight, a duration); esc cancels."""

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $primary; padding: 1 2;
                              background: $surface; }
    PromptScreen #error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, *, placeholder: str = "", value: str = "", required: bool = True) -> None:
        super().__init__()
        self._title, self._placeholder, self._value, self._required = title, placeholder, value, required

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self._title, style="bold"))
            yield Input(value=self._value, placeholder=self._placeholder)
            yield Static("", id="error")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if self._required and not value:
            self.query_one("#error", Static).update("a value is needed (esc cancels)")
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ResultScreen(ModalScreen[None]):
    """What an action did: its answer (or the refusal, with the gates), and the audit event
    it made. Any key closes it."""

    DEFAULT_CSS = """
    ResultScreen { align: center middle; }
    ResultScreen > VerticalScroll { width: 100; max-width: 95%; height: auto; max-height: 90%;
                                    border: thick $primary; padding: 1 2; background: $surface; }
    ResultScreen.failed > VerticalScroll { border: thick $error; }
    """
    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, title: str, body: Any, *, failed: bool = False) -> None:
        super().__init__(classes="failed" if failed else "")
        self._title, self._body = title, body

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(Text(self._title, style="bold"))
            yield Static(self._body)

    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """``?``: the keys of the screen below, and the global ones."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 72; max-width: 95%; height: auto; max-height: 90%;
                                  border: thick $primary; padding: 1 2; background: $surface; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, title: str, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self._title, self._keys = title, keys

    def compose(self) -> ComposeResult:
        text = Text()
        for key, description in self._keys:
            text.append(f"{key:>12}  ", style="bold")
            text.append(description + "\n")
        with VerticalScroll():
            yield Label(Text(f"Keys: {self._title}", style="bold"))
            yield Static(text)

    def action_close(self) -> None:
        self.dismiss(None)
