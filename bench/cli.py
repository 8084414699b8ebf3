"""Benchmark of the command line's start: ``mlops-lite --help`` and ``mlops-lite models list``
beside ``mlflow --help`` and a bare interpreter, each a fresh process timed wall to wall.

    .venv/bin/python bench/cli.py [--quick] [--with-mlflow] [--json PATH]

Figures (``bench: FIGURE value=V reference=R ratio=X target=T ok|short``; ratio = value/reference,
the target bounds the value, a maximum):

- ``cli_help_s``: ``mlops-lite --help``; target <= 0.3 s.
- ``cli_models_list_s``: ``mlops-lite models list`` on a home holding the demo's model, no daemon
  running (the command opens the embedded stores in-process); target <= 0.8 s.
- ``cli_models_list_http_s``: the same with ``mlops-lite up --no-prefect`` running on that home
  (the command is the daemon's client over HTTP); target <= 0.8 s.

The reference of each is ``mlflow --help`` (its CLI's start), run from its own virtualenv,
``bench/.venvs/mlflow``, which ``--with-mlflow`` makes (the helper bench/tracking.py uses; never
the project's venv); an existing one is used without the flag. Without MLflow the reference
is the floor, labelled as such: ``python -c pass`` on the project's interpreter, which the
table shows in any case. Each command runs once unmeasured first, so every run reads the
bytecode cache a user's install has (written under a temporary PYTHONPYCACHEPREFIX, whatever
PYTHONDONTWRITEBYTECODE says); the cost without that cache is shown apart. The median of the
repetitions is reported. The home is made by ``mlops-lite demo --no-loop`` in a temporary
folder (about 20 s), removed at the end with everything else; the daemon binds 127.0.0.1 on a
free port and is stopped with Ctrl-C (SIGINT). Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from figures import Figure, fmt, print_lines, print_table
from tracking import MLFLOW_VENV, ROOT, _child_env, ensure_mlflow_venv, mlflow_version


@dataclass(frozen=True)
class Size:
    name: str
    repeats: int  # runs of each of our commands and of the floor
    reference_repeats: int  # runs of mlflow --help (seconds each)


QUICK = Size("quick", repeats=3, reference_repeats=2)
DEFAULT = Size("default", repeats=10, reference_repeats=5)

HELP_TARGET_S = 0.3
LIST_TARGET_S = 0.8


def mlops_lite_command() -> list[str]:
    script = Path(sys.executable).parent / "mlops-lite"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from mlops_lite.cli import main; main()"]


def child_env(home: Path, pycache: Path | None) -> dict[str, str]:
    env = _child_env()  # MLflow's quiet settings, no PYTHON* variables from this shell
    env.pop("MLOPS_LITE_URL", None)
    env["MLOPS_LITE_HOME"] = str(home)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def timed_runs(argv: list[str], env: dict[str, str], repeats: int, *, warm_up: bool = True,
               prints: bool = True) -> list[float]:
    """Wall seconds of each of ``repeats`` runs; each must succeed (and print something, if ``prints``)."""
    times = []
    for i in range(repeats + (1 if warm_up else 0)):
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        elapsed = time.perf_counter() - t0
        if done.returncode != 0 or (prints and not done.stdout.strip()):
            raise RuntimeError(f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
        if i or not warm_up:
            times.append(elapsed)
    return times


def make_demo_home(home: Path, env: dict[str, str]) -> None:
    print("  making the home: mlops-lite demo --no-loop (about 20 s) ...", flush=True)
    done = subprocess.run([*mlops_lite_command(), "demo", "--no-loop", "--requests", "20"], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"mlops-lite demo failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_daemon(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``mlops-lite up --no-prefect`` on a free loopback port, once its daemon file names it."""
    port = free_port()
    daemon = subprocess.Popen([*mlops_lite_command(), "up", "--no-prefect", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"mlops-lite up exited ({daemon.returncode}): "
                               f"{(daemon.stderr.read() if daemon.stderr else b'').decode()[-1500:]}")
        try:
            info = json.loads((home / "daemon.json").read_text())
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                if info.get("pid") == daemon.pid:
                    return daemon
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    stop_daemon(daemon)
    raise RuntimeError("mlops-lite up did not start listening within 120 s")


def stop_daemon(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGINT)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of each command, 2 of mlflow --help")
    parser.add_argument("--with-mlflow", action="store_true",
                        help=f"make {MLFLOW_VENV.relative_to(ROOT)} with mlflow in it, for the reference")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else DEFAULT
    started = time.perf_counter()

    print(f"bench/cli.py ({size.name} size): wall time of fresh processes, median of {size.repeats} runs "
          f"(mlflow --help: {size.reference_repeats})")
    unavailable = ensure_mlflow_venv() if args.with_mlflow else None
    version = mlflow_version()
    if version is None and unavailable is None:
        unavailable = f"{MLFLOW_VENV.relative_to(ROOT)} has no working mlflow (pass --with-mlflow to make it)"
    info = {"cores": os.cpu_count(), "python": pyplatform.python_version(), "platform": pyplatform.platform(),
            "mlflow": version, "load_average": os.getloadavg()}
    print(f"  machine: {info['cores']} cores, Python {info['python']}, load average "
          f"{' '.join(f'{x:.2f}' for x in info['load_average'])}; {info['platform']}")

    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-") as tmp:
        work = Path(tmp)
        home = work / "home"
        env = child_env(home, work / "pycache")
        make_demo_home(home, env)
        ours = mlops_lite_command()
        floor = timed_runs([sys.executable, "-c", "pass"], env, size.repeats, warm_up=False, prints=False)
        help_s = timed_runs([*ours, "--help"], env, size.repeats)
        list_s = timed_runs([*ours, "models", "list"], env, size.repeats)
        cold_env = child_env(home, None)
        help_cold_s = timed_runs([*ours, "--help"], cold_env, size.repeats, warm_up=False)
        list_cold_s = timed_runs([*ours, "models", "list"], cold_env, size.repeats, warm_up=False)
        daemon = start_daemon(home, env)
        try:
            list_http_s = timed_runs([*ours, "models", "list"], env, size.repeats)
        finally:
            stop_daemon(daemon)
        if version:
            mlflow = [str(MLFLOW_VENV / "bin" / "mlflow"), "--help"]
            reference = statistics.median(timed_runs(mlflow, child_env(work / "mlflow-home", None),
                                                     size.reference_repeats))
            ref_label = f"mlflow --help (MLflow {version}, its own venv)"
        else:
            reference = statistics.median(floor)
            ref_label = f"FALLBACK (no MLflow: {unavailable}): python -c pass"

    figures = []
    for name, label, runs, target in (
            ("cli_help_s", "mlops-lite --help", help_s, HELP_TARGET_S),
            ("cli_models_list_s", "models list, local stores", list_s, LIST_TARGET_S),
            ("cli_models_list_http_s", "models list, over HTTP (up running)", list_http_s, LIST_TARGET_S)):
        value = statistics.median(runs)
        figures.append(Figure(name, label, "s", value, reference, ref_label, value / reference, target,
                              value <= target, "value <="))

    print()
    print_table(figures)
    print()
    base = statistics.median(floor)
    print(f"floor: python -c pass {fmt(base)} s (this interpreter); above it: " + ", ".join(
        f"{f.label} {fmt(f.value - base)} s" for f in figures))
    print(f"without a bytecode cache (PYTHONDONTWRITEBYTECODE=1, every module compiled each run): "
          f"--help {fmt(statistics.median(help_cold_s))} s, models list {fmt(statistics.median(list_cold_s))} s")
    print("spread (min-max): " + ", ".join(f"{f.label} {fmt(min(r))}-{fmt(max(r))} s"
                                            for f, r in zip(figures, (help_s, list_s, list_http_s), strict=True)))
    print(f"total {time.perf_counter() - started:.1f} s")
    print_lines(figures)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        runs: dict[str, Any] = {"floor_s": floor, "help_s": help_s, "models_list_s": list_s,
                                "models_list_http_s": list_http_s, "help_no_bytecode_s": help_cold_s,
                                "models_list_no_bytecode_s": list_cold_s}
        args.json.write_text(json.dumps({"bench": "cli", "size": size.name, "machine": info,
                                         "figures": [asdict(f) for f in figures], "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
