"""The container image's SBOM writer (deploy/container/sbom.py): CycloneDX 1.5 JSON that the
official schema accepts (strictly), listing what the environment it runs in holds."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from ..conftest import REPO

cyclonedx = pytest.importorskip("cyclonedx.validation.json", reason="cyclonedx-python-lib (the dev extra) is missing")


def _sbom() -> str:
    return subprocess.run([sys.executable, str(REPO / "deploy" / "container" / "sbom.py"), "--version", "9.9.9",
                           "--revision", "0123abcd"], capture_output=True, text=True, check=True, timeout=120).stdout


def _validate(text: str) -> object:
    from cyclonedx.schema import SchemaVersion

    return cyclonedx.JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)


def test_the_sbom_is_valid_cyclonedx_and_lists_the_environment() -> None:
    text = _sbom()
    assert _validate(text) is None
    bom = json.loads(text)
    assert bom["metadata"]["component"]["version"] == "9.9.9"
    purls = {c["purl"] for c in bom["components"] if "purl" in c}
    for name in ("duckdb", "onnxruntime", "litestar"):
        assert f"pkg:pypi/{name}@{metadata.version(name)}" in purls
    licences = {c["name"]: c.get("licenses") for c in bom["components"]}
    assert licences["duckdb"], "a licence read from the distribution's metadata"


def test_the_validator_refuses_a_broken_sbom() -> None:
    bom = json.loads(_sbom())
    bom["components"][0]["type"] = "widget"
    assert _validate(json.dumps(bom)) is not None
