"""Every path of a home is its owner's alone (folders 0700, files 0600 or stricter), however
the home was made: ``connect()`` in a script, ``mlops-lite init``, ``demo`` and a run of
``up`` with its Prefect server. Each runs under the umask 022 (files 0644 unless the code
says otherwise), so the modes come from the code and not from the test's process. A home
made by an earlier release (group- and world-readable) is made private on its next open.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import mlops_lite
from tests.e2e.test_daemon import Daemon, free_port, kill_prefect_server
from tests.e2e.test_plaintext_scan import write_everywhere

CLI = str(Path(sys.executable).with_name("mlops-lite"))


def loose(home: Path) -> list[str]:
    """Paths under ``home`` (itself included) that a group or others may use, with their modes."""
    found = []
    for path in [home, *sorted(home.rglob("*"))]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue  # gone meanwhile (a temporary file, a checkpointed WAL)
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path.relative_to(home.parent)} {stat.S_IMODE(mode):o}")
    return found


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask of a login shell, for this test and the processes it starts."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_a_home_made_by_connect_is_private_and_the_umask_untouched(tmp_path: Path, umask_022: None) -> None:
    home = tmp_path / "home"
    with mlops_lite.connect(home=home) as platform:
        assert platform.remote is False
        assert _umask() == 0o022, "a library call leaves its caller's umask alone"
    write_everywhere(home, "permissions")  # objects, artifacts, the prediction log, feedback
    assert (home / "predictions").is_dir() and (home / "feedback").is_dir()
    assert loose(home) == []
    assert _umask() == 0o022
    beside = tmp_path / "beside.txt"  # a file the script writes outside the home keeps its usual mode
    beside.write_text("x")
    assert stat.S_IMODE(beside.stat().st_mode) == 0o644


def test_a_home_made_by_init_is_private(tmp_path: Path, umask_022: None) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MLOPS_LITE_HOME": str(home)}
    done = subprocess.run([CLI, "init"], env=env, capture_output=True, text=True, timeout=120, umask=0o022)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (home / "mlops-lite.toml").is_file() and (home / "admin.token").is_file()
    assert (home / "inbox").is_dir() and (home / "keys" / "keyring.json").is_file()
    assert loose(home) == []


def test_a_home_made_by_an_earlier_release_is_made_private_on_open(tmp_path: Path, umask_022: None) -> None:
    """The layout before this rule: the home and its folders 0755, files 0644, objects 0444."""
    home = tmp_path / "home"
    write_everywhere(home, "earlier")
    (home / ".private").unlink()
    for path in [home, *home.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(0o755 if stat.S_ISDIR(mode) else (0o444 if mode & 0o200 == 0 else 0o644))
    assert len(loose(home)) > 10
    with mlops_lite.connect(home=home) as platform:
        assert platform.data.repo("scan").ref("dev").read_bytes("rows/earlier.csv").startswith(b"x1,")
    assert loose(home) == []
    assert (home / ".private").is_file()
    objects = [p for p in (home / "objects").rglob("*") if p.is_file()]
    assert objects and all(stat.S_IMODE(p.stat().st_mode) == 0o400 for p in objects)


@pytest.mark.slow
def test_demo_and_up_with_prefect_keep_the_home_private(tmp_path: Path, umask_022: None,
                                                        daemons: list[Daemon]) -> None:
    """The demo's flows run on an ephemeral Prefect (its SQLite database under
    <home>/prefect); `up` starts a Prefect server there too, writes its logs and the
    daemon file, and serves from a DuckDB file with its write-ahead log."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"MLOPS_LITE_HOME": str(home), "COLUMNS": "200"})
    done = subprocess.run([CLI, "demo", "--requests", "20", "--no-loop"], env=env, capture_output=True, text=True,
                          timeout=400, umask=0o022)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (home / "prefect").is_dir()
    assert loose(home) == []

    prefect_port = free_port()
    daemon = Daemon(home, free_port(), "--prefect-port", str(prefect_port))
    daemons.append(daemon)
    try:
        def prefect_healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{prefect_port}/api/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        daemon.wait_until(daemon.healthy, 90, "GET /v1/health answered 200")
        daemon.wait_until(prefect_healthy, 90, f"Prefect's /api/health on port {prefect_port} answered 200")
        with mlops_lite.connect(home=home) as remote:  # the daemon's client: it serves and logs
            assert remote.remote is True
            assert remote.deployments.predict("loans", _held_out_rows(remote)).predictions
        assert (home / "daemon.json").is_file() and (home / "logs" / "prefect-server.log").is_file()
        assert loose(home) == [], "while the daemon runs"
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=45) == 0, daemon.output()
    finally:
        kill_prefect_server(prefect_port)
    assert loose(home) == [], "after the daemon stopped"


def _held_out_rows(platform: object) -> list[dict[str, object]]:
    """Two held-out rows with the inputs of the version the demo's deployment serves."""
    import pyarrow.csv as pacsv

    from tests.conftest import DATA

    deployment = platform.deployments.get("loans")  # type: ignore[attr-defined]
    version = platform.registry.get_version(deployment.model, deployment.version)  # type: ignore[attr-defined]
    names = [str(i["name"]) for i in version.signature["inputs"]]
    return [{name: row[name] for name in names} for row in pacsv.read_csv(DATA / "loans_holdout.csv").to_pylist()[:2]]
