"""The data contract suite runs on every data backend: the fixture ``data`` yields a
``platform.data``-shaped facet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ["embedded"]


@pytest.fixture(params=BACKENDS)
def data(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    from mlops_lite import connect

    platform = connect(home=tmp_path / "home")
    try:
        yield platform.data
    finally:
        platform.close()
