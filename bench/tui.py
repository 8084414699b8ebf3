"""The operator console's responsiveness at scale (issue 14, item 11): a home with 10,000
model versions, 100 deployments and 1,000 alerts (``--quick``: 2,000 / 20 / 200), the
console run headless (``App.run_test``), every section visited.

Figures, each beside "the same facet calls alone" (the section's ``load()`` called
directly, median), measured in the same run:
- ``tui_first_screen_s``: the app started -> the pulse's rows loaded and drawn (wall
  clock; target <= 1 s).
- ``tui_open_<section>_s``: the section's key pressed -> its rows loaded and drawn
  (target <= 1 s; the section's screen is built on first visit, as an operator meets it).
- ``tui_refresh_ui_<section>_ms``: the UI thread's CPU time (``time.thread_time``) for
  one refresh: ``show()`` of what the worker loaded plus the repaint that follows; the
  load itself runs in a thread worker and is not counted (target <= 200 ms);
  ``tui_refill_ui_<section>_ms`` the same with every table emptied first (every row new),
  and ``tui_first_show_ui_<section>_ms`` the UI thread in the section's first ``show()``
  (what a screen builds once, such as palette items, lands there).

How the home is made: one model trained on the bundled loans data; its ONNX bytes are
recorded as a run per model (``training.record``) and registered
(``registry.register_from_run``) for each deployment's model, and deployed through the
gates; the rest of the versions are copies of those rows inserted set-based (as
bench/registry.py does: recording a run through the API costs ~0.2 s here, 10,000 would
take half an hour), same digest and run, so every version resolves to real bytes. The
alerts fire through the alerts facet: ten rules, an observation per deployment and rule,
then 30% of them resolved. One promotion request per model fills the approvals inbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform as host
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import Figure, print_lines, print_table

DATA = Path(__file__).resolve().parents[1] / "data"
SECTIONS = ("pulse", "models", "approvals", "alerts", "data", "runs", "audit")
EXCLUDE = ("name", "email", "phone", "gender", "age")
OPEN_TARGET_S = 1.0
REFRESH_TARGET_MS = 200.0


@dataclass
class Home:
    versions: int
    deployments: int
    alerts: int
    approvals: int
    runs: int
    seconds: float


@dataclass
class Section:
    name: str
    open_s: float = float("nan")
    open_cpu_s: float = float("nan")  # CPU time of the whole process (UI and workers) over open_s
    reopen_s: float = float("nan")  # back to the section later: its screen exists, one load and show
    load_ms: float = float("nan")
    refresh_ui_ms: float = float("nan")
    refill_ui_ms: float = float("nan")
    first_show_ms: float = float("nan")  # UI thread in the section's first show (palette items built)
    show_ms: float = float("nan")
    render_ms: float = float("nan")
    rows: int = 0
    error: str | None = None
    samples: list[float] = field(default_factory=list)


# ------------------------------------------------------------------------------ the home

def build(home: Path, *, versions: int, deployments: int, alerts: int) -> tuple[Any, str, Home]:
    """A home at scale; answers (the local platform, its admin token, what it holds)."""
    from sqlalchemy import text

    from mlops_lite import TrainingSpec
    from mlops_lite.alerts import AlertRule
    from mlops_lite.alerts.rules import Observation
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local

    start = time.perf_counter()
    settings = load_settings(home=home)
    token = init_home(settings).token
    assert token is not None
    p = open_local(settings)
    logging.getLogger("mlops_lite.alerts").setLevel(logging.ERROR)  # the log sink: 1,000 fires
    p.data.repo("loans").create(classification="internal", exist_ok=True)
    p.data.ingest("loans", DATA / "loans.csv", "loans/train.csv")
    table = p.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=EXCLUDE, sensitive="gender")
    trained = p.training.train("loans", "main", "loans/train.csv", spec)
    onnx = p.registry.artifact_bytes(trained.model_digest)
    run = trained.run
    print(f"  trained one model ({len(onnx):,} ONNX bytes); recording {deployments} runs, registering, deploying ...",
          flush=True)
    models = [f"model-{m:03d}" for m in range(deployments)]
    for m, model in enumerate(models):
        recorded = p.training.record(f"bench-{m}", data_commit=trained.data_commit, tags=dict(run.tags),
                                     params=dict(run.params), metrics=dict(trained.metrics), onnx=onnx,
                                     signature=trained.signature)
        version = p.registry.register_from_run(model, recorded.run.id)
        p.deployments.deploy(f"dep-{m:03d}", version.model, version.version)
    per_model = versions // deployments
    with p._store.engine.begin() as db:  # the copies: set-based, one statement
        db.execute(text(
            "INSERT INTO model_versions (model, version, digest, size, signature, run_id, data_commits, params, "
            "metrics, created_at, created_by) SELECT v.model, '1.' || (i // 100) || '.' || (i % 100), v.digest, "
            "v.size, v.signature, v.run_id, v.data_commits, v.params, v.metrics, "
            "v.created_at + i * INTERVAL 1 SECOND, v.created_by FROM model_versions v, range(1, :n) t(i) "
            "WHERE v.version = '1.0.0' AND v.model LIKE 'model-%'"), {"n": per_model})
    rules = alerts // deployments
    p.alerts.set_rules([AlertRule(name=f"bench-{k}", metric=f"bench.m{k}", op=">", threshold=0.5,
                                  description=f"bench rule {k}") for k in range(rules)])
    fire = [Observation(f"bench.m{k}", f"dep-{m:03d}", 1.0, {"bench": True})
            for m in range(deployments) for k in range(rules)]
    p.alerts.evaluate(fire)
    p.alerts.evaluate([Observation(o.metric, o.subject, 0.0, {"bench": True})
                       for i, o in enumerate(fire) if i % 10 < 3])
    approvals = 0
    for model in models:
        try:
            p.policy.request_promotion(model, "1.0.0", comment="bench")
            approvals += 1
        except Exception as exc:  # a gate or the policy may refuse: the inbox shows what was made
            print(f"  promotion request for {model} refused: {type(exc).__name__}: {exc}", flush=True)
            break
    held = Home(versions=len(p.registry.list_versions()), deployments=len(p.deployments.list()),
                alerts=len(p.alerts.list(limit=10_000)), approvals=approvals,
                runs=deployments + 1, seconds=time.perf_counter() - start)
    return p, token, held


# ------------------------------------------------------------------------------ the console

def median_ms(call: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def rows_shown(screen: Any) -> int:
    from tui.widgets import FilterTable

    return sum(table.table.row_count for table in screen.query(FilterTable))


async def until_shown(app: Any, pilot: Any, section: str, timeout: float) -> Any:
    """Wait for ``section``'s first screen to have loaded (or failed), then let it draw."""
    from tui.console import SCREEN_CLASSES

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        screen = app.screen
        if type(screen).__name__ == SCREEN_CLASSES[section] and (screen.loaded or screen.load_error):
            await pilot.pause()
            return screen
        await asyncio.sleep(0.002)
    raise TimeoutError(f"{section} did not load in {timeout:g} s")


