"""`mlops-lite service install` through the real script: units written into a folder,
checked line by line, then by systemd's own verifier and security analyzer where this
machine has them (systemd-analyze; no systemd runs as PID 1 here, so the units are
verified, not started)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("mlops-lite")
ANALYZE = shutil.which("systemd-analyze")
NAMES = ("mlops-lite-up.service", "mlops-lite-serve.service", "mlops-lite-worker.service")
HARDENING = (
    "User=mlops-lite", "Group=mlops-lite", "NoNewPrivileges=yes", "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/mlops-lite", "PrivateTmp=yes", "PrivateDevices=yes", "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes", "ProtectControlGroups=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "LockPersonality=yes", "RestrictRealtime=yes", "SystemCallFilter=@system-service", "CapabilityBoundingSet=",
    "UMask=0077", "Restart=on-failure", "RestartSec=5", "KillSignal=SIGTERM",
    "Environment=MLOPS_LITE_HOME=/var/lib/mlops-lite",
)
# Measured with systemd 252 (Debian 12): 1.5 for each unit ("OK"); 2.0 leaves room for
# another version's weights, and a unit that lost a directive or two lands above it.
EXPOSURE_BOUND = 2.0


def run(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLOPS_LITE_HOME": str(home)}
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def install(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run("service", "install", "--dir", str(tmp_path / "units"), *args, home=tmp_path / "cli-home")


def systemd_version() -> int:
    assert ANALYZE is not None
    first = subprocess.run([ANALYZE, "--version"], capture_output=True, text=True, check=True).stdout
    return int(re.match(r"systemd (\d+)", first).group(1))  # type: ignore[union-attr]


def verify(*paths: Path) -> subprocess.CompletedProcess[str]:
    """systemd's own checks: every directive known and parsed, the executables present."""
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, "verify", "--man=no", *map(str, paths)], capture_output=True, text=True,
                          timeout=60, cwd=paths[0].parent)


@pytest.fixture
def units_dir(tmp_path: Path) -> Path:
    (tmp_path / "units").mkdir()
    return tmp_path / "units"


def test_install_writes_three_hardened_units_that_hold_no_secret(tmp_path: Path, units_dir: Path) -> None:
    done = install(tmp_path, "--workers", "3")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in units_dir.iterdir()) == sorted(NAMES)
    for name in NAMES:
        path = units_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        text = path.read_text()
        for line in HARDENING:
            assert line in text.splitlines(), (name, line)
        assert re.search(r"^ProtectHome=(yes|read-only)$", text, re.M)
        assert re.search(r"^TimeoutStopSec=\d+$", text, re.M)
        assert re.search(r"^After=network-online.target", text, re.M)
        exec_start = re.search(r"^ExecStart=(\S+) (\w+)", text, re.M)
        assert exec_start and Path(exec_start.group(1)) == SCRIPT.resolve()
        assert "TOKEN=" not in text and "AUTH_STRING" not in text
    serve = (units_dir / "mlops-lite-serve.service").read_text()
    assert f"ExecStart={SCRIPT.resolve()} serve --workers 3" in serve
    for name in ("mlops-lite-serve.service", "mlops-lite-worker.service"):
        text = (units_dir / name).read_text()
        assert re.search(r"^After=.*mlops-lite-up\.service", text, re.M)
        assert re.search(r"^Wants=.*mlops-lite-up\.service", text, re.M)
    assert "useradd --system" in done.stdout or "created the system user" in done.stdout or \
        subprocess.run(["id", "mlops-lite"], capture_output=True).returncode == 0
    assert "systemctl daemon-reload && systemctl enable --now mlops-lite-up.service" in done.stdout
    assert not (tmp_path / "cli-home").exists()  # writing units makes no home


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (package systemd)")
def test_systemd_verifies_every_unit_without_a_warning(tmp_path: Path, units_dir: Path) -> None:
    assert install(tmp_path).returncode == 0
    for name in NAMES:
        done = verify(units_dir / name)
        assert done.returncode == 0 and done.stdout + done.stderr == "", (name, done.stdout, done.stderr)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (package systemd)")
def test_the_verifier_really_reports_a_broken_unit(tmp_path: Path, units_dir: Path) -> None:
    assert install(tmp_path, "--only", "up").returncode == 0
    good = (units_dir / "mlops-lite-up.service").read_text()
    misspelt = units_dir / "misspelt.service"
    misspelt.write_text(good.replace("ProtectSystem=strict", "ProtectSytem=strict"))
    done = verify(misspelt)
    assert "Unknown key 'ProtectSytem'" in done.stderr, done.stderr
    bad_value = units_dir / "bad-value.service"
    bad_value.write_text(good.replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    assert "Failed to parse" in verify(bad_value).stderr
    missing = units_dir / "missing-exec.service"
    missing.write_text(good.replace(f"ExecStart={SCRIPT.resolve()}", f"ExecStart={tmp_path}/no-such-program"))
    done = verify(missing)
    assert done.returncode != 0 and "no-such-program" in done.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (package systemd)")
def test_the_security_exposure_of_each_unit_is_low(tmp_path: Path, units_dir: Path) -> None:
    if systemd_version() < 250:
        pytest.skip(f"systemd-analyze security --offline needs systemd 250; this is {systemd_version()}")
    assert install(tmp_path).returncode == 0
    scores = {}
    for name in (*NAMES, "bare.service"):
        if name == "bare.service":  # the same program without the sandbox: the bound must tell them apart
            text = (units_dir / NAMES[0]).read_text()
            (units_dir / name).write_text(text.split("# Sandbox")[0] + "[Install]\nWantedBy=multi-user.target\n")
        done = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", name], capture_output=True,
                              text=True, timeout=60, cwd=units_dir)
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
        assert found, done.stdout + done.stderr
        scores[name] = float(found.group(1))
    for name in NAMES:
        assert scores[name] < EXPOSURE_BOUND, scores
    assert scores["bare.service"] > EXPOSURE_BOUND, scores


