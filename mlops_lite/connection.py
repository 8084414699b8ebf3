"""``connect()``: the platform, wherever it runs.

Light on purpose: a command that goes to the daemon loads the HTTP client only, never
the embedded stores' libraries (tests/unit/test_cli_startup.py); ``open_local`` and the
Platform load when this process opens the stores itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlops_lite.config import Settings, load_settings
from mlops_lite.daemon import read_daemon
from mlops_lite.errors import StoreLocked
from mlops_lite.home import read_admin_token

if TYPE_CHECKING:
    from mlops_lite.client import RemotePlatform
    from mlops_lite.client.credentials import TokenSource
    from mlops_lite.platform import Platform


def connect(*, actor: str | None = None, **overrides: Any) -> Platform | RemotePlatform:
    """The platform, wherever it runs: the same API either way (``mlops_lite.api.PlatformAPI``).

    - A URL configured (``url=`` or ``MLOPS_LITE_URL``): over HTTP.
    - Else a running ``mlops-lite up`` owns the home's stores: over HTTP to that daemon.
    - Else the embedded stores, in this process.

    An https server is verified against ``ca_bundle`` (``MLOPS_LITE_CA_BUNDLE``), else the
    home's CA beside the system's roots; ``tls_client_cert`` is presented for mutual TLS.

    Over HTTP the bearer is ``token`` (or ``MLOPS_LITE_TOKEN``), else the login that
    ``mlops-lite login`` stored for a configured ``[[oidc]]`` issuer (refreshed when it
    expires within 30 s, and after a 401), else, for the daemon, the home's admin token file.

    Raises StoreLocked, naming the daemon, when it runs but no token is at hand, or when
    another process (not a daemon) holds the embedded stores.
    """
    settings = load_settings(**overrides)
    if settings.url:
        return _remote(settings.url, settings, *_bearer(settings))
    daemon = read_daemon(settings.daemon_file)
    if daemon is not None and daemon.pid != os.getpid():
        token, source = _bearer(settings, fallback=read_admin_token)
        if not token:
            raise StoreLocked(
                f"The mlops-lite daemon (pid {daemon.pid}) owns the stores in {settings.home} and no token "
                f"was found to call it at {daemon.url}: set MLOPS_LITE_TOKEN, or run `mlops-lite login`.",
                pid=daemon.pid, url=daemon.url)
        return _remote(daemon.url, settings, token, source)
    from mlops_lite.platform import open_local

    return open_local(settings, actor=actor)


def _bearer(settings: Settings, fallback: Callable[[Settings], str | None] | None = None,
            ) -> tuple[str | None, TokenSource | None]:
    """The token to send, and the stored login that refreshes it (None for a fixed token)."""
    if settings.token:
        return settings.token, None
    if settings.oidc:
        from mlops_lite.client.credentials import StoredLogin, load, login_path

        for entry in settings.oidc:
            login = load(login_path(settings.home, entry.issuer, entry.client_id or entry.audience))
            if login is not None:  # refreshed at the issuer, trusting its ca_bundle where it names one
                source = StoredLogin(settings.home, login, verify=str(entry.ca_bundle) if entry.ca_bundle else True)
                return source.token(), source
    return (fallback(settings) if fallback is not None else None), None


def _remote(url: str, settings: Settings, token: str | None, source: TokenSource | None) -> RemotePlatform:
    from mlops_lite.client import RemotePlatform  # the HTTP client loads only when a URL is used
    from mlops_lite.security.tls import client_tls

    return RemotePlatform(url, token, credentials=source, parity_tolerance=settings.parity_tolerance,
                          tls=client_tls(settings))
