"""The CI examples in docs/ci cannot rot: their shell lines run here, in order, with the
semantics of their runners, against a real server over HTTP with an operator token, from
a working copy holding the pull request's data.

- GitHub Actions: each ``run`` step in ``bash --noprofile --norc -eo pipefail`` (Actions'
  default shell), the workflow's ``env`` with its ``${{ ... }}`` expressions filled in
  (an expression this runner does not know fails the test); after a failed step only
  ``if: always()`` steps run. ``uses`` steps (checkout, setup-python, the comment action,
  upload-artifact) are actions, not shell lines.
- GitLab CI: the job's ``variables`` expanded as GitLab does (``$VAR`` from the
  predefined CI variables), ``script`` in one shell that stops at the first failing line,
  ``after_script`` always.

The one line not run is the install (``pip install "$MLOPS_LITE_PACKAGE"``): the package
under test is already installed in this interpreter, and its directory is put first on
PATH so that the steps call it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import DATA, build_loop

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ci"
BIN = str(Path(sys.executable).parent)
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")
MODEL = "loan-default"


@dataclass
class Server:
    url: str
    token: str
    home: Path
    platform: Any


@dataclass
class StepRun:
    name: str
    returncode: int | None  # None: not run
    output: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """loan-default 1.0.0 in production, trained on loans/train.csv; a held-out table on
    main that the policy evaluates on; the table's schema pinned; served over HTTP."""
    import pyarrow.csv as pacsv

    from mlops_lite.data.checks import ColumnRule, SchemaRule, type_name
    from server import create_app
    from server.runner import serve_in_thread

    home = tmp_path_factory.mktemp("ci-examples") / "home"
    platform: Any
    platform, _, _ = build_loop(home)
    platform.data.ingest("loans", DATA / "loans_holdout.csv", "loans/holdout.csv")
    table = pacsv.read_csv(DATA / "loans.csv")
    platform.data.repo("loans").configure(schemas=[SchemaRule("loans/train.csv", tuple(
        ColumnRule(f.name, type_name(f.type)) for f in table.schema))])
    platform.registry.set_alias(MODEL, "production", "1.0.0", reason="first release")
    (home / "policies").mkdir(exist_ok=True)
    _policy(home, "")
    _, token = platform.tokens.create("ci-gate", "operator")
    running = serve_in_thread(create_app(platform))
    try:
        yield Server(running.url, token, home, platform)
    finally:
        running.stop()
        platform.close()


def _policy(home: Path, extra: str) -> None:
    (home / "policies" / f"{MODEL}.toml").write_text(
        '[evaluation]\nrepository = "loans"\nref = "main"\npath = "loans/holdout.csv"\n\n'
        '[regression]\nmetric = "roc_auc"\ntolerance = 0.01\n' + extra)


def _workdir(tmp_path: Path, data: Path) -> Path:
    work = tmp_path / "checkout"
    (work / "data").mkdir(parents=True)
    shutil.copyfile(data, work / "data" / "loans.csv")
    return work


