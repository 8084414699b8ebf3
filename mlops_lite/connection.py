"""``connect()``: the platform, wherever it runs.

Light on purpose: a command that goes to the daemon loads the HTTP client only, never
the embedded stores' libraries (tests/unit/test_cli_startup.py); ``open_local`` and the
Platform load when this process opens the stores itself.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mlops_lite.config import Settings, load_settings
from mlops_lite.daemon import read_daemon
from mlops_lite.errors import StoreLocked
from mlops_lite.home import read_admin_token

if TYPE_CHECKING:
    from mlops_lite.client import RemotePlatform
    from mlops_lite.platform import Platform


def connect(*, actor: str | None = None, **overrides: Any) -> Platform | RemotePlatform:
    """The platform, wherever it runs: the same API either way (``mlops_lite.api.PlatformAPI``).

    - A URL configured (``url=`` or ``MLOPS_LITE_URL``, with ``token``): over HTTP.
    - Else a running ``mlops-lite up`` owns the home's stores: over HTTP to that daemon,
      with ``token`` (or ``MLOPS_LITE_TOKEN``), else the home's admin token file.
    - Else the embedded stores, in this process.

    Raises StoreLocked, naming the daemon, when it runs but no token is at hand, or when
    another process (not a daemon) holds the embedded stores.
    """
    settings = load_settings(**overrides)
    if settings.url:
        return _remote(settings.url, settings.token, settings)
    daemon = read_daemon(settings.daemon_file)
    if daemon is not None and daemon.pid != os.getpid():
        token = settings.token or read_admin_token(settings)
        if not token:
            raise StoreLocked(
                f"The mlops-lite daemon (pid {daemon.pid}) owns the stores in {settings.home} and no token "
                f"was found to call it at {daemon.url}: set MLOPS_LITE_TOKEN.", pid=daemon.pid, url=daemon.url)
        return _remote(daemon.url, token, settings)
    from mlops_lite.platform import open_local

    return open_local(settings, actor=actor)


def _remote(url: str, token: str | None, settings: Settings) -> RemotePlatform:
    from mlops_lite.client import RemotePlatform  # the HTTP client loads only when a URL is used

    return RemotePlatform(url, token, parity_tolerance=settings.parity_tolerance)
