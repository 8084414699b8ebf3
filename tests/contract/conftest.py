"""The data contract suite runs on every data backend: the fixture ``data`` yields a
``platform.data``-shaped facet.

- ``embedded``: the content-addressed store in a temporary home.
- ``lakefs``: the lakefs backend (lakefs-sdk) against a lakeFS server; the one
  reachable here is mlops-lite's own lakeFS-compatible API, served on 127.0.0.1
  over a second, embedded platform.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ["embedded", "lakefs"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data(backend: str, tmp_path: Path) -> Iterator[Any]:
    from mlops_lite import connect

    if backend == "embedded":
        platform = connect(home=tmp_path / "home")
        try:
            yield platform.data
        finally:
            platform.close()
        return

    from server import create_app
    from server.runner import serve_in_thread

    lakefs_server = connect(home=tmp_path / "lakefs-server")
    _, key_id, secret = lakefs_server.tokens.create_access_key("contract", "operator")
    running = serve_in_thread(create_app(lakefs_server))
    client = connect(home=tmp_path / "home", data_backend="lakefs", lakefs_endpoint=running.url,
                     lakefs_access_key_id=key_id, lakefs_secret_access_key=secret)
    try:
        yield client.data
    finally:
        client.close()
        running.stop()
        lakefs_server.close()


# --- The Platform API contract: every facet's verbs over a local Platform and a RemotePlatform ---
#
# ``api`` yields a fresh, empty platform (a new home per test); ``loop_api`` a trained,
# registered and deployed one ('loans' serving loan-default 1.0.0), built once per module.
# Each is parametrized over ``local`` (the embedded stores in this process) and ``remote``
# (a RemotePlatform over HTTP to the real Litestar app, served on 127.0.0.1 over a second,
# local platform of the same home, with the home's admin token). A contract test asks the
# same question of both and asserts the same answer, records and errors.

API_KINDS = ["local", "remote"]
_HOMES: dict[int, Path] = {}


_OWNERS: dict[int, Any] = {}


def owner_of(platform: Any) -> Any:
    """The local platform that owns the stores behind an ``api`` or ``loop_api`` platform (itself, or
    the one the remote's server runs over): what the daemon wires up in-process."""
    return _OWNERS[id(platform)]


def home_of(platform: Any) -> Path:
    """The home behind an ``api``/``loop_api`` platform, local or remote (to write the
    files a user edits there: policies, alert rules)."""
    return _HOMES[id(platform)]


def _serve(platform: Any, token: str) -> Any:
    from server import create_app
    from server.runner import serve_in_thread

    return serve_in_thread(create_app(platform))


@pytest.fixture(params=API_KINDS)
def api_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(api_kind: str, tmp_path: Path) -> Iterator[Any]:
    """A fresh platform, local or remote (see above)."""
    from mlops_lite.client import RemotePlatform
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local

    settings = load_settings(home=tmp_path / "home")
    token = init_home(settings).token
    assert token is not None
    local = open_local(settings)
    if api_kind == "local":
        _HOMES[id(local)] = settings.home
        _OWNERS[id(local)] = local
        try:
            yield local
        finally:
            local.close()
        return
    running = _serve(local, token)
    try:
        with RemotePlatform(running.url, token) as remote:
            _HOMES[id(remote)] = settings.home
            _OWNERS[id(remote)] = local
            yield remote
    finally:
        running.stop()
        local.close()


@pytest.fixture(scope="module", params=API_KINDS)
def loop_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A trained and deployed platform, local or remote, built once per module and kind."""
    from mlops_lite.client import RemotePlatform
    from tests.conftest import build_loop

    home = tmp_path_factory.mktemp("contract") / "home"
    local, token, _spec = build_loop(home)
    if request.param == "local":
        _HOMES[id(local)] = home
        _OWNERS[id(local)] = local
        try:
            yield local
        finally:
            local.close()  # type: ignore[attr-defined]
        return
    running = _serve(local, token)
    try:
        with RemotePlatform(running.url, token) as remote:
            _HOMES[id(remote)] = home
            _OWNERS[id(remote)] = local
            yield remote
    finally:
        running.stop()
        local.close()  # type: ignore[attr-defined]


def actor_of(api: Any) -> str:
    """Who a write is recorded as: the platform's actor here, the token's principal over HTTP."""
    return "token:admin" if api.remote else str(api.actor)


def refused(cls: type[Exception], call: Callable[[], Any]) -> Any:
    """The error of class ``cls`` that ``call`` raises (the test fails if it raises none)."""
    with pytest.raises(cls) as caught:
        call()
    return caught.value
