"""`mlops-lite ci check` and `ci data-check` from the shell, as a pipeline calls them: the
Markdown report, JUnit XML (parsed back), and the exit status (0 pass, 1 a gate failed,
2 the check could not run), on the local home and against a server with a viewer token."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DATA, FEATURE_EXCLUDE, build_loop

CLI = str(Path(sys.executable).with_name("mlops-lite"))


def _cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN")}
    environment.update({"MLOPS_LITE_HOME": str(home), **(env or {})})
    return subprocess.run([CLI, *args], env=environment, capture_output=True, text=True, timeout=180)


def _junit(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert int(suite.get("tests", "-1")) == len(cases)
    failed = {name for name, c in cases.items() if c.find("failure") is not None}
    assert int(suite.get("failures", "-1")) == len(failed) == int(root.get("failures", "-1"))
    return {"suite": suite.get("name"), "cases": cases, "failed": failed}


@pytest.fixture(scope="module")
def ci_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """loan-default 1.0.0 (production, serving 'loans') and 1.1.0 trained on drifted data."""
    from mlops_lite import TrainingSpec

    home = tmp_path_factory.mktemp("ci") / "home"
    platform: Any
    platform, _, _ = build_loop(home)
    try:
        platform.registry.set_alias("loan-default", "production", "1.0.0", reason="first release")
        platform.data.ingest("loans", DATA / "loans_drifted.csv", "loans/train.csv")
        table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
        spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE, sensitive="gender")
        run = platform.training.train("loans", "main", "loans/train.csv", spec).run
        assert platform.registry.register_from_run("loan-default", run.id).version == "1.1.0"
    finally:
        platform.close()
    yield home


def test_a_passing_candidate_writes_both_reports_and_exits_0(ci_home: Path, tmp_path: Path) -> None:
    markdown, junit = tmp_path / "report.md", tmp_path / "junit.xml"
    done = _cli(ci_home, "ci", "check", "--model", "loan-default", "--candidate", "1.1.0", "--against", "production",
                "--markdown", str(markdown), "--junit", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == markdown.read_text()
    text = markdown.read_text()
    assert "Gates for loan-default@1.1.0 -> production" in text and "**passed**" in text
    assert "| ✅ | `regression.roc_auc` |" in text and "| ✅ | `lineage.complete` |" in text
    assert "baseline: alias production = 1.0.0" in text
    # The deltas: the regression gate's measurement on the same rows first, then the recorded metrics.
    deltas = text.split("#### Metrics against the baseline", 1)[1]
    measured = next(line for line in deltas.splitlines() if line.endswith("| measured |"))
    assert measured.startswith("| roc_auc |")
    assert "| accuracy |" in deltas and "| recorded |" in deltas
    report = _junit(junit)
    assert report["suite"] == "mlops-lite.gates" and report["failed"] == set()
    assert {"metric.roc_auc", "lineage.complete", "regression.roc_auc"} <= set(report["cases"])


def test_a_failing_gate_fails_its_test_case_and_exits_1(ci_home: Path, tmp_path: Path) -> None:
    policy = ci_home / "policies" / "loan-default.toml"
    policy.parent.mkdir(exist_ok=True)
    policy.write_text("[thresholds]\nroc_auc = 0.99\n\n[regression]\nmetric = \"roc_auc\"\ntolerance = 0.0\n")
    try:
        junit = tmp_path / "junit.xml"
        # 1.0.0 against 1.1.0: the older model scores lower on the same evaluation rows.
        done = _cli(ci_home, "ci", "check", "--model", "loan-default", "--candidate", "production",
                    "--against", "1.1.0", "--junit", str(junit))
    finally:
        policy.unlink()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "**failed**: 2 of 3 failed" in done.stdout
    assert "| ❌ | `metric.roc_auc` |" in done.stdout and ">= 0.99" in done.stdout
    assert "Why the failed checks failed" in done.stdout
    report = _junit(junit)
    assert report["failed"] == {"metric.roc_auc", "regression.roc_auc"}
    failure = report["cases"]["metric.roc_auc"].find("failure")
    assert failure is not None and "0.99" in (failure.text or "")


def test_the_baseline_may_be_a_deployment(ci_home: Path) -> None:
    done = _cli(ci_home, "ci", "check", "--model", "loan-default", "--candidate", "1.1.0", "--against", "loans")
    assert done.returncode == 0, done.stderr
    assert "baseline: deployment loans (revision 1) serves 1.0.0" in done.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--model", "nope", "--candidate", "1.0.0"], "model 'nope' does not exist"),
    (["--model", "loan-default", "--candidate", "9.9.9"], "--candidate: loan-default has no version or alias '9.9.9'"),
    (["--model", "loan-default", "--candidate", "1.1.0", "--against", "staging"],
     "--against: 'staging' is no alias, deployment or version"),
    (["--model", "loan-default", "--candidate", "1.1.0", "--url", "ftp://x"], "--url: expected an http://"),
    (["--model", "loan-default", "--candidate", "1.1.0", "--junit", "/nonexistent/dir/j.xml"],
     "--junit: the folder /nonexistent/dir does not exist"),
])
def test_bad_input_exits_2_naming_what_is_wrong(ci_home: Path, args: list[str], says: str) -> None:
    done = _cli(ci_home, "ci", "check", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in " ".join(done.stderr.split()) and done.stdout == ""


def test_a_missing_option_is_a_usage_error(ci_home: Path) -> None:
    done = _cli(ci_home, "ci", "check", "--model", "loan-default")
    assert done.returncode == 2 and "--candidate" in done.stderr


def test_against_a_server_with_a_viewer_token_gives_the_same_verdicts(ci_home: Path, tmp_path: Path) -> None:
    from mlops_lite.config import load_settings
    from mlops_lite.platform import open_local
    from server import create_app
    from server.runner import serve_in_thread

    local = open_local(load_settings(home=ci_home))
    running = serve_in_thread(create_app(local))
    try:
        _, viewer = local.tokens.create("ci-pipeline", "viewer")
        junit = tmp_path / "remote.xml"
        remote = _cli(tmp_path / "elsewhere", "ci", "check", "--model", "loan-default", "--candidate", "1.1.0",
                      "--against", "production", "--url", running.url, "--junit", str(junit), "-q",
                      env={"MLOPS_LITE_TOKEN": viewer})
        refused = _cli(tmp_path / "elsewhere", "ci", "check", "--model", "loan-default", "--candidate", "1.1.0",
                       "--url", running.url, env={"MLOPS_LITE_TOKEN": "not-a-token"})
        # The same evaluation in this process, to compare verdicts gate by gate.
        gates = local.policy.evaluate(local.registry.get_version("loan-default", "1.1.0"), baseline="1.0.0")
    finally:
        running.stop()
        local.close()
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert remote.stdout.strip() == "Gates for loan-default@1.1.0 -> production: passed"
    report = _junit(junit)
    assert set(report["cases"]) == {g.gate for g in gates} and report["failed"] == set()
    assert refused.returncode == 2 and refused.stdout == "" and "error:" in refused.stderr


# ------------------------------------------------------------------------------ data-check

@pytest.fixture(scope="module")
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 'loans' repository pinning its schema, with a clean branch, a branch whose file
    breaks the schema, and a branch that conflicts with main."""
    from mlops_lite import connect
    from mlops_lite.data.checks import ColumnRule, SchemaRule

    home = tmp_path_factory.mktemp("ci-data") / "home"
    platform: Any = connect(home=home)
    try:
        repo = platform.data.repo("loans")
        repo.create(classification="internal")
        repo.configure(protected_branches=[],  # protected again below, once main has its two commits
                       schemas=[SchemaRule("loans/*.csv", (ColumnRule("id", "int", False), ColumnRule("amount", "float")))])
        main = repo.branch("main")
        main.upload("loans/a.csv", b"id,amount\n1,10.5\n2,20.0\n")
        main.commit("first")
        for name in ("good", "bad", "clash"):
            repo.branch(name).create("main")
        repo.branch("good").upload("loans/b.csv", b"id,amount\n3,1.0\n")
        repo.branch("good").commit("more loans")
        repo.branch("bad").upload("loans/c.csv", b"id,amount,email\n4,1.0,x@example.com\n")
        repo.branch("clash").upload("loans/a.csv", b"id,amount\n1,11.0\n")
        repo.branch("clash").commit("fix a")
        main.upload("loans/a.csv", b"id,amount\n1,12.0\n")
        main.commit("other fix of a")
        repo.configure(protected_branches=["main"])
    finally:
        platform.close()
    yield home


