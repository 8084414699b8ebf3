"""Fixtures for the console's tests: a real platform with a trained, registered and
deployed model ('loans' serving loan-default 1.0.0), the same platform served over HTTP
on 127.0.0.1 with a token per role, and ``settle`` to wait for the screen's loads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot

from tests.conftest import build_loop


@dataclass
class Served:
    """A platform over a real home, and RemotePlatforms to it per role."""

    local: Any
    url: str
    tokens: dict[str, str]
    home: Path

    def remote(self, role: str) -> Any:
        from mlops_lite.client import RemotePlatform

        return RemotePlatform(self.url, self.tokens[role])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from server import create_app
    from server.runner import serve_in_thread

    home = tmp_path_factory.mktemp("console") / "home"
    platform: Any
    platform, admin, _ = build_loop(home)
    tokens = {"admin": admin}
    for role in ("viewer", "operator", "approver"):
        tokens[role] = platform.tokens.create(f"console-{role}", role)[1]
    running = serve_in_thread(create_app(platform))
    try:
        yield Served(platform, running.url, tokens, home)
    finally:
        running.stop()
        platform.close()


async def settle(app: App[Any], pilot: Pilot[Any], rounds: int = 3) -> None:
    """Let every load in flight finish and reach the screen (screens' workers included)."""
    from textual.worker import WorkerCancelled

    for _ in range(rounds):
        await pilot.pause()
        try:
            await app.workers.wait_for_complete()
            for screen in app.screen_stack:
                await screen.workers.wait_for_complete()
        except WorkerCancelled:
            pass  # an exclusive load replaced by a newer one: the next round waits for that
        await pilot.pause()