async def refresh_ui_ms(screen: Any, pilot: Any, repeats: int, *, refill: bool = False,
                        ) -> tuple[float, float, float, list[float]]:
    """Median UI-thread CPU time of a refresh: ``_loaded`` (show) + the repaint after it.
    ``refill``: every table is emptied first (not timed), so ``show`` writes every row
    again, as when everything changed; else the refresh finds what it shows unchanged."""
    from tui.widgets import FilterTable
    shown: list[float] = []
    original = screen._loaded

    def timed(data: Any) -> None:
        start = time.thread_time()
        original(data)
        shown.append((time.thread_time() - start) * 1000)

    screen._loaded = timed
    totals, shows, renders = [], [], []
    try:
        for _ in range(repeats):
            if refill:
                for table in screen.query(FilterTable):
                    table.set_rows(())
                await pilot.pause()
            shown.clear()
            screen.reload()
            await screen.workers.wait_for_complete()
            start = time.thread_time()
            await pilot.pause()
            render = (time.thread_time() - start) * 1000
            show = sum(shown)
            shows.append(show)
            renders.append(render)
            totals.append(show + render)
    finally:
        del screen._loaded
    return statistics.median(totals), statistics.median(shows), statistics.median(renders), totals


async def measure(platform: Any, source: str, *, size: tuple[int, int], repeats: int,
                  timeout: float) -> list[Section]:
    """Visit every section; the first show of each is timed on the UI thread too."""
    from tui.screens.base import ConsoleScreen

    results: list[Section] = []
    first_shows: dict[str, float] = {}
    plain_loaded = ConsoleScreen._loaded

    def first_show_timed(screen: Any, data: Any) -> None:
        start = time.thread_time()
        plain_loaded(screen, data)
        first_shows.setdefault(type(screen).__name__, (time.thread_time() - start) * 1000)

    ConsoleScreen._loaded = first_show_timed  # type: ignore[method-assign]
    try:
        return await visit(platform, source, size=size, repeats=repeats, timeout=timeout, results=results,
                           first_shows=first_shows)
    finally:
        ConsoleScreen._loaded = plain_loaded  # type: ignore[method-assign]


