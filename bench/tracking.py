"""Benchmark of run logging, each figure beside MLflow's tracking measured in the same run.

    .venv/bin/python bench/tracking.py [--quick] [--with-mlflow] [--json PATH]

One run gets 100 params and 10,000 metric points (10 keys x 1,000 steps), logged two
ways; each timing runs from the first log call to the run's end, when everything is
durable (start_run is timed apart: it reads git and package versions). ``--quick``
logs the same run, repeats each measurement 3 times instead of 5 and bounds MLflow's
per-call loop at 10 s instead of 120 s. Figures (``bench: FIGURE value=V reference=R ratio=X target=T ok|short``):

- ``log_per_call_s``: seconds for ``log_param`` x 100 and ``log_metric`` x N, one call per
  point, then ``end()`` (which writes the last buffered batch); against MLflow's
  ``mlflow.log_param`` / ``mlflow.log_metric`` loop and ``end_run()`` on a SQLite file.
  ratio = reference/value (the speed-up); target >= 50.
- ``log_batch_s``: seconds for one ``log_batch(metrics, params)`` then ``end()``; against
  ``MlflowClient.log_batch`` (all N metrics and 100 params in one call) then
  ``set_terminated`` on SQLite. ratio = reference/value; target >= 5.

MLflow runs in a child process from its own virtualenv, ``bench/.venvs/mlflow``, which
``--with-mlflow`` makes (``python -m venv`` + ``pip install mlflow``; never the project's
venv); an existing one is used without the flag. MLflow's per-call loop is bounded in
time: when it stops early its time is extrapolated linearly from the points it logged,
and the report says so. Without MLflow both figures print ``short`` with the
reason, against a fallback reference labelled as such: a plain SQLAlchemy ORM insert +
commit per point (per call) and ``add_all`` + one commit (batch) into a SQLite file.
Everything lives in a temporary folder removed at the end. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from figures import Figure, bench_line, fmt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
MLFLOW_VENV = ROOT / "bench" / ".venvs" / "mlflow"
KEYS = 10  # metric keys; points are spread evenly over them, step = i // KEYS


@dataclass(frozen=True)
class Size:
    name: str
    params: int
    points: int
    repeats: int  # our runs and MLflow's batch runs; the median is reported
    reference_loop_s: float  # time bound of the reference's per-call loop


QUICK = Size("quick", params=100, points=10_000, repeats=3, reference_loop_s=10.0)
DEFAULT = Size("default", params=100, points=10_000, repeats=5, reference_loop_s=120.0)




# --------------------------------------------------------------------------- mlops-lite


def measure_ours(size: Size, home: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from mlops_lite import connect
    from mlops_lite.metadata.tables import Metric, Param

    params = {f"param_{i}": i for i in range(size.params)}
    points = [(f"metric_{i % KEYS}", i * 0.25, i // KEYS) for i in range(size.points)]
    per_call, batch, starts, flushes = [], [], [], []
    run_ids = []
    platform = connect(home=home)
    try:
        # One warm-up run: first-use costs (imports, the experiment row) are not logging.
        platform.tracking.start_run("warm-up", experiment="bench").end()
        for _ in range(size.repeats):
            t0 = time.perf_counter()
            run = platform.tracking.start_run("per-call", experiment="bench")
            t1 = time.perf_counter()
            for key, value in params.items():
                run.log_param(key, value)
            for key, value, step in points:
                run.log_metric(key, value, step=step)
            run.end()
            t2 = time.perf_counter()
            starts.append(t1 - t0)
            per_call.append(t2 - t1)
            flushes.append(run.flushes)
            run_ids.append(run.id)

            batch_points = [(key, value, step, None) for key, value, step in points]
            run = platform.tracking.start_run("batch", experiment="bench")
            t1 = time.perf_counter()
            run.log_batch(metrics=batch_points, params=params)
            run.end()
            batch.append(time.perf_counter() - t1)
            run_ids.append(run.id)
        # Everything arrived: every run holds all its points and params.
        with platform.tracking._store.session() as session:
            for run_id in run_ids:
                n = int(session.execute(select(func.count()).select_from(Metric)
                                        .where(Metric.run_id == run_id)).scalar_one())
                m = int(session.execute(select(func.count()).select_from(Param)
                                        .where(Param.run_id == run_id)).scalar_one())
                if (n, m) != (size.points, size.params):
                    raise RuntimeError(f"run {run_id} holds {n} points and {m} params, "
                                       f"not {size.points} and {size.params}")
    finally:
        platform.close()
    return {"per_call_s": statistics.median(per_call), "batch_s": statistics.median(batch),
            "start_run_ms": statistics.median(starts) * 1e3, "flushes": statistics.median(flushes),
            "per_call_runs_s": per_call, "batch_runs_s": batch}


# --------------------------------------------------------------------------- MLflow, the reference


MLFLOW_CHILD = r"""
import json, os, statistics, sys, time
config = json.load(sys.stdin)
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

