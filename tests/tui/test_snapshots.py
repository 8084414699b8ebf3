"""SVG snapshots of every screen of the console, at 80x24 and 160x48
(pytest-textual-snapshot; the committed SVGs are in ``__snapshots__/test_snapshots/``,
``pytest -m '' --snapshot-update tests/tui/test_snapshots.py`` writes them again; the
160x48 ones are marked slow, so the default run checks the 80x24 ones).

A snapshot of live data would differ run to run, so the console looks at a fixed home,
built here by the platform's own verbs (data committed, two versions trained and
registered, a canary with traffic, drifted predictions, the monitor's check, a pending
approval) under a fixed world:

- the clock: ``mlops_lite.clock.utcnow`` and every module that imported it by name read
  a frozen instant the builder moves on by hand; modules that call ``datetime.now``
  themselves (the prediction log, the console's "what did I do" log) get a ``datetime``
  whose ``now`` reads the same instant; the process runs in TZ=UTC;
- ids: every module of the platform that calls ``uuid.uuid4`` gets a generator of its
  own, seeded with the module's name (a module per thread: the prediction log's flusher
  takes its ids apart from the request path); the canary's traffic split draws from a
  seeded ``random.Random``; the audit chain's key is a fixed test key;
- latency: the request path's ``perf_counter`` advances a fixed binary step per
  reading, so every request takes a known, exactly represented time;
- no refresh tick fires during a snapshot (``refresh_seconds`` is a day).

Data commit ids (sha256 of content and time) and model digests (of the ONNX bytes) are
then the same every run. The home is built once per module; each snapshot opens a new
console on it."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
import random
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.conftest import DATA, FEATURE_EXCLUDE
from tests.tui.conftest import settle

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROOTS = ("mlops_lite", "tui", "server", "flows")
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}


class FrozenClock:
    """The one instant every clock of the platform reads; ``advance`` moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def utcnow(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def _frozen_datetime(clock: FrozenClock) -> type[datetime]:
    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return clock.at.replace(tzinfo=None) if tz is None else clock.at.astimezone(tz)

        @classmethod
        def utcnow(cls) -> Any:
            return clock.at.replace(tzinfo=None)

    return FrozenDatetime


class _SeededUuid(types.ModuleType):
    """``uuid`` with ``uuid4`` drawn from a generator seeded by the module that uses it."""

    def __init__(self, seed: str) -> None:
        super().__init__("uuid")
        self._random = random.Random(seed)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._random.getrandbits(128), version=4)

    def __getattr__(self, name: str) -> Any:
        return getattr(uuid, name)


class _Stepping:
    """``time`` whose ``perf_counter`` moves 1/512 s (1.953125 ms) per reading: a binary
    fraction, so every difference of two readings is exact and a request's latency is the
    same figure every run, however many readings came before."""

    def __init__(self) -> None:
        self.readings = 0

    def perf_counter(self) -> float:
        self.readings += 1
        return self.readings / 512

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class _FixedSecrets:
    def __getattr__(self, name: str) -> Any:
        import secrets

        return getattr(secrets, name)

    @staticmethod
    def token_bytes(n: int | None = 32) -> bytes:
        return hashlib.sha256(b"snapshot audit key").digest()[: n or 32]


def _platform_modules() -> Iterator[types.ModuleType]:
    for name, module in list(sys.modules.items()):
        if module is not None and name.split(".")[0] in ROOTS:
            yield module


def _import_everything_shown() -> None:
    """Import the modules the fixed home and the console use, so the patches below find
    them (a module imported later reads ``mlops_lite.clock.utcnow``, patched, at import)."""
    import mlops_lite.platform  # noqa: F401
    import tui.console
    import tui.screens

    for info in pkgutil.iter_modules(tui.screens.__path__):
        importlib.import_module(f"tui.screens.{info.name}")


def _source(module: types.ModuleType) -> str:
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return ""


