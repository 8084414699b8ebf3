"""The real ``mlops-lite`` script as a subprocess, each run in its own temporary home."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlops_lite
from mlops_lite.config import load_settings
from mlops_lite.platform import open_local

SCRIPT = Path(sys.executable).with_name("mlops-lite")
COMMANDS = ("init", "demo", "up", "worker", "tui", "status", "token")
COUNTS = ("data_repositories", "runs", "models", "model_versions", "deployments", "audit_events")


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MLOPS_LITE_HOME": str(home)}
    for key in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN", "MLOPS_LITE_CONFIG"):
        env.pop(key, None)
    return env


def cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the script to completion (subprocess.run kills it if it outlives ``timeout``)."""
    return subprocess.run([str(SCRIPT), *args], env=_env(home), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_the_script_is_installed_beside_the_interpreter() -> None:
    assert SCRIPT.exists(), SCRIPT


def test_root_help_lists_every_command(home: Path) -> None:
    result = cli(home, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: mlops-lite" in result.stdout
    for command in COMMANDS:
        assert command in result.stdout
    assert not home.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(home: Path, command: str) -> None:
    result = cli(home, command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"Usage: mlops-lite {command}" in result.stdout
    assert "--help" in result.stdout
    # Help runs nothing: no home, no database.
    assert not home.exists()


def test_no_command_shows_help_without_a_traceback(home: Path) -> None:
    result = cli(home)
    assert "Usage: mlops-lite" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_init_creates_the_home_and_a_private_admin_token(home: Path) -> None:
    result = cli(home, "init")
    assert result.returncode == 0, result.stderr
    assert (home / "mlops-lite.toml").is_file()
    assert (home / "metadata.duckdb").is_file()
    token_file = home / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    token = token_file.read_text().strip()
    assert token.startswith("mll_")
    assert token in result.stdout
    assert "Traceback" not in result.stderr


def test_init_twice_keeps_everything(home: Path) -> None:
    first = cli(home, "init")
    assert first.returncode == 0, first.stderr
    token_bytes = (home / "admin.token").read_bytes()
    token = token_bytes.decode().strip()
    config_bytes = (home / "mlops-lite.toml").read_bytes()

    second = cli(home, "init")
    assert second.returncode == 0, second.stderr
    assert "kept" in second.stdout
    assert token not in second.stdout
    assert (home / "admin.token").read_bytes() == token_bytes
    assert (home / "mlops-lite.toml").read_bytes() == config_bytes

    # The first token still authenticates (the subprocesses have ended and released the stores).
    platform = open_local(load_settings(home=home))
    try:
        identity = platform.tokens.authenticate(token)
        assert (identity.name, identity.role) == ("admin", "admin")
        assert platform.tokens.count() == 1
    finally:
        platform.close()


def test_home_option_wins_over_the_environment(tmp_path: Path) -> None:
    env_home, option_home = tmp_path / "from-env", tmp_path / "from-option"
    result = cli(env_home, "--home", str(option_home), "init")
    assert result.returncode == 0, result.stderr
    assert (option_home / "admin.token").is_file()
    assert not env_home.exists()


def test_status_on_a_fresh_home_says_not_initialised(home: Path) -> None:
    result = cli(home, "status")
    assert result.returncode == 0, result.stderr
    assert "not initialised" in result.stdout
    assert "not running" in result.stdout
    assert not (home / "metadata.duckdb").exists()

    as_json = cli(home, "status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["initialised"] is False
    assert report["daemon"] is None
    assert "holds" not in report


def test_status_json_after_init_reports_the_counts(home: Path) -> None:
    assert cli(home, "init").returncode == 0
    result = cli(home, "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["initialised"] is True
    assert report["daemon"] is None
    assert report["home"] == str(home.resolve())
    holds = report["holds"]
    assert {key: holds[key] for key in COUNTS} == {
        "data_repositories": 0, "runs": 0, "models": 0, "model_versions": 0, "deployments": 0,
        # init created the admin token: one audit event.
        "audit_events": 1}

    text = cli(home, "status")
    assert text.returncode == 0, text.stderr
    assert "0 models" in text.stdout
    assert "1 audit events" in text.stdout


def test_an_error_of_the_tree_is_one_line_and_exit_1(home: Path) -> None:
    result = cli(home, "tui")  # uninitialised: NotFound
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "mlops-lite init" in lines[0]
    assert str(home) in lines[0]


# ------------------------------------------------------------------- one owner across processes

_HOLDER = """
import sys, time
from mlops_lite.config import load_settings
from mlops_lite.platform import open_local
platform = open_local(load_settings(home=sys.argv[1]))
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(home: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the home's stores, until the test ends."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(home)], env=_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while not line:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                break
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if ready:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    break
        assert line.strip() == "ready", f"holder did not start: rc={proc.poll()}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_a_second_process_gets_store_locked_naming_the_holder(home: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(mlops_lite.StoreLocked) as error:
        mlops_lite.connect(home=home)
    assert isinstance(error.value, mlops_lite.BackendUnavailable)
    assert error.value.pid == holder.pid
    assert str(holder.pid) in error.value.message
    assert "MLOPS_LITE_URL" in error.value.message

    # The CLI says the same in one line, exit 1.
    result = cli(home, "status")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and str(holder.pid) in lines[0]

    # Once the holder is gone, the stores open here.
    holder.kill()
    holder.wait(timeout=30)
    platform = mlops_lite.connect(home=home)
    try:
        assert platform.remote is False
    finally:
        platform.close()


def test_audit_verify_and_export_from_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MLOPS_LITE_HOME": str(home)}
    cli = str(Path(sys.executable).with_name("mlops-lite"))
    assert subprocess.run([cli, "init"], env=env, capture_output=True, timeout=120).returncode == 0
    ok = subprocess.run([cli, "audit", "verify"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "verifies" in ok.stdout
    export = tmp_path / "audit.jsonl"
    done = subprocess.run([cli, "audit", "export", "-o", str(export)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and export.read_text().count("\n") >= 1
    assert subprocess.run([cli, "audit", "verify", "--file", str(export)], env=env, capture_output=True,
                          timeout=120).returncode == 0
    export.write_text(export.read_text().replace('"system:init"', '"mallory"'))
    tampered = subprocess.run([cli, "audit", "verify", "--file", str(export)], env=env, capture_output=True,
                              text=True, timeout=120)
    assert tampered.returncode == 1 and "event seq 1 (token.create" in tampered.stdout, tampered.stdout
    assert "does not verify with the audit key" in tampered.stdout


def test_worker_without_a_daemon_says_what_is_missing(home: Path) -> None:
    """`mlops-lite worker` needs the API, a Prefect server and a token; it names what is
    missing and starts nothing."""
    env = {**_env(home), "PREFECT_API_URL": ""}
    run = subprocess.run([str(SCRIPT), "worker"], env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 1 and "no mlops-lite API to work for" in run.stderr + run.stdout
    run = subprocess.run([str(SCRIPT), "worker", "--url", "http://127.0.0.1:9"], env=env, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 1 and "no Prefect server" in run.stderr + run.stdout
    run = subprocess.run([str(SCRIPT), "worker", "--url", "http://127.0.0.1:9", "--prefect-url",
                          "http://127.0.0.1:9"], env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 1 and "no token" in run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    env["MLOPS_LITE_TOKEN"] = "some-token"
    run = subprocess.run([str(SCRIPT), "worker", "--url", "http://127.0.0.1:9", "--prefect-url",
                          "http://127.0.0.1:9"], env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert run.returncode == 1 and "cannot reach mlops-lite at http://127.0.0.1:9" in run.stderr + run.stdout


def test_token_create_list_and_revoke(home: Path) -> None:
    assert cli(home, "init").returncode == 0
    created = cli(home, "token", "create", "--name", "ci-bot", "--role", "viewer", "--json")
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    assert token["role"] == "viewer" and token["token"].startswith("mll_")
    listed = json.loads(cli(home, "token", "list", "--json").stdout)
    assert {"ci-bot", "admin"} <= {t["name"] for t in listed} and token["token"] not in json.dumps(listed)
    assert cli(home, "token", "revoke", token["id"]).returncode == 0
    again = cli(home, "token", "revoke", token["id"])
    assert again.returncode == 1 and "already revoked" in again.stderr + again.stdout
    bad = cli(home, "token", "create", "--name", "x", "--role", "king")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    with open_local(load_settings(home=home)) as platform:
        with pytest.raises(mlops_lite.Unauthenticated):
            platform.tokens.authenticate(token["token"])