def _environment(server: Server, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_LITE_", "GITHUB_", "CI_"))}
    # The runner is a machine with no home of its own: everything goes to the server.
    env.update(MLOPS_LITE_HOME=str(tmp_path / "runner-home"), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def _is_install(line: str) -> bool:
    return line.strip().startswith("python -m pip install") and "MLOPS_LITE_PACKAGE" in line


# ------------------------------------------------------------------------------ GitHub Actions

def run_github(server: Server, work: Path, tmp_path: Path, *, pr: int, run_id: int) -> tuple[list[StepRun], Path]:
    workflow = yaml.safe_load((DOCS / "github-actions.yml").read_text())
    context = {"vars.MLOPS_LITE_URL": server.url, "secrets.MLOPS_LITE_TOKEN": server.token,
               "vars.MLOPS_LITE_PACKAGE": "mlops-lite", "github.event.pull_request.number": str(pr),
               "github.run_id": str(run_id), "github.run_attempt": "1"}

    def fill(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            assert match.group(1) in context, f"the runner does not know ${{{{ {match.group(1)} }}}}"
            return context[match.group(1)]
        return EXPRESSION.sub(one, text)

    summary = tmp_path / "step-summary.md"
    env = _environment(server, tmp_path)
    env.update({k: fill(str(v)) for k, v in workflow["env"].items()})
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    (job,) = workflow["jobs"].values()
    runs: list[StepRun] = []
    failed = False
    for step in job["steps"]:
        name = step.get("name", step.get("uses", "?"))
        if "uses" in step:
            continue
        always = step.get("if") == "always()"
        if failed and not always:
            runs.append(StepRun(name, None, ""))
            continue
        if _is_install(step["run"]):
            continue
        script = tmp_path / "step.sh"
        script.write_text(fill(step["run"]))
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)
        runs.append(StepRun(name, done.returncode, done.stdout + done.stderr))
        failed = failed or done.returncode != 0
    return runs, summary


def _junit_failures(path: Path) -> set[str]:
    root = ET.parse(path).getroot()
    return {c.get("name", "") for c in root.iter("testcase") if c.find("failure") is not None}


def _step(runs: list[StepRun], prefix: str) -> StepRun:
    return next(r for r in runs if r.name.startswith(prefix))


def test_the_github_workflow_gates_a_candidate_that_passes(server: Server, tmp_path: Path) -> None:
    work = _workdir(tmp_path, DATA / "loans_drifted.csv")
    runs, summary = run_github(server, work, tmp_path, pr=7, run_id=1001)
    assert [r.returncode for r in runs] == [0] * len(runs), "\n".join(f"{r.name}: {r.output}" for r in runs)
    assert len(runs) == 6  # stage, data checks, commit, train, gate, summary
    gates = (work / "gates-report.md").read_text()
    candidate = server.platform.registry.aliases(MODEL)["pr-7"]
    assert f"### ✅ Gates for {MODEL}@{candidate} -> production" in gates
    assert "| ✅ | `regression.roc_auc` |" in gates and "loans/holdout.csv" in gates
    assert _junit_failures(work / "gates-junit.xml") == set() and _junit_failures(work / "data-junit.xml") == set()
    assert "Data checks for loans/pr-7-1001-1 -> main" in summary.read_text() and gates in summary.read_text()
    version = server.platform.registry.get_version(MODEL, candidate)
    head = server.platform.data.repo("loans").branch("pr-7-1001-1").head()
    assert head is not None and version.data_commits == (head.id,) and "pull request #7" in head.message


@pytest.mark.slow
def test_the_github_workflow_fails_at_the_gate_and_still_reports(server: Server, tmp_path: Path) -> None:
    _policy(server.home, "\n[thresholds]\nroc_auc = 0.99\n")
    try:
        work = _workdir(tmp_path, DATA / "loans_drifted.csv")
        runs, summary = run_github(server, work, tmp_path, pr=8, run_id=1002)
    finally:
        _policy(server.home, "")
    assert _step(runs, "Gate the candidate").returncode == 1
    assert _step(runs, "Job summary").returncode == 0  # if: always()
    assert all(r.returncode == 0 for r in runs if not r.name.startswith("Gate"))
    assert _junit_failures(work / "gates-junit.xml") == {"metric.roc_auc"}
    assert "### ❌ Gates for" in summary.read_text()


@pytest.mark.slow
def test_the_github_workflow_stops_bad_data_before_it_is_committed(server: Server, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = (DATA / "loans_drifted.csv").read_text().splitlines()
    bad.write_text("\n".join([lines[0] + ",extra"] + [line + ",1" for line in lines[1:50]]) + "\n")
    work = _workdir(tmp_path, bad)
    versions = len(server.platform.registry.list_versions(MODEL))
    runs, _ = run_github(server, work, tmp_path, pr=9, run_id=1003)
    assert _step(runs, "Data checks").returncode == 1
    assert [r.returncode for r in runs if r.name.startswith(("Commit", "Train", "Gate"))] == [None, None, None]
    assert _junit_failures(work / "data-junit.xml") == {"data:loans/train.csv"}
    assert "unexpected ['extra']" in (work / "data-report.md").read_text()
    assert server.platform.data.repo("loans").branch("pr-9-1003-1").head() == \
        server.platform.data.repo("loans").branch("main").head()
    assert len(server.platform.registry.list_versions(MODEL)) == versions


# ------------------------------------------------------------------------------ GitLab CI

def run_gitlab(server: Server, work: Path, tmp_path: Path, *, mr: int, pipeline: int) -> dict[str, Any]:
    pipeline_doc = yaml.safe_load((DOCS / ".gitlab-ci.yml").read_text())
    job = pipeline_doc["model-gate"]
    env = _environment(server, tmp_path)
    env.update(MLOPS_LITE_URL=server.url, MLOPS_LITE_TOKEN=server.token, MLOPS_LITE_PACKAGE="mlops-lite",
               CI_MERGE_REQUEST_IID=str(mr), CI_PIPELINE_ID=str(pipeline), CI_PIPELINE_SOURCE="merge_request_event",
               CI_PROJECT_ID="1", CI_API_V4_URL="http://127.0.0.1:9/api/v4")
    for name, value in job["variables"].items():  # GitLab expands $VAR in variables from those defined before
        env[name] = subprocess.run(["bash", "-c", f'printf %s "{value}"'], env=env, capture_output=True, text=True,
                                   check=True).stdout
    assert [line for line in job["before_script"] if not _is_install(line)] == []

    def shell(lines: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", "\n".join(lines)],
                              cwd=work, env=env, capture_output=True, text=True, timeout=600)

    script = shell(job["script"])
    after = shell(job["after_script"])
    return {"script": script, "after": after, "env": env, "job": job}


@pytest.mark.slow
def test_the_gitlab_pipeline_gates_a_candidate_and_fails_when_a_gate_fails(server: Server, tmp_path: Path) -> None:
    work = _workdir(tmp_path, DATA / "loans_drifted.csv")
    passing = run_gitlab(server, work, tmp_path / "a", mr=3, pipeline=2001)
    assert passing["script"].returncode == 0, passing["script"].stdout + passing["script"].stderr
    assert passing["after"].returncode == 0  # no GITLAB_NOTE_TOKEN: no comment, no error
    reports = passing["job"]["artifacts"]["reports"]["junit"]
    assert all(_junit_failures(work / name) == set() for name in reports)
    candidate = server.platform.registry.aliases(MODEL)["mr-3"]
    assert f"### ✅ Gates for {MODEL}@{candidate} -> production" in (work / "gates-report.md").read_text()

    _policy(server.home, "\n[thresholds]\nroc_auc = 0.99\n")
    try:
        work = _workdir(tmp_path / "b", DATA / "loans_drifted.csv")
        failing = run_gitlab(server, work, tmp_path / "b", mr=4, pipeline=2002)
    finally:
        _policy(server.home, "")
    assert failing["script"].returncode == 1
    assert _junit_failures(work / "gates-junit.xml") == {"metric.roc_auc"}
    assert "### ❌ Gates for" in (work / "gates-report.md").read_text()