def freeze_world(monkeypatch: pytest.MonkeyPatch, clock: FrozenClock) -> None:
    """Every clock, id and latency the fixed home and the console read, made fixed."""
    import mlops_lite.clock

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    _import_everything_shown()
    real_utcnow = mlops_lite.clock.utcnow
    frozen_datetime = _frozen_datetime(clock)
    monkeypatch.setattr(mlops_lite.clock, "utcnow", clock.utcnow)
    for module in _platform_modules():
        if getattr(module, "utcnow", None) is real_utcnow:
            monkeypatch.setattr(module, "utcnow", clock.utcnow)
        source = _source(module)
        if getattr(module, "datetime", None) is datetime and "datetime.now(" in source:
            monkeypatch.setattr(module, "datetime", frozen_datetime)
        if getattr(module, "uuid", None) is uuid and "uuid4" in source:
            monkeypatch.setattr(module, "uuid", _SeededUuid(module.__name__))
    import mlops_lite.inference.pipeline
    import mlops_lite.inference.routing
    import mlops_lite.security.audit

    monkeypatch.setattr(mlops_lite.inference.routing, "random", random.Random(14))
    monkeypatch.setattr(mlops_lite.inference.pipeline, "time", _Stepping())
    monkeypatch.setattr(mlops_lite.security.audit, "secrets", _FixedSecrets())
    # A run records the checkout's commit: fixed, or every new commit of this repository
    # would change the run screen's snapshot.
    import mlops_lite.tracking.provenance as provenance

    monkeypatch.setattr(provenance, "code_version",
                        lambda directory=None: provenance.CodeVersion(commit="c0de" * 10, dirty=False))


@dataclass
class FixedHome:
    platform: Any
    clock: FrozenClock
    home: Path


def _rows(path: Path, features: list[str], start: int, count: int) -> tuple[list[dict[str, Any]], list[int]]:
    import pyarrow.csv as pacsv

    rows = pacsv.read_csv(path).to_pylist()[start:start + count]
    return [{name: row[name] for name in features} for row in rows], [int(row["default"]) for row in rows]


def build_fixed_home(home: Path, clock: FrozenClock) -> Any:
    """A home with something on every screen, built the same way every time."""
    from mlops_lite import TrainingSpec
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local

    settings = load_settings(home=home)
    init_home(settings)
    p = open_local(settings, actor="local:operator")
    for role in ("viewer", "operator", "approver"):
        p.tokens.create(f"console-{role}", role)
    clock.advance(minutes=1)
    p.data.repo("loans").create(classification="internal", exist_ok=True)
    p.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
    clock.advance(minutes=1)
    p.data.repo("loans").branch("fresh").create("main")
    p.data.ingest("loans", DATA / "loans_drifted.csv", "loans/train.csv", branch="fresh")
    clock.advance(minutes=2)
    table = p.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender")
    first = p.training.train("loans", "main", "loans/train.csv", spec)
    v1 = p.registry.register_from_run("loan-default", first.run.id)
    clock.advance(minutes=1)
    p.deployments.deploy("loans", v1.model, v1.version, reason="first release")
    clock.advance(minutes=5)
    second = p.training.train("loans", "main", "loans/train.csv", replace(spec, params={"C": 0.5}),
                              run_name="retrain-logistic_regression")
    v2 = p.registry.register_from_run("loan-default", second.run.id)
    p.registry.set_alias("loan-default", "staging", v2.version, reason="try it")
    clock.advance(minutes=1)
    p.deployments.canary("loans", v2.model, v2.version, weight=0.3, reason="try the retrained version")
    features = [*spec.numeric, *spec.categorical]
    # Ten minutes of labelled traffic: four of held-out rows, then six of drifted ones
    # (the demo's drift: rows of loans_drifted.csv), then the monitor's check of those.
    drifting = clock.at
    for minute in range(10):
        clock.advance(minutes=1)
        if minute == 4:
            drifting = clock.at
        source, count = (DATA / "loans_holdout.csv", 20) if minute < 4 else (DATA / "loans_drifted.csv", 50)
        rows, labels = _rows(source, features, minute * 50, count)
        answers = [p.deployments.predict("loans", [row]) for row in rows]
        p.monitoring.record_feedback("loans", [(a.request_id, label) for a, label in zip(answers, labels, strict=True)])
    p.monitoring.flush()
    clock.advance(seconds=30)
    p.loop.check("loans", since=drifting)
    clock.advance(minutes=1)
    (home / "policies").mkdir(exist_ok=True)
    (home / "policies" / "loan-default.toml").write_text("[approvals]\nrequired = 1\n")
    p.policy.request_promotion("loan-default", v2.version, comment="drift on main; the retrained version holds")
    clock.advance(minutes=2)
    return p


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixedHome]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        clock = FrozenClock(START)
        freeze_world(monkeypatch, clock)
        home = tmp_path_factory.mktemp("snapshots") / "home"
        platform = build_fixed_home(home, clock)
        try:
            yield FixedHome(platform, clock, home)
        finally:
            platform.close()
    time.tzset()


