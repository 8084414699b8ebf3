"""Which Platform a task uses. Flows take the home as a plain parameter; a caller
that already holds the stores (the demo, the daemon, tests) binds its Platform so
tasks share it instead of opening the DuckDB file a second time."""

from __future__ import annotations

import atexit
import threading

from mlops_lite import Platform, connect

_bound: dict[str, Platform] = {}
_lock = threading.Lock()


def bind(platform: Platform) -> None:
    with _lock:
        _bound[str(platform.settings.home)] = platform


def unbind(platform: Platform) -> None:
    with _lock:
        if _bound.get(str(platform.settings.home)) is platform:
            del _bound[str(platform.settings.home)]


def platform_for(home: str) -> Platform:
    """The bound Platform for ``home``, or one opened now and closed at exit."""
    with _lock:
        platform = _bound.get(home)
        if platform is None:
            platform = connect(home=home)
            _bound[home] = platform
            atexit.register(platform.close)
        return platform
