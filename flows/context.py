"""Which Platform a task uses. Flows take the home as a plain parameter; a caller
that already holds the stores (the demo, the daemon, tests) binds its Platform so
tasks share it instead of opening the DuckDB file a second time.

Unbound, a task calls ``connect(home=...)``: on a Prefect worker, where
``MLOPS_LITE_URL`` and ``MLOPS_LITE_TOKEN`` name the daemon, that is a
``RemotePlatform`` and every task goes over HTTP; elsewhere, the embedded stores."""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any

from mlops_lite import Platform, connect
from mlops_lite.client import RemotePlatform
from mlops_lite.config import Settings, load_settings
from mlops_lite.flow_params import check_flow_params

_bound: dict[str, Platform | RemotePlatform] = {}
_opened: dict[str, Platform | RemotePlatform] = {}
_lock = threading.Lock()


def bind(platform: Platform) -> None:
    with _lock:
        _bound[str(platform.settings.home)] = platform


def unbind(platform: Platform) -> None:
    with _lock:
        if _bound.get(str(platform.settings.home)) is platform:
            del _bound[str(platform.settings.home)]


def forget(home: str) -> None:
    """Close and drop the Platform ``platform_for`` opened for ``home`` (not a bound one's owner's)."""
    with _lock:
        platform = _opened.pop(home, None)
        if platform is not None and _bound.get(home) is platform:
            del _bound[home]
    if platform is not None:
        platform.close()


def platform_for(home: str) -> Platform | RemotePlatform:
    """The bound Platform for ``home``, or one opened now and closed at exit."""
    with _lock:
        platform = _bound.get(home)
        if platform is None:
            platform = connect(home=home)
            _bound[home] = _opened[home] = platform
            atexit.register(platform.close)
        return platform


def check_params(flow: str, params: dict[str, Any]) -> None:
    """Refuse a flow run's parameters before any task runs (``mlops_lite.flow_params``),
    with the settings of the home this process serves: a bound Platform's; on a worker
    (``MLOPS_LITE_URL`` set) this process's own, since there ``home`` only names the
    daemon's and must not pick the configuration that says what may be read."""
    with _lock:
        bound = {str(Path(h).resolve()): p for h, p in _bound.items() if h not in _opened}
    home = params.get("home")
    settings: Settings | None = None
    if isinstance(home, str) and home and "\x00" not in home:
        platform = bound.get(str(Path(home).expanduser().resolve()))
        if isinstance(platform, Platform):
            settings = platform.settings
        elif not bound:
            try:
                settings = load_settings() if os.environ.get("MLOPS_LITE_URL") else load_settings(home=home)
            except ValueError:  # a toml there that does not parse: not a home to run in
                settings = None
    check_flow_params(flow, params, settings=settings, bound_homes=bound)