def test_a_clean_branch_passes_its_data_checks(data_home: Path, tmp_path: Path) -> None:
    junit = tmp_path / "data.xml"
    done = _cli(data_home, "ci", "data-check", "--repo", "loans", "--branch", "good", "--junit", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    report = _junit(junit)
    assert report["suite"] == "mlops-lite.data" and set(report["cases"]) == {"merge.conflicts", "data:loans/b.csv"}
    assert report["failed"] == set()
    assert "Data checks for loans/good -> main" in done.stdout


def test_a_branch_breaking_the_schema_fails_the_file_and_exits_1(data_home: Path, tmp_path: Path) -> None:
    junit = tmp_path / "data.xml"
    done = _cli(data_home, "ci", "data-check", "--repo", "loans", "--branch", "bad", "--junit", str(junit))
    assert done.returncode == 1, done.stdout + done.stderr
    report = _junit(junit)
    assert report["failed"] == {"data:loans/c.csv"}
    failure = report["cases"]["data:loans/c.csv"].find("failure")
    assert failure is not None and "unexpected ['email']" in (failure.get("message") or "")
    assert "uncommitted change(s) on bad were checked too" in done.stdout


def test_a_conflicting_branch_fails_the_conflict_check(data_home: Path) -> None:
    done = _cli(data_home, "ci", "data-check", "--repo", "loans", "--branch", "clash", "-q")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.strip() == "Data checks for loans/clash -> main: failed (1 of 2)"  # the conflict; loans/a.csv itself passes


@pytest.mark.parametrize(("args", "says"), [
    (["--repo", "nope", "--branch", "good"], "nope"),
    (["--repo", "loans", "--branch", "ghost"], "--branch: loans has no branch 'ghost'"),
    (["--repo", "loans", "--branch", "good", "--into", "prod"], "--into: loans has no branch 'prod'"),
])
def test_data_check_bad_input_exits_2(data_home: Path, args: list[str], says: str) -> None:
    done = _cli(data_home, "ci", "data-check", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in " ".join(done.stderr.split())
