"""The data contract suite runs on every data backend: the fixture ``data`` yields a
``platform.data``-shaped facet.

- ``embedded``: the content-addressed store in a temporary home.
- ``lakefs``: the lakefs backend (lakefs-sdk) against a lakeFS server; the one
  reachable here is mlops-lite's own lakeFS-compatible API, served on 127.0.0.1
  over a second, embedded platform.
"""

from __future__ import annotations

from collections.abc import Iterator
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
