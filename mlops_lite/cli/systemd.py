"""``mlops-lite service ...``: run mlops-lite on one VM under systemd (docs/deploy.md).

``install`` writes the units ``cli/units.py`` renders (``up``, ``serve --workers N``,
``worker``) into /etc/systemd/system (or ``--dir``), refusing to replace a different unit
unless ``--force``; ``wait`` is what the serve and worker units run before they start:
it returns once the home's ``up`` listens."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from mlops_lite.cli import units
from mlops_lite.cli.common import console, err, group, load_settings
from mlops_lite.daemon import read_daemon
from mlops_lite.errors import BackendUnavailable, Conflict, InvalidInput, PermissionDenied

app = group("Run mlops-lite as systemd services on one VM: install the units, wait for `up` (docs/deploy.md).")


def running_executable() -> Path | None:
    """The mlops-lite program this command runs as: argv[0] when it is the script, else
    the one on PATH, else the one beside this Python (a venv's bin/)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "mlops-lite" and argv0.exists():
        return argv0.resolve()
    found = shutil.which("mlops-lite")
    if found:
        return Path(found).resolve()
    beside = Path(sys.executable).parent / "mlops-lite"
    return beside if beside.exists() else None


def _executable(given: Path | None) -> tuple[Path, tuple[Path, ...]]:
    path = given.expanduser().absolute() if given is not None else running_executable()
    if path is None:
        raise InvalidInput("no mlops-lite executable found (not argv[0], not on PATH): pass --exec", field="exec",
                           expected="the path of the mlops-lite program the units run")
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise InvalidInput(f"--exec {path} is not an executable file", field="exec",
                           expected="the path of the mlops-lite program the units run")
    code = units.code_paths_of(path)
    if given is None:
        import mlops_lite  # the package this very program runs (an editable install may live under /home)

        code += (Path(mlops_lite.__file__).resolve().parent,)
    return path, code


def closed_to_others(paths: tuple[Path, ...]) -> Path | None:
    """The first folder on the way to one of ``paths`` that other users cannot enter (no
    o+x, as /root's 0700): a dedicated user could not run a program found through it."""
    for path in paths:
        for folder in reversed(path.parents):
            try:
                if not folder.stat().st_mode & 0o001:
                    return folder
            except OSError:
                return folder
    return None


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


@app.command()
def install(user: Annotated[str, typer.Option(help="The dedicated system user the services run as.")]
            = units.DEFAULT_USER,
            home: Annotated[Path, typer.Option(help="The MLOPS_LITE_HOME the services use (absolute).")]
            = units.DEFAULT_HOME,
            workers: Annotated[int, typer.Option(help="Worker processes of `serve --workers N`.")] = 2,
            only: Annotated[list[str] | None, typer.Option(
                help="Install only this service: up | serve | worker (repeatable; default all three).")] = None,
            dir_: Annotated[Path, typer.Option("--dir", help="Where the unit files go.")] = units.SYSTEM_UNIT_DIR,
            exec_: Annotated[Path | None, typer.Option(
                "--exec", help="The mlops-lite program the units run (default: this one).")] = None,
            control_plane: Annotated[str | None, typer.Option(
                help="The URL of `mlops-lite up` when it runs on another host (serve and worker units).")] = None,
            prefect_url: Annotated[str | None, typer.Option(
                help="With --control-plane: the Prefect API the worker takes flow runs from.")] = None,
            dry_run: Annotated[bool, typer.Option(help="Print the units; write nothing.")] = False,
            enable: Annotated[bool, typer.Option(
                help="Then run `systemctl daemon-reload && systemctl enable --now` (root, system unit dir), "
                     "else print it.")] = False,
            force: Annotated[bool, typer.Option(help="Replace unit files that differ.")] = False,
            create_user: Annotated[bool, typer.Option(
                help="Create the user with `useradd --system` when it is missing (root only).")] = False) -> None:
    """Write systemd units for `up`, `serve --workers N` and `worker`, hardened: a dedicated
    user, ProtectSystem=strict with only the home writable, NoNewPrivileges, no
    capabilities, a system call filter, restart on failure. The units hold no secret: the
    worker and replicas enroll their service tokens into <home>/services/ on this host, or
    read /etc/mlops-lite/<service>.env (0600) when --control-plane is elsewhere."""
    services = tuple(only) if only else units.SERVICES
    executable, code = _executable(exec_)
    spec = units.UnitSpec(executable=executable, home=home.expanduser().absolute(), user=user, workers=workers,
                          control_plane=control_plane, prefect_url=prefect_url, code_paths=code)
    rendered = units.render_units(spec, services)
    if dry_run:
        for name, text in rendered.items():
            console.print(f"# {dir_ / name}", highlight=False)
            console.print(text, highlight=False, markup=False)
        return
    if not dir_.is_dir():
        raise InvalidInput(f"--dir {dir_} is not a folder", field="dir", expected="an existing folder for unit files")
    if not os.access(dir_, os.W_OK):
        raise PermissionDenied(f"--dir {dir_} is not writable by this user: run as root (sudo), or pass --dir "
                               "a folder of yours and copy the units")
    changed = {name: text for name, text in rendered.items()
               if not (dir_ / name).exists() or (dir_ / name).read_text() != text}
    differing = [name for name in changed if (dir_ / name).exists()]
    if differing and not force:
        raise Conflict(f"{dir_ / differing[0]} exists and differs from the unit to write: pass --force to replace it",
                       details={"files": [str(dir_ / name) for name in differing]})
    has_user = _user_exists(user)
    if create_user and not has_user and os.geteuid() != 0:
        raise PermissionDenied(f"--create-user needs root to run `{units.useradd_command(user, spec.home)}`")
    if create_user and not has_user:
        subprocess.run(units.useradd_command(user, spec.home).split(), check=True)
        console.print(f"created the system user {user}", highlight=False)
        has_user = True
    for name in rendered:
        if name in changed:
            _write_unit(dir_ / name, changed[name])
        console.print(f"{'wrote' if name in changed else 'unchanged'}  {dir_ / name}", highlight=False)
    _print_next_steps(spec, list(rendered), dir_, has_user=has_user, enable=enable)


def _write_unit(path: Path, text: str) -> None:
    """Unit files are public (0644, no secret in them), replaced atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o644)  # whatever the umask
    os.replace(tmp, path)


def _print_next_steps(spec: units.UnitSpec, names: list[str], dir_: Path, *, has_user: bool, enable: bool) -> None:
    closed = closed_to_others(spec.code_paths)
    if closed is not None:
        err.print(f"warning: {closed} is closed to other users (no o+x) and the "
                  f"program runs from under it ({', '.join(str(p) for p in spec.code_paths)}): {spec.user} cannot "
                  "run it; install mlops-lite where every user may read it (e.g. a venv under /opt with a Python "
                  "from /usr) and pass --exec", highlight=False, soft_wrap=True)
    if not has_user:
        console.print(f"the user {spec.user} does not exist: create it with\n  "
                      f"{units.useradd_command(spec.user, spec.home)}", highlight=False)
    if not spec.home.exists():
        console.print(f"the home {spec.home} does not exist: make it with\n  "
                      f"install -d -m 0700 -o {spec.user} -g {spec.user} {spec.home}", highlight=False)
    initialised = (spec.home / "admin.token").exists()
    if units.unit_name("up") in names and not initialised:
        console.print(f"initialise the home as {spec.user} (the admin token is shown once, on your terminal, "
                      f"not in the journal; the up unit asserts it exists):\n  {units.init_command(spec)}",
                      highlight=False)
    if any(name != units.unit_name("up") for name in names):
        where = (f"enroll their service tokens into {spec.home}/services/ at first start" if spec.same_host else
                 f"read their tokens from {units.ENVIRONMENT_DIR}/<service>.env (root's, 0600): "
                 "MLOPS_LITE_TOKEN (worker), MLOPS_LITE_SERVE_TOKEN (serve), PREFECT_API_AUTH_STRING")
        console.print(f"credentials: serve and worker {where}", highlight=False)
    command = units.enable_command(names)
    systemctl = shutil.which("systemctl")
    ready = initialised or units.unit_name("up") not in names
    if enable and ready and dir_ == units.SYSTEM_UNIT_DIR and systemctl is not None and os.geteuid() == 0:
        subprocess.run([systemctl, "daemon-reload"], check=True)
        subprocess.run([systemctl, "enable", "--now", *names], check=True)
        console.print(f"enabled and started: {' '.join(names)}", highlight=False)
        return
    if enable:
        why = ("the home is not initialised yet" if not ready else
               "the units are not in the system unit folder" if dir_ != units.SYSTEM_UNIT_DIR else
               "systemctl is not installed" if systemctl is None else "this is not root")
        err.print(f"not enabled ({why}); run:", highlight=False)
    else:
        console.print("next:", highlight=False)
    console.print(f"  {command}", highlight=False)


@app.command()
def wait(timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait at most.")] = 120.0) -> None:
    """Return once this home's `mlops-lite up` runs and accepts connections (what the serve
    and worker units run before they start); exit 1 after --timeout seconds."""
    settings = load_settings()
    deadline = time.monotonic() + timeout
    while True:
        running = read_daemon(settings.daemon_file)
        if running is not None and _accepts(running.url):
            console.print(f"mlops-lite up at {running.url}", highlight=False)
            return
        if time.monotonic() >= deadline:
            raise BackendUnavailable(f"mlops-lite up did not start within {timeout:g} s for the home {settings.home} "
                                     f"({'not running' if running is None else 'not accepting at ' + running.url})")
        time.sleep(0.5)


def _accepts(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 443), timeout=1):
            return True
    except OSError:
        return False
