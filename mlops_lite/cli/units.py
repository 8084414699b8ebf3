"""systemd units for a single VM: ``up``, ``serve --workers N`` and ``worker``, each as a
dedicated user in a sandbox (docs/deploy.md, "A single VM").

Pure generation: the text of each unit from a ``UnitSpec``; nothing here reads or writes
the system. ``mlops-lite service install`` (``cli/systemd.py``) writes what this renders.

The units hold no secret. Credentials reach the processes the documented way
(``cli/service.py``): on the daemon's host the worker and the replicas enroll their own
service identity once and keep it in ``<home>/services/<service>.token`` (0600, inside
the home the units may write); elsewhere an optional ``EnvironmentFile`` (0600, root's)
sets ``MLOPS_LITE_TOKEN`` / ``MLOPS_LITE_SERVE_TOKEN`` and ``PREFECT_API_AUTH_STRING``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlops_lite.errors import InvalidInput

SERVICES = ("up", "serve", "worker")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
ENVIRONMENT_DIR = PurePosixPath("/etc/mlops-lite")
DEFAULT_USER = "mlops-lite"
DEFAULT_HOME = Path("/var/lib/mlops-lite")

# ProtectHome= hides these; a home or a program under one of them needs read-only instead.
HOME_TREES = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))

# What systemd reads verbatim in a path or a word: no quoting, no specifier (%), no space.
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/+@-]*$")
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
_URL = re.compile(r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._/-]*)?$")

# Seconds systemd waits after SIGTERM before SIGKILL: a worker lets its flow runs end.
STOP_TIMEOUT_S = {"up": 30, "serve": 30, "worker": 90}
RESTART_SEC = 5
START_WAIT_S = 120

DESCRIPTIONS = {
    "up": "mlops-lite control plane (API, stores, Prefect server)",
    "serve": "mlops-lite inference replicas",
    "worker": "mlops-lite Prefect worker (training and monitoring flow runs)",
}


@dataclass(frozen=True)
class UnitSpec:
    """What the units run and as whom. ``control_plane`` set: `up` runs on another host,
    so serve and worker reach it there and are not ordered after a local up unit."""

    executable: Path
    home: Path = DEFAULT_HOME
    user: str = DEFAULT_USER
    workers: int = 2
    control_plane: str | None = None
    prefect_url: str | None = None
    code_paths: tuple[Path, ...] = ()
    """Where the program's code lives (the executable's interpreter, the package): read
    only, but it must stay visible, so a path under /home or /root asks ProtectHome=read-only."""

    def __post_init__(self) -> None:
        plain_path(self.executable, "--exec")
        plain_path(self.home, "--home")
        if any(PurePosixPath(self.home).is_relative_to(tmp) for tmp in ("/tmp", "/var/tmp")):
            raise InvalidInput(f"--home {self.home} is under a temporary folder, which PrivateTmp=yes hides from "
                               "the services", field="home", expected="a lasting folder, e.g. /var/lib/mlops-lite")
        if not _USER_NAME.match(self.user):
            raise InvalidInput(f"--user {self.user!r} is not a system user name", field="user",
                               expected="lower-case letters, digits, '_' or '-', starting with a letter or '_'")
        if self.workers < 1:
            raise InvalidInput(f"--workers {self.workers} is not a count of serve workers", field="workers",
                               expected="1 or more")
        for option, url in (("--control-plane", self.control_plane), ("--prefect-url", self.prefect_url)):
            if url is not None and not _URL.match(url):
                raise InvalidInput(f"{option} {url!r} is not an http(s) URL", field=option.lstrip("-"),
                                   expected="http(s)://host:port")
        if self.prefect_url is not None and self.control_plane is None:
            raise InvalidInput("--prefect-url is for a worker whose control plane runs elsewhere: give "
                               "--control-plane too", field="prefect_url", expected="with --control-plane")

    @property
    def same_host(self) -> bool:
        return self.control_plane is None


def plain_path(path: Path, option: str) -> Path:
    """``path`` if systemd can take it verbatim (absolute, no space, quote or %)."""
    text = str(path)
    if not _PLAIN_PATH.match(text) or "/../" in text + "/":
        raise InvalidInput(f"{option} {text!r} is not a plain absolute path", field=option.lstrip("-"),
                           expected="an absolute path of letters, digits and . _ / + @ -")
    return path


def unit_name(service: str) -> str:
    return f"mlops-lite-{service}.service"


def environment_file(service: str) -> PurePosixPath:
    """The optional environment file of a unit (``-``: absent is fine): tokens, the KEK
    (``MLOPS_LITE_MASTER_KEY``), a database password. systemd reads it as root before it
    drops to the user, so it can be root's alone (0600)."""
    return ENVIRONMENT_DIR / f"{service}.env"