def test_a_different_unit_is_kept_unless_forced_and_the_same_one_is_unchanged(tmp_path: Path,
                                                                               units_dir: Path) -> None:
    assert install(tmp_path, "--workers", "2").returncode == 0
    again = install(tmp_path, "--workers", "2")
    assert again.returncode == 0 and again.stdout.count("unchanged") == 3
    before = {name: (units_dir / name).read_text() for name in NAMES}
    refused = install(tmp_path, "--workers", "4")
    assert refused.returncode == 1
    assert "mlops-lite-serve.service exists and differs" in refused.stderr and "--force" in refused.stderr
    assert {name: (units_dir / name).read_text() for name in NAMES} == before
    forced = install(tmp_path, "--workers", "4", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "serve --workers 4" in (units_dir / "mlops-lite-serve.service").read_text()


@pytest.mark.parametrize(("args", "named"), [
    (("--workers", "0"), "--workers"),
    (("--only", "up", "--only", "scheduler"), "--only"),
    (("--home", "/tmp/mlops"), "--home"),
    (("--user", "Not A User"), "--user"),
    (("--exec", "/no/such/mlops-lite"), "--exec"),
])
def test_bad_input_names_the_option_and_writes_nothing(tmp_path: Path, units_dir: Path, args: tuple[str, ...],
                                                       named: str) -> None:
    done = install(tmp_path, *args)
    assert done.returncode == 1 and named in done.stderr, done.stderr
    assert list(units_dir.iterdir()) == []


def test_a_missing_unit_folder_is_named(tmp_path: Path) -> None:
    done = run("service", "install", "--dir", str(tmp_path / "absent"), home=tmp_path / "home")
    assert done.returncode == 1 and "--dir" in done.stderr and not (tmp_path / "absent").exists()


@pytest.mark.skipif(os.access("/proc/1", os.W_OK), reason="no folder here that this user cannot write (/proc/1 is)")
def test_a_unit_folder_this_user_cannot_write_is_named(tmp_path: Path) -> None:
    done = run("service", "install", "--dir", "/proc/1", home=tmp_path / "home")
    assert done.returncode == 1 and "--dir /proc/1 is not writable" in done.stderr, done.stderr


def test_dry_run_prints_only_the_named_units_and_writes_nothing(tmp_path: Path, units_dir: Path) -> None:
    done = install(tmp_path, "--dry-run", "--only", "worker", "--home", "/srv/mlops")
    assert done.returncode == 0, done.stderr
    assert f"# {units_dir}/mlops-lite-worker.service" in done.stdout
    assert "ExecStart=" in done.stdout and "ReadWritePaths=/srv/mlops" in done.stdout
    assert re.findall(r"^# (\S+)$", done.stdout, re.M) == [f"{units_dir}/mlops-lite-worker.service"]
    assert list(units_dir.iterdir()) == []


def test_enable_outside_the_system_folder_only_says_the_command(tmp_path: Path, units_dir: Path) -> None:
    done = install(tmp_path, "--only", "worker", "--enable")
    assert done.returncode == 0, done.stderr
    assert "not enabled (the units are not in the system unit folder)" in done.stderr
    assert "systemctl daemon-reload && systemctl enable --now mlops-lite-worker.service" in done.stdout


def test_enable_waits_for_an_initialised_home_and_says_how_to_make_it(tmp_path: Path, units_dir: Path) -> None:
    done = install(tmp_path, "--only", "up", "--enable", "--home", "/srv/mlops-lite-absent")
    assert done.returncode == 0, done.stderr
    assert "not enabled (the home is not initialised yet)" in done.stderr
    assert "install -d -m 0700 -o mlops-lite -g mlops-lite /srv/mlops-lite-absent" in done.stdout
    assert (f"sudo -u mlops-lite env MLOPS_LITE_HOME=/srv/mlops-lite-absent {SCRIPT.resolve()} init"
            in done.stdout)
    assert "AssertPathExists=/srv/mlops-lite-absent/admin.token" in (units_dir / NAMES[0]).read_text()


def test_wait_returns_once_the_homes_up_accepts_and_fails_after_its_timeout(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    nothing = run("service", "wait", "--timeout", "1", home=home)
    assert nothing.returncode == 1 and "did not start within 1 s" in nothing.stderr
    with socket.socket() as listener:  # stands where `up` listens; the daemon file names this live process
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        (home / "daemon.json").write_text(json.dumps({"pid": os.getpid(), "url": url, "prefect_url": None,
                                                      "started_at": "2026-01-01T00:00:00+00:00"}))
        done = run("service", "wait", "--timeout", "10", home=home)
        assert done.returncode == 0 and url in done.stdout, done.stderr
    closed = run("service", "wait", "--timeout", "1", home=home)  # the file names a live pid, nothing listens
    assert closed.returncode == 1 and "not accepting" in closed.stderr
