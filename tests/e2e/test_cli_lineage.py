"""`mlops-lite deploy lineage` and `mlops-lite trace` from the shell, on a home like the
demo leaves: deployment 'loans' went from 1.0.0 through a canary of 1.1.0 to 1.1.0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_deployment_lineage import release_two_versions

CLI = str(Path(sys.executable).with_name("mlops-lite"))


@pytest.fixture(scope="module")
def released_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    home = tmp_path_factory.mktemp("cli-lineage") / "home"
    state = release_two_versions(home)
    state["platform"].close()  # the CLI opens the stores itself
    yield home, state


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env={**os.environ, "MLOPS_LITE_HOME": str(home)}, capture_output=True,
                          text=True, timeout=120)


def test_deploy_lineage_answers_what_serves_and_what_produced_it(released_home: tuple[Path, dict[str, Any]]) -> None:
    path, state = released_home
    second = state["second"]
    text = _run(path, "deploy", "lineage", "loans")
    assert text.returncode == 0, text.stderr
    assert "revision 3" in text.stdout and f"loan-default@1.1.0  sha256:{second.digest}" in text.stdout
    assert second.run_id in text.stdout and second.data_commits[0] in text.stdout
    assert "by alice" in text.stdout and "checked the drift report" in text.stdout
    assert "canary held" in text.stdout and "MISSING" not in text.stdout
    body = json.loads(_run(path, "deploy", "lineage", "loans", "--json").stdout)
    assert body["revision"]["revision"] == 3 and body["missing"] == []
    (slot,) = body["slots"]
    assert (slot["slot"], slot["version"], slot["run_id"]) == ("primary", "1.1.0", second.run_id)
    assert slot["data_commits"] == list(second.data_commits) and slot["release_gates"]
    assert [r["action"] for r in body["history"]] == ["deploy", "canary", "promote"]


def test_deploy_lineage_at_a_canary_time_names_both_slots(released_home: tuple[Path, dict[str, Any]]) -> None:
    path, state = released_home
    at = state["revisions"][2].changed_at.isoformat()
    body = json.loads(_run(path, "deploy", "lineage", "loans", "--at", at, "--json").stdout)
    assert [(s["slot"], s["version"]) for s in body["slots"]] == [("primary", "1.0.0"), ("canary", "1.1.0")]
    text = _run(path, "deploy", "lineage", "loans", "--at", at).stdout
    assert "70% of requests" in text and "30% of requests" in text


def test_trace_gives_the_input_rows_answers_feedback_and_lineage(released_home: tuple[Path, dict[str, Any]]) -> None:
    path, state = released_home
    first = state["first"]
    body = json.loads(_run(path, "trace", first.request_id, "--json").stdout)
    assert body["instances"] == state["rows"] and body["version"] == "1.0.0" and body["feedback"] == "1"
    assert body["lineage"]["revision"]["revision"] == 1
    text = _run(path, "trace", first.request_id)
    assert text.returncode == 0, text.stderr
    assert first.request_id in text.stdout and "feedback   1" in text.stdout and "revision 1" in text.stdout


def test_bad_questions_exit_1_with_one_line(released_home: tuple[Path, dict[str, Any]]) -> None:
    path, _ = released_home
    unknown = _run(path, "deploy", "lineage", "nope")
    assert unknown.returncode == 1 and "'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    bad_time = _run(path, "deploy", "lineage", "loans", "--at", "soon")
    assert bad_time.returncode == 1 and "'at'" in bad_time.stderr and "ISO 8601" in bad_time.stderr
    missing = _run(path, "trace", "feedfacefeedface")
    assert missing.returncode == 1 and "feedfacefeedface" in missing.stderr
