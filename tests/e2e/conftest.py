"""Fixtures of the end-to-end suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_daemon import Daemon


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts; any still alive at teardown are killed with their process group."""
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.kill()
