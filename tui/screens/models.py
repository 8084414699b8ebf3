"""Models: every registered model, its versions and the deployments serving it; ``enter``
opens a model (its versions, alias history, compare, lineage). The command palette gets
an item for each model and each version."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.app import ComposeResult

from mlops_lite.records import ModelRecord
from tui.screens.base import ConsoleScreen
from tui.screens.lineage import LineageScreen
from tui.screens.model import ModelScreen
from tui.widgets import FilterTable, Row


@dataclass(frozen=True)
class ModelsView:
    models: tuple[ModelRecord, ...]
    serving: dict[str, list[str]]  # model -> "deployment@version" for every deployment serving it


class ModelsScreen(ConsoleScreen):
    TITLE = "Models"

    def __init__(self) -> None:
        super().__init__()
        self._palette: set[str] = set()

    def body(self) -> ComposeResult:
        yield FilterTable((("name", "Model"), ("versions", "Versions"), ("latest", "Latest"), ("serving", "Serving"),
                           ("description", "Description")), id="models", title="Models")

    def load(self) -> ModelsView:
        # Two calls whatever the number of models (a model's aliases are on its own screen).
        models = tuple(self.platform.registry.list_models())
        serving: dict[str, list[str]] = {}
        for d in self.platform.deployments.list():
            serving.setdefault(d.model, []).append(f"{d.name}@{d.version}")
            if d.candidate_digest and d.candidate_version:
                serving.setdefault(d.candidate_model or d.model, []).append(f"{d.name}@{d.candidate_version}")
        return ModelsView(models, serving)

    def show(self, data: ModelsView) -> None:
        self.query_one(FilterTable).set_rows(
            Row(m.name, (m.name, str(len(m.versions)), m.versions[-1] if m.versions else "-",
                         " ".join(data.serving.get(m.name, ())) or "-", m.description or ""))
            for m in data.models)
        items = self.console.palette_items
        for m in data.models:
            title = f"Model {m.name}"
            if title not in self._palette:
                self._palette.add(title)
                items[title] = (f"{len(m.versions)} versions", partial(open_model, self.console, m.name))
            for version in m.versions:
                title = f"Version {m.name}@{version}"
                if title not in self._palette:
                    self._palette.add(title)
                    items[title] = ("lineage, card, metrics", partial(open_version, self.console, m.name, version))

    def open_row(self, key: str, table: FilterTable) -> None:
        open_model(self.console, key, switch=False)

    def scope(self) -> dict[str, str]:
        key = self.query_one(FilterTable).cursor_key
        return {"model": key} if key else {}


def open_model(console: Any, model: str, *, switch: bool = True) -> None:
    """The model's screen, in the models section."""
    if switch:
        console.switch_mode("models")
    console.push_screen(ModelScreen(model))


def open_version(console: Any, model: str, version: str) -> None:
    """The version's lineage, over its model's screen, in the models section."""
    console.switch_mode("models")
    console.push_screen(ModelScreen(model))
    console.push_screen(LineageScreen(model, version))
