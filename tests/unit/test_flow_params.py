"""A flow run's parameters are checked in the core before any task runs
(mlops_lite/flow_params.py): whoever starts the run (the Prefect UI, `prefect deployment
run`, the API, a script) gets the same refusal, naming the parameter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mlops_lite.config import load_settings
from mlops_lite.errors import InvalidInput
from mlops_lite.flow_params import allowed_source_dirs, check_flow_params, check_home, check_source


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # Only the home's inbox and the sample data: the session's temporary folder is not allowed here.
    monkeypatch.delenv("MLOPS_LITE_INGEST_DIRS", raising=False)
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    (home / "mlops-lite.toml").write_text("")
    return load_settings(home=home)


def refused(settings: Any, field: str, params: dict[str, Any]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        check_flow_params("release-loop", params, settings=settings)
    assert caught.value.field == field, caught.value
    return caught.value


def test_a_source_must_lie_in_the_inbox_the_samples_or_ingest_dirs(settings: Any, tmp_path: Path) -> None:
    inbox_file = settings.inbox / "fresh.csv"
    inbox_file.write_text("a\n1\n")
    assert check_source(str(inbox_file), settings) == inbox_file.resolve()
    sample = Path(__file__).resolve().parents[2] / "data" / "loans.csv"
    assert check_source(str(sample), settings) == sample.resolve()

    for outside in ("/etc/passwd", str(settings.home / "admin.token"), str(settings.inbox / ".." / "audit.key"),
                    str(tmp_path / "elsewhere.csv")):
        with pytest.raises(InvalidInput) as caught:
            check_source(outside, settings)
        assert caught.value.field == "source" and "outside the folders" in caught.value.message, outside

    # A link in the inbox is followed: it cannot reach out of it.
    link = settings.inbox / "passwd.csv"
    os.symlink("/etc/passwd", link)
    with pytest.raises(InvalidInput):
        check_source(str(link), settings)

    for bad in ("", "   ", "a\x00b", 42, None, "x" * 5000):
        with pytest.raises(InvalidInput):
            check_source(bad, settings)

    # A folder configured in ingest_dirs is allowed, with everything under it.
    landing = tmp_path / "landing"
    (landing / "2026").mkdir(parents=True)
    configured = load_settings(home=settings.home, ingest_dirs=[str(landing)])
    assert landing.resolve() in allowed_source_dirs(configured)
    assert check_source(str(landing / "2026" / "x.csv"), configured) == (landing / "2026" / "x.csv").resolve()
    with pytest.raises(InvalidInput):
        check_source("/etc/passwd", configured)


def test_ingest_dirs_come_from_the_environment_as_a_path_list(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_LITE_INGEST_DIRS", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert load_settings(home=tmp_path / "home").ingest_dirs == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]
    monkeypatch.setenv("MLOPS_LITE_INGEST_DIRS", f'["{tmp_path / "c"}"]')
    assert load_settings(home=tmp_path / "home").ingest_dirs == [(tmp_path / "c").resolve()]


def test_every_parameter_is_checked_by_the_rule_of_its_name(settings: Any) -> None:
    good = {"home": str(settings.home), "source": str(settings.inbox / "x.csv"), "deployment": "loans",
            "model": "loan-default", "repository": "loans", "path": "loans/train.csv", "target": "default",
            "algorithm": "random_forest", "exclude": ["name", "email"], "sensitive": "gender", "ref": "main",
            "branch": "dev", "version": "1.2.0", "run_id": "0123abcd", "params": {"C": 0.5}, "tune": [{"C": 1}],
            "since": "2026-12-04T10:00:00Z", "canary_weight": 0.3, "observe_s": 60.0, "min_requests": 20,
            "task_runner": "dask", "approval_timeout_s": 3600.0, "trigger": "drift-feature", "debounce_s": 0}
    check_flow_params("release-loop", good, settings=settings)

    for field, value in [("repository", "Loans"), ("repository", "../x"), ("repository", 7), ("ref", "a..b"),
                         ("ref", "-x"), ("branch", "main/"), ("path", "/etc/passwd"), ("path", "a/../b"),
                         ("deployment", "Bad Name"), ("model", "a/b"), ("version", "1.0"), ("run_id", "../../x"),
                         ("algorithm", "svm"), ("exclude", "name"), ("exclude", ["a\nb"]), ("sensitive", 3),
                         ("params", ["C"]), ("tune", []), ("since", "yesterday"), ("canary_weight", 1.5),
                         ("canary_weight", float("nan")), ("observe_s", -1), ("min_requests", 2.5),
                         ("min_requests", True), ("task_runner", "ray"), ("trigger", "x" * 3000),
                         ("source", "/etc/passwd")]:
        error = refused(settings, field, {**good, field: value})
        assert error.details["field"] == field

    with pytest.raises(ValueError, match="no rule for"):
        check_flow_params("release-loop", {"command": "rm -rf /"}, settings=settings)


def test_a_flow_run_names_the_home_this_process_serves(settings: Any, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_LITE_URL", raising=False)
    home = str(settings.home)
    assert check_home(home, bound=[home], settings=settings) == home
    with pytest.raises(InvalidInput) as caught:
        check_home(str(tmp_path / "other"), bound=[home], settings=settings)
    assert caught.value.field == "home"
    # Nothing bound: an initialised home only (no stores made at a path a run names) ...
    check_home(home, bound=[], settings=settings)
    elsewhere = load_settings(home=tmp_path / "nowhere")
    with pytest.raises(InvalidInput, match="not an initialised"):
        check_home(str(tmp_path / "nowhere"), bound=[], settings=elsewhere)
    # ... unless this is a worker: the home then only names the daemon's.
    monkeypatch.setenv("MLOPS_LITE_URL", "http://127.0.0.1:9")
    assert check_home(str(tmp_path / "nowhere"), bound=[], settings=elsewhere)
    for bad in ("", None, 3, "a\x00b"):
        with pytest.raises(InvalidInput):
            check_home(bad, bound=[], settings=settings)