def protect_home(spec: UnitSpec) -> str:
    """``yes`` (the home trees hidden) unless the home or the program lives in one."""
    needed = (spec.home, spec.executable, *spec.code_paths)
    inside = any(PurePosixPath(path).is_relative_to(tree) for path in needed for tree in HOME_TREES)
    return "read-only" if inside else "yes"


def exec_start(spec: UnitSpec, service: str) -> str:
    words = [str(spec.executable), service]
    if service == "serve":
        words += ["--workers", str(spec.workers)]
        if spec.control_plane is not None:
            words += ["--control-plane", spec.control_plane]
    elif service == "worker" and spec.control_plane is not None:
        words += ["--url", spec.control_plane]
        if spec.prefect_url is not None:
            words += ["--prefect-url", spec.prefect_url]
    return " ".join(words)


def render_unit(spec: UnitSpec, service: str) -> str:
    """The unit file of ``service`` (one of SERVICES)."""
    if service not in SERVICES:
        raise InvalidInput(f"--only {service!r} is not a service of mlops-lite", field="only",
                           expected=" | ".join(SERVICES))
    after = ["network-online.target"]
    wants = ["network-online.target"]
    if service != "up" and spec.same_host:
        after.append(unit_name("up"))
        wants.append(unit_name("up"))
    unit = [
        "[Unit]",
        f"Description={DESCRIPTIONS[service]}",
        f"After={' '.join(after)}",
        f"Wants={' '.join(wants)}",
        # Restart=on-failure, but not forever in a tight loop: 5 failures in 5 minutes stop it.
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
    ]
    if service == "up":
        # `up` makes a missing home and prints its new admin token: on the terminal of
        # `mlops-lite init`, never into the journal.
        unit.append(f"AssertPathExists={spec.home}/admin.token")
    unit += [
        "",
        "[Service]",
        "Type=exec",
        f"User={spec.user}",
        f"Group={spec.user}",
        f"Environment=MLOPS_LITE_HOME={spec.home}",
        "Environment=PYTHONUNBUFFERED=1",
    ]
    unit.append(f"EnvironmentFile=-{environment_file(service)}")
    if service != "up" and spec.same_host:
        # On the daemon's host the replicas and the worker find `up` by its daemon file; a
        # single serve worker started before it would open the stores itself.
        unit.append(f"ExecStartPre={spec.executable} service wait --timeout {START_WAIT_S}")
        unit.append(f"TimeoutStartSec={START_WAIT_S + 30}")
    unit += [
        f"ExecStart={exec_start(spec, service)}",
        f"WorkingDirectory={spec.home}",
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={STOP_TIMEOUT_S[service]}",
        "UMask=0077",
        "",
        # Not MemoryDenyWriteExecute: ctypes/cffi callbacks (libffi) map writable code.
        "# Sandbox: `systemd-analyze security mlops-lite-*.service` scores it.",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={spec.home}",
        f"ProtectHome={protect_home(spec)}",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "PrivateMounts=yes",
        "ProtectProc=invisible",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        # Not RemoveIPC: the three units share the user, and stopping one would remove the
        # semaphores the others' worker processes hold (multiprocessing, in /dev/shm).
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        # Not ~@resources: ONNX Runtime and OpenMP pin their threads (sched_setaffinity).
        "SystemCallFilter=~@privileged",
        "SystemCallErrorNumber=EPERM",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(unit)


def render_units(spec: UnitSpec, services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """Each service's unit file name and text, in SERVICES order."""
    unknown = [service for service in services if service not in SERVICES]
    if unknown:
        raise InvalidInput(f"--only {unknown[0]!r} is not a service of mlops-lite", field="only",
                           expected=" | ".join(SERVICES))
    return {unit_name(service): render_unit(spec, service) for service in SERVICES if service in services}


def enable_command(names: list[str]) -> str:
    return f"systemctl daemon-reload && systemctl enable --now {' '.join(names)}"


def init_command(spec: UnitSpec) -> str:
    return f"sudo -u {spec.user} env MLOPS_LITE_HOME={spec.home} {spec.executable} init"


def useradd_command(user: str, home: Path) -> str:
    return f"useradd --system --user-group --home-dir {home} --no-create-home --shell /usr/sbin/nologin {user}"


def code_paths_of(executable: Path) -> tuple[Path, ...]:
    """The paths the executable runs from: itself resolved, and for a script its
    interpreter (the shebang) and where that resolves to (a venv links to its Python)."""
    found: list[Path] = [executable.resolve()]
    try:
        with open(executable, "rb") as script:
            first = script.readline(512)
    except OSError:
        return tuple(found)
    if first.startswith(b"#!"):
        words = first[2:].decode(errors="replace").split()
        if words and words[0].startswith("/"):
            interpreter = Path(words[0])
            found += [interpreter, interpreter.resolve()]
    return tuple(dict.fromkeys(found))
