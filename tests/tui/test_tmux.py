"""The console in a real terminal: ``mlops-lite tui`` in a detached tmux session of 80x24
(as an operator over SSH gets it) against a real home, read back with
``tmux capture-pane``; and Textual's built-in theme switching through the palette."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_loop
from tests.tui.conftest import settle
from tui import OperatorConsole

TMUX = shutil.which("tmux")


@pytest.fixture(scope="module")
def closed_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with 'loans' serving loan-default 1.0.0, its stores closed (the console opens them)."""
    home = tmp_path_factory.mktemp("tmux") / "home"
    platform: Any
    platform, _, _ = build_loop(home)
    platform.close()
    return home


class Terminal:
    """One detached tmux session on a server of its own (its own socket, no user config)."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        self.socket, self.env = socket, env

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert TMUX is not None
        return subprocess.run([TMUX, "-f", "/dev/null", "-S", str(self.socket), *args], env=self.env,
                              capture_output=True, text=True, timeout=30, check=check)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "console").stdout

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "console", check=False).returncode == 0

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "console", *keys)

    def wait(self, what: str, until: Callable[[str], bool], seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen()
            if until(shown):
                return shown
            time.sleep(0.2)
        raise AssertionError(f"the terminal never showed {what}; it shows:\n{shown}")


@pytest.fixture
def terminal(closed_home: Path) -> Iterator[Terminal]:
    if TMUX is None:
        pytest.skip("tmux is not installed (apt-get install tmux): the real-terminal test needs it")
    folder = Path(tempfile.mkdtemp(prefix="tmux-"))  # short: a socket path is at most 107 bytes
    env = {**os.environ, "MLOPS_LITE_HOME": str(closed_home), "TERM": "xterm-256color"}
    env.pop("MLOPS_LITE_URL", None)
    env.pop("MLOPS_LITE_TOKEN", None)
    term = Terminal(folder / "sock", env)
    try:
        yield term
    finally:
        term.tmux("kill-server", check=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_console_in_tmux_at_80x24(terminal: Terminal) -> None:
    command = shlex.join([sys.executable, "-m", "mlops_lite", "tui", "--refresh", "1"])
    terminal.tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", command)
    assert terminal.tmux("display-message", "-p", "-t", "console", "#{pane_width}x#{pane_height}").stdout.strip() \
        == "80x24"
    shown = terminal.wait("the pulse with 'loans'", lambda s: "Pulse" in s and "loans" in s)
    assert len(shown.splitlines()) <= 24
    assert all(len(line) <= 80 for line in shown.splitlines())
    terminal.keys("2")
    terminal.wait("Models", lambda s: "Models" in s and "loan-default" in s and "loans " not in s)
    terminal.keys("?")
    terminal.wait("the help of the Models screen", lambda s: "Keys: mlops-lite › Models" in s and "Filter" in s)
    terminal.keys("Escape")
    terminal.wait("the help closed", lambda s: "Keys:" not in s)
    terminal.keys("q")
    deadline = time.monotonic() + 30
    while terminal.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not terminal.alive(), terminal.screen()


@pytest.mark.anyio
async def test_a_theme_chosen_in_the_palette(closed_home: Path) -> None:
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local

    with open_local(load_settings(home=closed_home)) as platform:
        await choose_nord(OperatorConsole(platform, source="local: test", refresh_seconds=3600))


async def choose_nord(app: OperatorConsole) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        before = app.screen.styles.background
        assert app.theme != "nord"
        await pilot.press("ctrl+p")
        await pilot.press(*"theme")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.5)
        await pilot.press(*"nord")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.theme == "nord"
        nord = app.get_theme("nord")
        assert nord is not None and app.screen.styles.background != before


@pytest.mark.slow
def test_the_console_in_tmux_on_the_demos_home(tmp_path: Path) -> None:
    """The home `mlops-lite demo` leaves (two acts: drift, retrain, canary, promote), read
    in a real 80x24 terminal: the pulse shows 'loans' and its firing drift alert, the
    alerts section lists it, models shows both versions."""
    if TMUX is None:
        pytest.skip("tmux is not installed (apt-get install tmux): the real-terminal test needs it")
    home = tmp_path / "demo-home"
    env = {**os.environ, "MLOPS_LITE_HOME": str(home), "TERM": "xterm-256color"}
    env.pop("MLOPS_LITE_URL", None)
    env.pop("MLOPS_LITE_TOKEN", None)
    demo = subprocess.run([sys.executable, "-m", "mlops_lite", "demo"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    folder = Path(tempfile.mkdtemp(prefix="tmux-"))
    term = Terminal(folder / "sock", env)
    try:
        command = shlex.join([sys.executable, "-m", "mlops_lite", "tui", "--refresh", "1"])
        term.tmux("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", command)
        term.wait("the pulse with 'loans' and its drift alert", lambda s: "loans" in s and "Drift" in s and "firing" in s)
        term.keys("4")
        term.wait("the firing drift alert", lambda s: "Alerts" in s and "drift-feature" in s and "firing" in s)
        term.keys("2")
        term.wait("both versions", lambda s: "loan-default" in s and "1.1.0" in s)
        term.keys("q")
        deadline = time.monotonic() + 30
        while term.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not term.alive(), term.screen()
    finally:
        term.tmux("kill-server", check=False)
        shutil.rmtree(folder, ignore_errors=True)