def console(fixed: FixedHome) -> Any:
    from tui import OperatorConsole

    return OperatorConsole(fixed.platform, source="local: fixed home", refresh_seconds=86400)


async def steady(pilot: Pilot[Any], rounds: int = 40) -> None:
    """Wait until what the screen shows stops changing: the loads have reached the
    widgets, a DataTable has measured its columns for the rows it got (it does on idle),
    a chart has been drawn at its final size. Three screenshots 100 ms apart must agree."""
    app = pilot.app
    await settle(app, pilot)
    before, same = app.export_screenshot(), 0
    for _ in range(rounds):
        await pilot.pause(0.1)
        await settle(app, pilot, rounds=1)
        now = app.export_screenshot()
        same = same + 1 if now == before and _tables_measured(app) else 0
        if same == 2:
            return
        before = now
    raise AssertionError(f"the screen kept changing for {rounds} rounds")


def _tables_measured(app: Any) -> bool:
    """Every DataTable on the screen has sized its columns to the rows it holds (it
    measures them when its message queue empties, which a pause does not wait for).

    A DataTable that painted its new rows before measuring them keeps the lines it
    painted (header and rows cut to the labels' widths) until something repaints it
    (Textual 8's row cache is not cleared by the measuring): on a terminal the next key
    or refresh does; here each measured table drops its caches and repaints, so that the
    picture is the measured table every run, not whichever came first."""
    tables = list(app.screen.query(DataTable))
    if any(table._require_update_dimensions or table._updated_cells for table in tables):
        return False
    for table in tables:
        table._clear_caches()
        table.refresh()
    return True


def keys(*pressed: str) -> Callable[[Pilot[Any]], Any]:
    """Press ``pressed`` one at a time, letting the screen settle after each."""
    async def run(pilot: Pilot[Any]) -> None:
        await steady(pilot)
        for key in pressed:
            await pilot.press(key)
            await steady(pilot)
    return run


# screen -> the keys that reach it from the console's first screen (pulse)
SCREENS: dict[str, tuple[str, ...]] = {
    "pulse": (),
    "deployment": ("enter",),
    "deployment-canary": ("enter", "v"),
    "deployment-revisions": ("enter", "h"),
    "promote-confirm": ("enter", "p"),
    "models": ("2",),
    "model": ("2", "enter"),
    "lineage": ("2", "enter", "l"),
    "compare": ("2", "enter", "space", "down", "c"),
    "approvals": ("3",),
    "alerts": ("4",),
    "alert": ("4", "enter"),
    "silences": ("4", "l"),
    "data": ("5",),
    "repository": ("5", "enter"),
    "log": ("5", "enter", "l"),
    "diff": ("5", "enter", "m", "down", "d"),
    "tables": ("5", "enter", "t"),
    "preview": ("5", "enter", "t", "enter"),
    "checks": ("5", "enter", "c"),
    "runs": ("6",),
    "run": ("6", "enter"),
    "audit": ("7",),
    "audit-event": ("7", "enter"),
    "audit-did": ("7", "d"),
    "help": ("question_mark",),
}


@pytest.mark.parametrize("size", [pytest.param(size, marks=() if size == "80x24" else pytest.mark.slow) for size in SIZES])
@pytest.mark.parametrize("screen", SCREENS)
def test_screen(snap_compare: Any, fixed: FixedHome, screen: str, size: str) -> None:
    assert snap_compare(console(fixed), terminal_size=SIZES[size], run_before=keys(*SCREENS[screen]))
