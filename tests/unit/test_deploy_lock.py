"""deploy/requirements.lock, what the container image installs: it must pin every runtime
dependency of pyproject.toml (and what they need) at versions their specifiers allow, so a
dependency added to pyproject.toml without regenerating the lock fails here, not in a build."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ..conftest import REPO


@pytest.fixture(scope="module")
def lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_lock", REPO / "deploy" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_lock"] = module
    spec.loader.exec_module(module)
    return module


def test_the_lock_pins_every_runtime_dependency(lock: ModuleType) -> None:
    pins = lock.read_lock()
    assert lock.problems(pins) == [], "regenerate it: .venv/bin/python deploy/lock.py"
    direct = {r.name.lower().replace("_", "-") for r in lock.runtime_requirements()}
    assert direct <= set(pins)
    assert "mlops-lite" not in pins and "pytest" not in pins  # the project itself and dev tools stay out


def test_the_lock_is_plain_sorted_pins(lock: ModuleType) -> None:
    lines = [line for line in (REPO / "deploy" / "requirements.lock").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines == sorted(lines, key=lambda line: line.split("==")[0])
    assert all(line.count("==") == 1 and " " not in line and ";" not in line for line in lines)


def test_a_lock_missing_a_dependency_or_off_its_specifier_is_named(lock: ModuleType, tmp_path: Path) -> None:
    pins = lock.read_lock()
    without = {name: version for name, version in pins.items() if name != "litestar"}
    assert any(p.startswith("litestar") and "not pinned" in p for p in lock.problems(without))
    # duckdb is pinned == in pyproject.toml: any other version is off its specifier
    assert any("duckdb==0.9.0 does not satisfy duckdb==" in p for p in lock.problems({**pins, "duckdb": "0.9.0"}))
    # a requirement of a requirement (pyjwt[crypto] -> cryptography; also direct) counts too
    assert any(p.startswith("cryptography") for p in lock.problems({k: v for k, v in pins.items()
                                                                    if k != "cryptography"}))
    bad = tmp_path / "requirements.lock"
    bad.write_text("# comment\nlitestar>=2\n")
    with pytest.raises(ValueError, match="litestar>=2"):
        lock.read_lock(bad)