async def visit(platform: Any, source: str, *, size: tuple[int, int], repeats: int, timeout: float,
                results: list[Section], first_shows: dict[str, float]) -> list[Section]:
    from tui import OperatorConsole
    from tui.console import SCREEN_CLASSES

    app = OperatorConsole(platform, source=source, refresh_seconds=3600)
    start, cpu = time.perf_counter(), time.process_time()
    async with app.run_test(size=size) as pilot:
        for name in SECTIONS:
            found = Section(name)
            results.append(found)
            if name != "pulse":
                # What the section's key does (pilot.press would also wait for the process to
                # go idle, up to a second, which is not the console's time).
                start, cpu = time.perf_counter(), time.process_time()
                app.action_section(name)
            try:
                screen = await until_shown(app, pilot, name, timeout)
            except TimeoutError as exc:
                found.error = str(exc)
                continue
            found.open_s = time.perf_counter() - start
            found.open_cpu_s = time.process_time() - cpu
            if screen.load_error:
                found.error = screen.load_error
                continue
            found.rows = rows_shown(screen)
            found.first_show_ms = first_shows.get(SCREEN_CLASSES[name], float("nan"))
            found.load_ms = median_ms(screen.load, repeats)
            found.refresh_ui_ms, found.show_ms, found.render_ms, found.samples = \
                await refresh_ui_ms(screen, pilot, repeats)
            found.refill_ui_ms, refill_show, refill_render, _ = await refresh_ui_ms(screen, pilot, repeats, refill=True)
            print(f"  {name:<10} open {found.open_s:6.3f} s (CPU {found.open_cpu_s:.3f} s, first show "
                  f"{found.first_show_ms:.1f} ms)   load alone {found.load_ms:7.1f} ms   refresh UI "
                  f"{found.refresh_ui_ms:5.1f} ms (show {found.show_ms:.1f} + repaint {found.render_ms:.1f}), "
                  f"all rows new {found.refill_ui_ms:5.1f} ms (show {refill_show:.1f} + repaint "
                  f"{refill_render:.1f})   {found.rows} rows", flush=True)
        for found in results:
            if found.error is None:
                found.reopen_s = await reopen(app, pilot, found.name, timeout)
    print("  back to each section (its screen kept): " + ", ".join(
        f"{s.name} {s.reopen_s:.3f} s" for s in results), flush=True)
    return results


async def reopen(app: Any, pilot: Any, section: str, timeout: float) -> float:
    """Seconds from the section's key to its screen shown again with a fresh load."""
    app.action_section("pulse" if section != "pulse" else "models")
    await pilot.pause()
    screen = app.get_screen_stack(section)[-1]
    loads: list[float] = []
    original = screen._loaded

    def counted(data: Any) -> None:
        original(data)
        loads.append(time.perf_counter())

    screen._loaded = counted  # before the key: the load may land at once
    try:
        start = time.perf_counter()
        app.action_section(section)
        while not loads and time.perf_counter() < start + timeout:
            await asyncio.sleep(0.002)
        await pilot.pause()
    finally:
        del screen._loaded
    return time.perf_counter() - start if loads else float("nan")


