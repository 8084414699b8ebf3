"""The systemd units `mlops-lite service install` writes: rendered from a UnitSpec, no
system touched (tests/e2e/test_service_units.py installs and verifies them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_lite.cli import units
from mlops_lite.errors import InvalidInput

EXE = Path("/opt/mlops-lite/bin/mlops-lite")

# Every unit carries each of these lines, whatever the service.
HARDENING = (
    "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "PrivateDevices=yes",
    "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectControlGroups=yes",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "LockPersonality=yes", "RestrictRealtime=yes",
    "SystemCallFilter=@system-service", "CapabilityBoundingSet=", "UMask=0077", "Restart=on-failure",
    "KillSignal=SIGTERM", "Type=exec", "WantedBy=multi-user.target",
)


def lines(text: str) -> list[str]:
    return text.splitlines()


def value(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in lines(text) if line.startswith(key + "=")]


@pytest.mark.parametrize("service", units.SERVICES)
def test_every_unit_is_hardened_and_runs_as_the_dedicated_user(service: str) -> None:
    spec = units.UnitSpec(executable=EXE, home=Path("/srv/mlops"), user="mlops-lite")
    text = units.render_unit(spec, service)
    for line in HARDENING:
        assert line in lines(text), (service, line)
    assert value(text, "User") == ["mlops-lite"] and value(text, "Group") == ["mlops-lite"]
    assert value(text, "Environment")[0] == "MLOPS_LITE_HOME=/srv/mlops"
    assert value(text, "ReadWritePaths") == ["/srv/mlops"]
    assert value(text, "ProtectHome") == ["yes"]
    assert int(value(text, "RestartSec")[0]) > 0 and int(value(text, "TimeoutStopSec")[0]) > 0
    assert "network-online.target" in value(text, "After")[0].split()
    assert value(text, "ExecStart")[0].split()[:2] == [str(EXE), service]


def test_serve_runs_n_workers_and_serve_and_worker_follow_the_local_up() -> None:
    spec = units.UnitSpec(executable=EXE, workers=5)
    rendered = units.render_units(spec)
    assert list(rendered) == ["mlops-lite-up.service", "mlops-lite-serve.service", "mlops-lite-worker.service"]
    serve = rendered["mlops-lite-serve.service"]
    assert value(serve, "ExecStart") == [f"{EXE} serve --workers 5"]
    for name in ("mlops-lite-serve.service", "mlops-lite-worker.service"):
        text = rendered[name]
        assert "mlops-lite-up.service" in value(text, "After")[0].split()
        assert "mlops-lite-up.service" in value(text, "Wants")[0].split()
        # They start once up accepts, never beside a half-started one (a lone serve would open the stores).
        assert value(text, "ExecStartPre") == [f"{EXE} service wait --timeout {units.START_WAIT_S}"]
    assert "mlops-lite-up.service" not in rendered["mlops-lite-up.service"]


def test_a_remote_control_plane_is_named_and_not_waited_for() -> None:
    spec = units.UnitSpec(executable=EXE, control_plane="https://cp.example:8000",
                          prefect_url="https://cp.example:4200/api")
    serve = units.render_unit(spec, "serve")
    worker = units.render_unit(spec, "worker")
    assert value(serve, "ExecStart") == [f"{EXE} serve --workers 2 --control-plane https://cp.example:8000"]
    assert value(worker, "ExecStart") == [
        f"{EXE} worker --url https://cp.example:8000 --prefect-url https://cp.example:4200/api"]
    for text in (serve, worker):
        assert "mlops-lite-up.service" not in text and not value(text, "ExecStartPre")


def test_credentials_come_from_a_file_never_from_the_unit() -> None:
    rendered = units.render_units(units.UnitSpec(executable=EXE))
    for name, text in rendered.items():
        assert "TOKEN" not in text and "AUTH_STRING" not in text, name
    assert value(rendered["mlops-lite-worker.service"], "EnvironmentFile") == ["-/etc/mlops-lite/worker.env"]
    assert value(rendered["mlops-lite-serve.service"], "EnvironmentFile") == ["-/etc/mlops-lite/serve.env"]
    assert value(rendered["mlops-lite-up.service"], "EnvironmentFile") == ["-/etc/mlops-lite/up.env"]


@pytest.mark.parametrize(("home", "code", "expected"), [
    ("/srv/mlops", (), "yes"),
    ("/home/ops/mlops", (), "read-only"),
    ("/srv/mlops", (Path("/root/.pyenv/versions/3.11.7/bin/python3.11"),), "read-only"),
    ("/srv/mlops", (Path("/usr/bin/python3.11"),), "yes"),
])
def test_protect_home_hides_home_folders_unless_the_service_needs_one(home: str, code: tuple[Path, ...],
                                                                     expected: str) -> None:
    spec = units.UnitSpec(executable=EXE, home=Path(home), code_paths=code)
    text = units.render_unit(spec, "up")
    assert value(text, "ProtectHome") == [expected]
    assert value(text, "ReadWritePaths") == [home]


def test_up_starts_only_on_an_initialised_home() -> None:
    """`up` on a missing home would make one and print its admin token into the journal."""
    rendered = units.render_units(units.UnitSpec(executable=EXE, home=Path("/srv/mlops")))
    assert value(rendered["mlops-lite-up.service"], "AssertPathExists") == ["/srv/mlops/admin.token"]
    assert not value(rendered["mlops-lite-serve.service"], "AssertPathExists")


@pytest.mark.parametrize(("change", "field"), [
    ({"workers": 0}, "workers"),
    ({"home": Path("relative/home")}, "home"),
    ({"home": Path("/srv/my home")}, "home"),
    ({"home": Path("/srv/100%")}, "home"),
    ({"home": Path("/tmp/mlops")}, "home"),
    ({"executable": Path("/opt/bin/../mlops-lite")}, "exec"),
    ({"user": "Root User"}, "user"),
    ({"control_plane": "ftp://host"}, "control-plane"),
    ({"prefect_url": "http://host:4200/api"}, "prefect_url"),
])
def test_bad_input_names_the_option(change: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"executable": EXE, **change}
    with pytest.raises(InvalidInput) as caught:
        units.UnitSpec(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_an_unknown_service_names_only() -> None:
    with pytest.raises(InvalidInput) as caught:
        units.render_units(units.UnitSpec(executable=EXE), ("up", "scheduler"))
    assert caught.value.field == "only" and "scheduler" in caught.value.message


def test_the_code_paths_of_a_script_include_its_interpreter(tmp_path: Path) -> None:
    python = tmp_path / "python3"
    python.symlink_to("/usr/bin/env")
    script = tmp_path / "mlops-lite"
    script.write_text(f"#!{python}\nprint('hi')\n")
    assert units.code_paths_of(script) == (script.resolve(), python, Path("/usr/bin/env").resolve())
    binary = tmp_path / "binary"
    binary.write_bytes(b"\x7fELF")
    assert units.code_paths_of(binary) == (binary.resolve(),)


SHIPPED = Path(__file__).parents[2] / "deploy" / "systemd"
SHIPPED_SPEC = units.UnitSpec(executable=Path("/opt/mlops-lite/.venv/bin/mlops-lite"),
                              home=units.DEFAULT_HOME, workers=4)


def test_the_units_shipped_in_deploy_are_what_install_writes() -> None:
    """deploy/systemd/ shows the units for an install under /opt; UPDATE_DEPLOY_UNITS=1 rewrites them."""
    import os

    rendered = units.render_units(SHIPPED_SPEC)
    if os.environ.get("UPDATE_DEPLOY_UNITS") == "1":
        SHIPPED.mkdir(exist_ok=True)
        for name, text in rendered.items():
            (SHIPPED / name).write_text(text)
    assert sorted(p.name for p in SHIPPED.glob("*.service")) == sorted(rendered)
    for name, text in rendered.items():
        assert (SHIPPED / name).read_text() == text, f"{name}: run UPDATE_DEPLOY_UNITS=1 pytest {__file__}"


def test_a_folder_closed_to_other_users_is_found_on_the_way_to_the_program() -> None:
    import shutil
    import tempfile

    from mlops_lite.cli.systemd import closed_to_others

    root = Path(tempfile.mkdtemp(dir="/tmp"))  # not under pytest's own 0700 folder
    try:
        root.chmod(0o755)
        closed = root / "private"
        (closed / "bin").mkdir(parents=True)
        program = closed / "bin" / "mlops-lite"
        program.write_text("#!/bin/sh\n")
        closed.chmod(0o700)
        assert closed_to_others((Path("/usr/bin/env"), program)) == closed
        closed.chmod(0o755)
        assert closed_to_others((Path("/usr/bin/env"), program)) is None
    finally:
        shutil.rmtree(root)
