"""One model: its versions (digest, key metrics, created, by, the aliases on each) and the
history of its aliases. ``enter`` opens a version's lineage; ``space`` marks a version and
``c`` compares the marked one with the row under the cursor; ``p`` requests the
promotion of the version under the cursor to an alias (an approver then decides it in
the approvals inbox)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from mlops_lite.records import AliasEventRecord, ApprovalRequest, ModelVersionRecord
from tui.screens.base import ConsoleScreen
from tui.screens.compare import CompareScreen
from tui.screens.lineage import LineageScreen, when
from tui.widgets import FilterTable, PromptScreen, Row

# The metrics a versions table shows first, when a version has them (at most two fit 80 columns).
KEY_METRICS = ("roc_auc", "accuracy", "f1", "r2", "rmse", "mae", "precision", "recall")
SHORT = {"roc_auc": "auc", "accuracy": "acc", "precision": "prec"}


@dataclass(frozen=True)
class ModelView:
    versions: tuple[ModelVersionRecord, ...]
    aliases: dict[str, str]
    history: tuple[AliasEventRecord, ...]
    # The tables' cells, formatted in the load's thread (a model may have thousands of
    # versions): version rows newest first without the mark column, history newest first.
    version_rows: tuple[Row, ...] = ()
    history_rows: tuple[Row, ...] = ()


def key_metrics(metrics: dict[str, Any], limit: int = 2) -> str:
    shown = [name for name in KEY_METRICS if isinstance(metrics.get(name), int | float)][:limit]
    if not shown:
        shown = sorted(k for k, v in metrics.items() if isinstance(v, int | float))[:limit]
    return " ".join(f"{SHORT.get(name, name)} {metrics[name]:.3f}" for name in shown) or "-"


def alias_text(aliases: dict[str, str]) -> str:
    return " ".join(f"{alias}={version}" for alias, version in sorted(aliases.items())) or "-"


class ModelScreen(ConsoleScreen):
    TITLE = "Model"
    BINDINGS = [Binding("space", "mark", "Mark"), Binding("c", "compare", "Compare"),
                Binding("l", "lineage", "Lineage"), Binding("p", "request_promotion", "Request promotion")]
    ACTION_ROLES = {"request_promotion": "operator"}

    DEFAULT_CSS = """
    ModelScreen #summary { height: auto; max-height: 2; padding: 0 1; }
    ModelScreen #versions { height: 3fr; }
    ModelScreen #history { height: 2fr; }
    """

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        self.marked: str | None = None
        self._data: ModelView | None = None

    def crumb(self) -> str:
        return self.model

    def body(self) -> ComposeResult:
        yield Static("", id="summary")
        yield FilterTable((("mark", "*"), ("version", "Version"), ("digest", "Digest"), ("metrics", "Key metrics"),
                           ("created", "Created"), ("by", "By"), ("aliases", "Aliases")),
                          id="versions", title="Versions (enter lineage · space mark · c compare)")
        yield FilterTable((("seq", "#"), ("alias", "Alias"), ("kind", "Kind"), ("move", "From → to"),
                           ("by", "By"), ("at", "At"), ("reason", "Reason")), id="history", title="Alias history")

    def load(self) -> ModelView:
        registry = self.platform.registry
        history = tuple(registry.alias_history(self.model))  # NotFound for an unknown model
        versions = tuple(registry.list_versions(self.model))
        aliases = registry.aliases(self.model)
        on_version: dict[str, list[str]] = {}
        for alias, version in sorted(aliases.items()):
            on_version.setdefault(version, []).append(alias)
        version_rows = tuple(
            Row(v.version, (v.version, v.digest[:12], key_metrics(v.metrics), when(v.created_at), v.created_by,
                            " ".join(on_version.get(v.version, ()))))
            for v in reversed(versions))
        history_rows = tuple(
            Row(e.id, (str(e.seq), e.alias, e.kind, f"{e.from_version or '-'} → {e.to_version or '-'}", e.actor,
                       when(e.at), e.reason))
            for e in reversed(history))
        return ModelView(versions, aliases, history, version_rows, history_rows)

    def show(self, data: ModelView) -> None:
        self._data = data
        self._redraw()

    def _redraw(self) -> None:
        data = self._data
        if data is None:
            return
        summary = Text(f"{self.model}: {len(data.versions)} versions · aliases {alias_text(data.aliases)}")
        if self.marked:
            summary.append(f" · marked {self.marked} (c compares it with the cursor row)", style="bold")
        self.query_one("#summary", Static).update(summary)
        marked = self.marked
        self.query_one("#versions", FilterTable).set_rows(
            Row(r.key, ("●" if r.key == marked else "", *r.cells)) for r in data.version_rows)
        self.query_one("#history", FilterTable).set_rows(data.history_rows)

    def open_row(self, key: str, table: FilterTable) -> None:
        if table.id == "versions":
            self._open_lineage(key)

    def _cursor_version(self) -> str | None:
        return self.query_one("#versions", FilterTable).cursor_key

    def _open_lineage(self, version: str) -> None:
        self.app.push_screen(LineageScreen(self.model, version))

    def action_lineage(self) -> None:
        version = self._cursor_version()
        if version:
            self._open_lineage(version)

    def action_mark(self) -> None:
        version = self._cursor_version()
        if version is None:
            return
        self.marked = None if self.marked == version else version
        self._redraw()

    def action_compare(self) -> None:
        version = self._cursor_version()
        if self.marked is None or version is None:
            self.notify("mark a version with space, move to another, then c", severity="warning")
            return
        if version == self.marked:
            self.notify(f"{version} is the marked version: move the cursor to another one", severity="warning")
            return
        self.app.push_screen(CompareScreen(self.model, self.marked, version))

    def scope(self) -> dict[str, str]:
        return {"model": self.model}

    def action_request_promotion(self) -> None:
        version = self._cursor_version()
        if version is None:
            return
        model = self.model

        def with_comment(alias: str, comment: str | None) -> None:
            if comment is None:
                return
            self.console.perform(
                title="Request promotion", target=f"{model}@{version} → {alias}", role="operator", model=model,
                call=lambda p: p.policy.request_promotion(model, version, alias=alias, comment=comment),
                describe=describe_request, audit_object=f"model:{model}@{version}")

        def with_alias(alias: str | None) -> None:
            if alias:
                self.app.push_screen(PromptScreen(f"Why promote {model}@{version} to {alias}? (optional)",
                                                  placeholder="a comment for the approvers", required=False),
                                     lambda comment: with_comment(alias, comment))

        self.app.push_screen(PromptScreen(f"Request the promotion of {model}@{version} to which alias?",
                                          value="production"), with_alias)


def describe_request(request: ApprovalRequest) -> Text:
    text = Text(f"request {request.id}: {request.model}@{request.version} → {request.alias} is {request.status}",
                style="bold")
    text.append(f"\nrequested by {request.requested_by}")
    if request.approvers:
        text.append(f"; approved by {', '.join(request.approvers)}")
    if request.status == "pending":
        text.append("\nan approver decides it in the approvals inbox (3)")
    return text