def figures(sections: list[Section]) -> list[Figure]:
    out = []
    for s in sections:
        reference = s.load_ms / 1000
        label = "first screen (pulse)" if s.name == "pulse" else f"open {s.name}"
        figure = "tui_first_screen_s" if s.name == "pulse" else f"tui_open_{s.name}_s"
        out.append(Figure(figure, label, "s", s.open_s, reference, f"{s.name}.load() alone",
                          s.open_s / reference if reference else float("nan"), OPEN_TARGET_S,
                          s.open_s <= OPEN_TARGET_S and s.error is None, "value <=", note=s.error or ""))
    for s in sections:
        out.append(Figure(f"tui_refresh_ui_{s.name}_ms", f"refresh {s.name}: UI thread", "ms", s.refresh_ui_ms,
                          s.load_ms, f"{s.name}.load() alone", s.refresh_ui_ms / s.load_ms if s.load_ms else
                          float("nan"), REFRESH_TARGET_MS, s.refresh_ui_ms <= REFRESH_TARGET_MS and s.error is None,
                          "value <=", note=s.error or ""))
    for s in sections:
        out.append(Figure(f"tui_first_show_ui_{s.name}_ms", f"first show {s.name}: UI", "ms", s.first_show_ms,
                          s.load_ms, f"{s.name}.load() alone", s.first_show_ms / s.load_ms if s.load_ms else
                          float("nan"), REFRESH_TARGET_MS, s.first_show_ms <= REFRESH_TARGET_MS and s.error is None,
                          "value <=", note=s.error or ""))
    for s in sections:
        out.append(Figure(f"tui_refill_ui_{s.name}_ms", f"refill {s.name}: UI thread", "ms", s.refill_ui_ms,
                          s.load_ms, f"{s.name}.load() alone", s.refill_ui_ms / s.load_ms if s.load_ms else
                          float("nan"), REFRESH_TARGET_MS, s.refill_ui_ms <= REFRESH_TARGET_MS and s.error is None,
                          "value <=", note=s.error or ""))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 versions, 20 deployments, 200 alerts")
    parser.add_argument("--http", action="store_true",
                        help="run the console over HTTP (the home served on 127.0.0.1, the admin token)")
    parser.add_argument("--size", default="160x48", help="the terminal, COLUMNSxROWS (default 160x48)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    versions, deployments, alerts = (2_000, 20, 200) if args.quick else (10_000, 100, 1_000)
    repeats = 3 if args.quick else 7
    columns, _, rows = args.size.partition("x")
    size = (int(columns), int(rows))
    print(f"bench/tui.py ({'quick' if args.quick else 'default'} size): {versions:,} versions, {deployments} "
          f"deployments, {alerts:,} alerts; console {size[0]}x{size[1]}, {'over HTTP' if args.http else 'local'}")
    print(f"  machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, Python {host.python_version()}; "
          f"{host.platform()}")
    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-tui-") as tmp:
        platform, token, held = build(Path(tmp) / "home", versions=versions, deployments=deployments, alerts=alerts)
        print(f"  home made in {held.seconds:.1f} s: {held.versions:,} versions, {held.deployments} deployments, "
              f"{held.alerts:,} alerts, {held.approvals} approval requests, {held.runs} runs\n", flush=True)
        running = None
        try:
            if args.http:
                from mlops_lite.client import RemotePlatform
                from server import create_app
                from server.runner import serve_in_thread

                running = serve_in_thread(create_app(platform))
                console_platform: Any = RemotePlatform(running.url, token)
                source = f"remote: {running.url}"
            else:
                console_platform, source = platform, f"local: {tmp}"
            sections = asyncio.run(measure(console_platform, source, size=size, repeats=repeats, timeout=60))
            if args.http:
                console_platform.close()
        finally:
            if running is not None:
                running.stop()
            platform.close()
    results = figures(sections)
    print()
    print_table(results, label=30, value=14)
    for s in sections:
        if s.error:
            print(f"  {s.name}: {s.error}")
    print_lines(results)
    if args.json:
        args.json.write_text(json.dumps({"home": asdict(held), "sections": [asdict(s) for s in sections],
                                         "figures": [asdict(f) for f in results]}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