uri = "sqlite:///" + config["db"]
mlflow.set_tracking_uri(uri)
client = MlflowClient(uri)
experiment = client.create_experiment("bench", artifact_location=config["artifacts"])
P, N, KEYS = config["params"], config["points"], config["keys"]

# warm-up run: the store's first use (schema migrations) is not logging
mlflow.start_run(experiment_id=experiment)
mlflow.log_param("warm", 1)
mlflow.log_metric("warm", 1.0, step=0)
mlflow.end_run()

# (a) one call per point
t0 = time.perf_counter()
active = mlflow.start_run(experiment_id=experiment)
t1 = time.perf_counter()
for i in range(P):
    mlflow.log_param(f"param_{i}", i)
t2 = time.perf_counter()
deadline = t1 + config["loop_s"]
done = 0
for i in range(N):
    mlflow.log_metric(f"metric_{i % KEYS}", i * 0.25, step=i // KEYS)
    done += 1
    if time.perf_counter() >= deadline:
        break
t3 = time.perf_counter()
mlflow.end_run()
t4 = time.perf_counter()
per_call = t4 - t1
loop_run = active.info.run_id
stored = sum(len(client.get_metric_history(loop_run, f"metric_{k}")) for k in range(KEYS))

# (b) one batch call
batch = []
for r in range(config["repeats"]):
    run = client.create_run(experiment)
    now = int(time.time() * 1000)
    metrics = [Metric(f"metric_{i % KEYS}", i * 0.25, now, i // KEYS) for i in range(N)]
    params = [Param(f"param_{i}", str(i)) for i in range(P)]
    t = time.perf_counter()
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    client.set_terminated(run.info.run_id)
    batch.append(time.perf_counter() - t)
    batch_stored = sum(len(client.get_metric_history(run.info.run_id, f"metric_{k}")) for k in range(KEYS))
    if batch_stored != N:
        raise SystemExit(f"mlflow log_batch stored {batch_stored} points, not {N}")

print(json.dumps({"version": mlflow.__version__, "start_run_ms": (t1 - t0) * 1e3, "per_call_s": per_call,
                  "params_s": t2 - t1, "points_s": t3 - t2, "end_s": t4 - t3, "per_call_points": done, "per_call_stored": stored, "batch_s": statistics.median(batch),
                  "batch_runs_s": batch}))
"""


def mlflow_python() -> Path:
    return MLFLOW_VENV / "bin" / "python"


def mlflow_version() -> str | None:
    if not mlflow_python().exists():
        return None
    done = subprocess.run([str(mlflow_python()), "-c", "import mlflow; print(mlflow.__version__)"],
                          capture_output=True, text=True, env=_child_env())
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_mlflow_venv() -> str | None:
    """``--with-mlflow``: a virtualenv of its own with mlflow in it (never the project's venv).
    Returns why it could not be made, or None."""
    try:
        if not mlflow_python().exists():
            print(f"  making {MLFLOW_VENV.relative_to(ROOT)} (python -m venv) ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        if mlflow_version() is None:
            print("  pip install mlflow into it (a minute or two) ...", flush=True)
            done = subprocess.run([str(mlflow_python()), "-m", "pip", "install", "-q", "mlflow"],
                                  capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                return "pip install mlflow failed: " + (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not make {MLFLOW_VENV.relative_to(ROOT)}: {exc}"
    return None if mlflow_version() else "mlflow does not import in its venv"


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "GIT_PYTHON_REFRESH": "quiet"})
    return env


def measure_mlflow(size: Size, work: Path) -> dict[str, Any]:
    config = {"db": str(work / "mlflow.db"), "artifacts": (work / "mlartifacts").as_uri(), "params": size.params,
              "points": size.points, "keys": KEYS, "repeats": size.repeats, "loop_s": size.reference_loop_s}
    child = subprocess.run([str(mlflow_python()), "-c", MLFLOW_CHILD], input=json.dumps(config), cwd=work,
                           capture_output=True, text=True, env=_child_env(),
                           timeout=size.reference_loop_s * 3 + 600)
    if child.returncode != 0:
        raise RuntimeError(f"the MLflow child failed (exit {child.returncode}): {child.stderr.strip()[-2000:]}")
    result = dict(json.loads(child.stdout.strip().splitlines()[-1]))
    done = result["per_call_points"]
    result["per_call_measured_s"] = result["per_call_s"]
    if done < size.points:  # bounded loop: extrapolate the metric points' part, per point
        result["per_call_s"] = result["params_s"] + result["points_s"] * size.points / done + result["end_s"]
    if result["per_call_stored"] != done:
        raise RuntimeError(f"MLflow stored {result['per_call_stored']} of the {done} points it logged")
    return result


# --------------------------------------------------------------------------- fallback reference


def measure_orm_sqlite(size: Size, work: Path) -> dict[str, Any]:
    """A plain SQLAlchemy ORM model on a SQLite file: insert + commit per point, and add_all + one commit."""
    from sqlalchemy import Column, Float, Integer, String, create_engine, func, select
    from sqlalchemy.orm import Session, declarative_base

    Base: Any = declarative_base()

    class OrmMetric(Base):  # type: ignore[misc, valid-type]
        __tablename__ = "metrics"
        run_id = Column(String, primary_key=True)
        key = Column(String, primary_key=True)
        step = Column(Integer, primary_key=True)
        value = Column(Float)
        timestamp = Column(Float)

    class OrmParam(Base):  # type: ignore[misc, valid-type]
        __tablename__ = "params"
        run_id = Column(String, primary_key=True)
        key = Column(String, primary_key=True)
        value = Column(String)

    engine = create_engine(f"sqlite:///{work / 'orm.db'}")
    Base.metadata.create_all(engine)
    done = 0
    with Session(engine) as session:
        t0 = time.perf_counter()
        deadline = t0 + size.reference_loop_s
        for i in range(size.params):
            session.add(OrmParam(run_id="loop", key=f"param_{i}", value=str(i)))
            session.commit()
        t1 = time.perf_counter()
        for i in range(size.points):
            session.add(OrmMetric(run_id="loop", key=f"metric_{i % KEYS}", step=i // KEYS, value=i * 0.25,
                                  timestamp=time.time()))
            session.commit()
            done += 1
            if time.perf_counter() >= deadline:
                break
        measured = time.perf_counter() - t0
    batch = []
    for r in range(size.repeats):
        with Session(engine) as session:
            run = f"batch-{r}"
            rows: list[Any] = [OrmMetric(run_id=run, key=f"metric_{i % KEYS}", step=i // KEYS, value=i * 0.25,
                                         timestamp=time.time()) for i in range(size.points)]
            rows += [OrmParam(run_id=run, key=f"param_{i}", value=str(i)) for i in range(size.params)]
            t = time.perf_counter()
            session.add_all(rows)
            session.commit()
            batch.append(time.perf_counter() - t)
            stored = session.execute(select(func.count()).select_from(OrmMetric).where(OrmMetric.run_id == run))
            if stored.scalar_one() != size.points:
                raise RuntimeError("the ORM reference lost points")
    engine.dispose()
    points_s = measured - (t1 - t0)
    return {"per_call_s": (t1 - t0) + points_s * size.points / done if done < size.points else measured,
            "per_call_measured_s": measured, "per_call_points": done, "batch_s": statistics.median(batch)}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repeats, MLflow's per-call loop bounded at 10 s (under a minute in all)")
    parser.add_argument("--with-mlflow", action="store_true",
                        help=f"make {MLFLOW_VENV.relative_to(ROOT)} with mlflow in it, for the reference")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else DEFAULT
    started = time.perf_counter()

    import duckdb
    import sqlalchemy

    print(f"bench/tracking.py ({size.name} size): one run, {size.params} params + {size.points:,} metric points "
          f"({KEYS} keys x {size.points // KEYS:,} steps), logged one call per point and in one batch call")
    unavailable = ensure_mlflow_venv() if args.with_mlflow else None
    version = mlflow_version()
    if version is None and unavailable is None:
        unavailable = (f"{MLFLOW_VENV.relative_to(ROOT)} is absent (pass --with-mlflow to make it)"
                       if not mlflow_python().exists() else "mlflow does not import in its venv")
    info = {"cores": os.cpu_count(), "python": pyplatform.python_version(), "platform": pyplatform.platform(),
            "duckdb": duckdb.__version__, "sqlalchemy": sqlalchemy.__version__, "mlflow": version}
    print(f"  machine: {info['cores']} cores, Python {info['python']}, duckdb {info['duckdb']}, "
          f"sqlalchemy {info['sqlalchemy']}; {info['platform']}")
    print("  reference: " + (f"MLflow {version} tracking on a SQLite file, in its own venv (child process)"
                             if version else f"MLflow unavailable: {unavailable}; fallback: a plain SQLAlchemy "
                                             "ORM model on a SQLite file (NOT MLflow)"))

    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-") as tmp:
        work = Path(tmp)
        ours = measure_ours(size, work / "home")
        if version:
            (work / "mlflow").mkdir()
            reference = measure_mlflow(size, work / "mlflow")
            ref_label_a = f"MLflow {version}: mlflow.log_param/log_metric loop, SQLite"
            ref_label_b = f"MLflow {version}: MlflowClient.log_batch, SQLite"
        else:
            (work / "orm").mkdir()
            reference = measure_orm_sqlite(size, work / "orm")
            ref_label_a = "FALLBACK (no MLflow): SQLAlchemy ORM insert+commit per point, SQLite"
            ref_label_b = "FALLBACK (no MLflow): SQLAlchemy ORM add_all + one commit, SQLite"

    note = "" if version else f"MLflow reference unavailable: {unavailable}"
    figures = []
    for name, label, value, ref, ref_label, target in (
            ("log_per_call_s", f"{size.params} params + {size.points:,} points, 1 call each", ours["per_call_s"],
             reference["per_call_s"], ref_label_a, 50),
            ("log_batch_s", f"{size.params} params + {size.points:,} points, 1 batch call", ours["batch_s"],
             reference["batch_s"], ref_label_b, 5)):
        ratio = ref / value
        figures.append(Figure(name, label, "s", value, ref, ref_label, ratio, target,
                              ratio >= target and not note, "speed-up >=", note))

    print()
    header = f"{'figure':<44} {'value':>10} {'reference':>11} {'ratio':>8} {'target':>15}  {'result':<6} reference is"
    print(header)
    print("-" * (len(header) + 40))
    for f in figures:
        print(f"{f.label:<44} {fmt(f.value) + ' s':>10} {fmt(f.reference) + ' s':>11} {fmt(f.ratio):>8} "
              f"{f.rule + ' ' + f'{f.target:g}':>15}  {'ok' if f.ok else 'SHORT':<6} {f.reference_label}")
    print()
    print(f"mlops-lite: start_run {ours['start_run_ms']:.1f} ms (git + environment, not in the figures); "
          f"per call {ours['per_call_s'] / (size.points + size.params) * 1e6:.1f} us/item in "
          f"{ours['flushes']:.0f} batches; median of {size.repeats} runs")
    loop_points = reference.get("per_call_points", size.points)
    extrapolated = (f", extrapolated from {loop_points:,} of {size.points:,} points logged in "
                    f"{reference['per_call_measured_s']:.1f} s") if loop_points < size.points else ""
    who = "MLflow" if version else "fallback"
    print(f"{who}: per call {reference['per_call_s'] / (size.points + size.params) * 1e3:.2f} ms/item"
          f"{extrapolated}" + (f"; start_run {reference['start_run_ms']:.0f} ms" if version else ""))
    if note:
        print(f"NOTE: both figures are short whatever their ratio: {note}")
    print(f"total {time.perf_counter() - started:.1f} s")
    print()
    for f in figures:
        print(bench_line(f) + (f" ({f.note}; reference is the fallback: {f.reference_label})" if f.note else ""))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"bench": "tracking", "size": size.name, "machine": info,
                                         "figures": [asdict(f) for f in figures], "ours": ours,
                                         "reference": reference}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
