"""Schemathesis over the whole OpenAPI of a real server on 127.0.0.1 (a platform with a
trained, deployed model), as a user runs it: `schemathesis run URL/schema/openapi.json
-H "Authorization: Bearer ..." --checks not_a_server_error`. Every operation, OPTIONS
included; no client input may earn a server error."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_loop

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = 20
SEED = 20261204
# Revoking a token is fuzzed on its own, with a token of its own: the fuzzer finds the
# caller's token id (GET /v1/whoami) and revokes it, and every later request would be a 401.
REVOKE = "/v1/tokens/{token_id}/revoke"
# The flow runs' routes read the Prefect server that `mlops-lite up` runs beside the API;
# none runs here, so they answer 503 "no Prefect server" by design (the route matrix and
# tests/contract/test_flows_contract.py check that answer and their input checks).
NO_PREFECT = "^/v1/flows/runs"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Any, str]]:
    """A fresh home (the fuzzer changes state), served on 127.0.0.1: (url, platform, admin token)."""
    from server import create_app
    from server.runner import serve_in_thread

    platform, token, _ = build_loop(tmp_path / "home")
    try:
        running = serve_in_thread(create_app(platform))
        try:
            assert running.url.startswith("http://127.0.0.1:")
            yield running.url, platform, token
        finally:
            running.stop()
    finally:
        platform.close()  # type: ignore[attr-defined]


def _schemathesis(url: str, token: str, workdir: Path, *selection: str) -> tuple[int, str]:
    command = [str(SCHEMATHESIS), "--no-color", "run", f"{url}/schema/openapi.json",
               "-H", f"Authorization: Bearer {token}", "--checks", "not_a_server_error",
               "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--generation-database", "none",
               "--workers", "2", *selection]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=540, check=False)
    return done.returncode, done.stdout + done.stderr


def _selected(output: str) -> tuple[int, int, int]:
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    tested = re.search(r"Tested: (\d+)", output)
    assert selected and tested, output
    return int(selected.group(1)), int(selected.group(2)), int(tested.group(1))


def test_schemathesis_finds_no_server_error_in_any_operation(server: tuple[str, Any, str], tmp_path: Path) -> None:
    url, platform, token = server
    code, output = _schemathesis(url, token, tmp_path, "--exclude-path", REVOKE, "--exclude-path-regex", NO_PREFECT)
    assert code == 0, output
    selected, total, tested = _selected(output)
    assert (selected, tested) == (total - 3, total - 3), output
    # The token stayed good to the end: the requests reached the handlers, not only the guard.
    assert "Authentication failed" not in output, output

    _, revoker = platform.tokens.create("fuzz-revoke", "admin")
    code, output = _schemathesis(url, revoker, tmp_path, "--include-path", REVOKE)
    assert code == 0, output
    assert _selected(output)[0::2] == (1, 1), output
