"""Benchmark of drift statistics over a prediction log, beside numpy/scipy measured in the same run.

    .venv/bin/python bench/monitor.py [--quick] [--with-evidently] [--json PATH]

A synthetic prediction log is generated deterministically (numpy seed 20261122): a
current window of 1,000,000 rows (``--quick``: 100,000) in 10 Parquet part files, and a
100,000-row training reference in one file, each with 20 feature columns ``f_<feature>``
(15 numeric: normal, long-tailed, integer, rounded; 5 categorical, one with a category
the reference never saw), 5 of them drifted, a few with a tiny shift, a few with nulls,
beside ``request_id``, ``at`` and ``prediction``. Figures
(``bench: FIGURE value=V reference=R ratio=X target=T ok|short``):

- ``drift_vs_numpy_s``: seconds for ``compute_drift`` (DuckDB over views on the Parquet
  files: PSI, exact KS with its p-value, chi-squared and Cramer's V for every feature),
  against the same statistics with numpy/scipy (``scipy.stats.ks_2samp``, numpy PSI with
  the same bins, ``chi2_contingency``) on arrays already in memory (numeric float64,
  categoricals as integer codes), one thread. Median of 5 runs (quick: 3) after a warm-up.
  ratio = value/reference; target <= 1.5.
- ``drift_1m_rows_s``: the same DuckDB seconds against an absolute target: value <= 2 s
  (for 1,000,000 rows x 20 features; at the quick size the target is not scaled).
- ``drift_peak_rss_mb``: peak resident memory (``ru_maxrss``) of a child process that opens
  DuckDB and runs ``compute_drift`` once, against the peak of a child that loads the arrays
  and runs the numpy/scipy statistics. value <= 2048 MB.

The bench also checks that both sides agree (largest absolute difference per statistic,
printed; a difference above 1e-9 in KS D, PSI, or relative chi-squared fails the run).

``--with-evidently`` makes ``bench/.venvs/evidently`` (``python -m venv`` + ``pip install
evidently 'pandas<3' pyarrow``: evidently 0.7 does not import with pandas 3; never the
project's venv) and times Evidently's ``DataDriftPreset`` on
the same frames (pandas, loaded before the clock starts), shown as a peer column: it runs
its own tests (by default Wasserstein distance and Jensen-Shannon divergence above 1,000
rows), so its figure is comparable in work, not in statistics. An existing venv is used
without the flag. If the install or the run fails, the reason is printed and the bench
goes on. Everything lives in a temporary folder removed at the end. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from figures import Figure, bench_line, fmt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
EVIDENTLY_VENV = ROOT / "bench" / ".venvs" / "evidently"
SEED = 20261122
REFERENCE_ROWS = 100_000
PARTS = 10


@dataclass(frozen=True)
class Size:
    name: str
    current_rows: int
    repeats: int
    evidently_timeout_s: float


QUICK = Size("quick", current_rows=100_000, repeats=3, evidently_timeout_s=300.0)
DEFAULT = Size("default", current_rows=1_000_000, repeats=5, evidently_timeout_s=900.0)

# (feature, kind, shift in the current window: 0 none, "tiny" significant but small, else drifted)
NUMERIC = [("age", 0), ("income", "drift"), ("balance", 0), ("credit_score", 0), ("tenure_months", "tiny"),
           ("utilization", 0), ("n_accounts", 0), ("amount", "drift"), ("rate", 0), ("debt_ratio", "drift"),
           ("days_late", 0), ("term", 0), ("x13", "tiny"), ("x14", 0), ("x15", 0)]
CATEGORICAL = [("region", 0), ("channel", "drift"), ("product", 0), ("segment", "drift"), ("device", "new")]
FEATURES = [(f"f_{name}", "numeric") for name, _ in NUMERIC] + [(f"f_{name}", "categorical") for name, _ in CATEGORICAL]
WITH_NULLS = {"f_balance", "f_rate", "f_product"}  # about 1% nulls in the current window


# --------------------------------------------------------------------------- data


def _columns(rng: Any, n: int, current: bool) -> dict[str, Any]:
    import numpy as np

    def shift(name: str, how: Any) -> float:
        return 0.0 if not current or not how else (0.03 if how == "tiny" else 1.0)

    out: dict[str, Any] = {}
    s = {name: shift(name, how) for name, how in NUMERIC}
    out["f_age"] = rng.integers(18, 90, n).astype(np.int64)
    out["f_income"] = rng.lognormal(10.5 + 0.5 * s["income"], 0.8, n)
    out["f_balance"] = rng.normal(5_000, 2_000, n)
    out["f_credit_score"] = np.round(rng.normal(680, 60, n)).astype(np.int64)
    out["f_tenure_months"] = rng.poisson(36 * (1 + s["tenure_months"]), n).astype(np.int64)
    out["f_utilization"] = rng.beta(2, 5, n)
    out["f_n_accounts"] = rng.poisson(4, n).astype(np.int64)
    out["f_amount"] = rng.lognormal(8 + 0.6 * s["amount"], 1.2, n)
    out["f_rate"] = np.round(rng.normal(0.07, 0.02, n), 3)
    out["f_debt_ratio"] = rng.gamma(2 + 1.5 * s["debt_ratio"], 0.15, n)
    out["f_days_late"] = rng.geometric(0.6, n).astype(np.int64) - 1
    out["f_term"] = rng.choice(np.array([12, 24, 36, 48, 60]), n).astype(np.int64)
    out["f_x13"] = rng.normal(s["x13"], 1, n)
    out["f_x14"] = rng.standard_t(3, n)
    out["f_x15"] = rng.uniform(-1, 1, n)
    drifted = current

    def pick(values: list[str], p: list[float], q: list[float] | None = None) -> Any:
        probs = np.array(q if (drifted and q) else p)
        return np.array(values, dtype=object)[rng.choice(len(values), n, p=probs / probs.sum())]

    out["f_region"] = pick([f"r{i}" for i in range(8)], [8, 7, 6, 5, 4, 3, 2, 1])
    out["f_channel"] = pick(["web", "branch", "phone", "partner"], [5, 3, 1, 1], [2, 2, 2, 4])
    out["f_product"] = pick([f"p{i:02d}" for i in range(12)], [1] * 12)
    out["f_segment"] = pick(["a", "b", "c", "d", "e"], [4, 3, 2, 1, 1], [1, 1, 2, 3, 4])
    devices = ["mobile", "desktop", "tablet", "watch"] if current else ["mobile", "desktop", "tablet"]
    out["f_device"] = pick(devices, [5, 4, 1], [5, 4, 1, 0.3] if current else None)
    return out


def write_data(work: Path, size: Size) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(columns: dict[str, Any], start: int, rng: Any, current: bool) -> pa.Table:
        n = len(next(iter(columns.values())))
        arrays: dict[str, Any] = {
            "request_id": pa.array([f"req-{start + i:08d}" for i in range(n)]),
            "at": pa.array(np.datetime64("2026-11-01T00:00:00", "us") + (start + np.arange(n)) * 1_000_000,
                           type=pa.timestamp("us", tz="UTC")),
            "prediction": pa.array(rng.integers(0, 2, n).astype(str)),
        }
        for name, values in columns.items():
            if current and name in WITH_NULLS:
                mask = rng.random(n) < 0.01
                arrays[name] = pa.array(values, mask=mask)
            else:
                arrays[name] = pa.array(values)
        return pa.table(arrays)

    reference = work / "reference.parquet"
    rng = np.random.default_rng(SEED)
    pq.write_table(table(_columns(rng, REFERENCE_ROWS, False), 0, rng, False), reference)
    folder = work / "predictions"
    folder.mkdir()
    per_part = size.current_rows // PARTS
    for part in range(PARTS):
        rng = np.random.default_rng([SEED, part + 1])
        pq.write_table(table(_columns(rng, per_part, True), part * per_part, rng, True),
                       folder / f"part-{part:04d}.parquet")
    return reference, folder


# --------------------------------------------------------------------------- the two implementations


def duckdb_connection(reference: Path, folder: Path) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE VIEW reference AS SELECT * FROM read_parquet('{reference}')")
    con.execute(f"CREATE VIEW current AS SELECT * FROM read_parquet('{folder}/*.parquet')")
    return con


def run_duckdb(con: Any) -> dict[str, dict[str, float | None]]:
    from mlops_lite.monitoring.drift import compute_drift

    report = compute_drift(con, "reference", "current", FEATURES)
    return {f.feature: {"psi": f.psi, "ks": f.ks_statistic, "ks_p": f.ks_p_value, "chi2": f.chi2,
                        "chi2_p": f.chi2_p_value, "v": f.cramers_v} for f in report.features}


def load_arrays(reference: Path, folder: Path) -> dict[str, tuple[Any, Any]]:
    """Numeric columns as float64 (null -> NaN); categoricals as int codes over the union of
    categories (null -> -1). Done before the clock starts: the reference gets arrays in memory."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = [name for name, _ in FEATURES]
    ref = pq.read_table(reference, columns=columns)
    cur = pa.concat_tables([pq.read_table(p, columns=columns) for p in sorted(folder.glob("*.parquet"))])
    out = {}
    for name, kind in FEATURES:
        r, c = ref[name], cur[name]
        if kind == "numeric":
            out[name] = (r.to_numpy().astype(np.float64), pc.fill_null(c.cast(pa.float64()), float("nan")).to_numpy())
        else:
            cats = pc.unique(pa.chunked_array(r.chunks + c.chunks)).drop_null()
            out[name] = tuple(pc.fill_null(pc.index_in(x, value_set=cats), -1).to_numpy().astype(np.int64)
                              for x in (r, c))  # type: ignore[assignment]
    return out


def run_numpy(arrays: dict[str, tuple[Any, Any]], bins: int = 10, eps: float = 1e-4) -> dict[str, dict[str, Any]]:
    """The same statistics with numpy/scipy: ks_2samp (asymptotic p), PSI on the reference's
    rank ceil(k n / bins) edges, chi2_contingency without correction, Cramer's V."""
    import numpy as np
    from scipy import stats

    def psi(r: Any, c: Any) -> float:
        r, c = np.maximum(r / r.sum(), eps), np.maximum(c / c.sum(), eps)
        return float(np.sum((c - r) * np.log(c / r)))

    out: dict[str, dict[str, Any]] = {}
    for name, kind in FEATURES:
        ref, cur = arrays[name]
        if kind == "numeric":
            ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
            ks = stats.ks_2samp(ref, cur, method="asymp")
            ordered = np.sort(ref)
            n = len(ordered)
            edges = ordered[[-(-k * n // bins) - 1 for k in range(1, bins)]]
            counts = [np.bincount(np.searchsorted(edges, x, side="left"), minlength=bins) for x in (ref, cur)]
            out[name] = {"psi": psi(*counts), "ks": float(ks.statistic), "ks_p": float(ks.pvalue),
                         "chi2": None, "chi2_p": None, "v": None}
        else:
            k = int(max(ref.max(), cur.max())) + 1
            table = np.array([np.bincount(x[x >= 0], minlength=k) for x in (ref, cur)])
            table = table[:, table.sum(axis=0) > 0]
            chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
            out[name] = {"psi": psi(table[0].astype(float), table[1].astype(float)), "ks": None, "ks_p": None,
                         "chi2": float(chi2), "chi2_p": float(p), "v": float(np.sqrt(chi2 / table.sum()))}
    return out


def agreement(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Largest absolute difference per statistic (chi-squared: relative)."""
    worst: dict[str, float] = {}
    for feature, stats_a in a.items():
        for key, x in stats_a.items():
            y = b[feature][key]
            if (x is None) != (y is None):
                worst[key] = float("inf")
                continue
            if x is None:
                continue
            diff = abs(x - y) / max(abs(y), 1.0) if key == "chi2" else abs(x - y)
            worst[key] = max(worst.get(key, 0.0), diff)
    return worst


# --------------------------------------------------------------------------- memory, in child processes


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (per address space, so a child does not
    inherit its parent's, as ``ru_maxrss`` does across fork + exec on Linux), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, work: Path) -> None:
    """``--child duckdb|numpy``: one run, then peak RSS (and the peak before the run) as JSON."""
    if mode == "duckdb":
        con = duckdb_connection(work / "reference.parquet", work / "predictions")
        import mlops_lite.monitoring.drift  # noqa: F401

        base = peak_rss_mb()
        t0 = time.perf_counter()
        run_duckdb(con)
    else:
        import numpy  # noqa: F401
        import pyarrow.parquet  # noqa: F401
        import scipy.stats  # noqa: F401

        base = peak_rss_mb()
        t0 = time.perf_counter()
        run_numpy(load_arrays(work / "reference.parquet", work / "predictions"))
    print(json.dumps({"peak_mb": peak_rss_mb(), "base_mb": base, "seconds": time.perf_counter() - t0}))


def measure_child(mode: str, work: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", mode, "--work", str(work)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} child failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- Evidently, the peer


EVIDENTLY_CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
config = json.load(sys.stdin)
import pandas as pd
import evidently
columns = [name for name, _ in config["features"]]
numeric = [name for name, kind in config["features"] if kind == "numeric"]
categorical = [name for name, kind in config["features"] if kind == "categorical"]
ref = pd.read_parquet(config["reference"], columns=columns)
cur = pd.read_parquet(config["current"], columns=columns)
try:  # evidently >= 0.7
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    t0 = time.perf_counter()
    r, c = (Dataset.from_pandas(x, data_definition=definition) for x in (ref, cur))
    snapshot = Report([DataDriftPreset()]).run(current_data=c, reference_data=r)
    result = snapshot.dict()
    api = "Report(DataDriftPreset()).run, evidently >= 0.7"
except ImportError:
    from evidently.metric_preset import DataDriftPreset
    from evidently.pipeline.column_mapping import ColumnMapping
    from evidently.report import Report
    t0 = time.perf_counter()
    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=ref, current_data=cur,
               column_mapping=ColumnMapping(numerical_features=numeric, categorical_features=categorical))
    result = report.as_dict()
    api = "legacy Report(metrics=[DataDriftPreset()])"
seconds = time.perf_counter() - t0
print(json.dumps({"version": evidently.__version__, "seconds": seconds, "api": api}))
"""


def evidently_python() -> Path:
    return EVIDENTLY_VENV / "bin" / "python"


def evidently_version() -> str | None:
    if not evidently_python().exists():
        return None
    done = subprocess.run([str(evidently_python()), "-c", "import evidently, pandas, pyarrow; print(evidently.__version__)"],
                          capture_output=True, text=True, env=_child_env())
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_evidently_venv() -> str | None:
    """``--with-evidently``: a virtualenv of its own with evidently (never the project's venv).
    Returns why it could not be made, or None."""
    try:
        if not evidently_python().exists():
            print(f"  making {EVIDENTLY_VENV.relative_to(ROOT)} (python -m venv) ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        if evidently_version() is None:
            # evidently 0.7 imports a helper that pandas 3 removed (infer_dtype_from_object)
            print("  pip install evidently 'pandas<3' pyarrow into it (a few minutes) ...", flush=True)
            done = subprocess.run([str(evidently_python()), "-m", "pip", "install", "-q", "evidently", "pandas<3",
                                   "pyarrow"],
                                  capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                return "pip install evidently failed: " + (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not make {EVIDENTLY_VENV.relative_to(ROOT)}: {exc}"
    return None if evidently_version() else "evidently does not import in its venv"


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"})
    return env


def measure_evidently(reference: Path, folder: Path, size: Size) -> dict[str, Any]:
    config = {"reference": str(reference), "current": str(folder), "features": FEATURES}
    done = subprocess.run([str(evidently_python()), "-c", EVIDENTLY_CHILD], input=json.dumps(config),
                          capture_output=True, text=True, env=_child_env(), timeout=size.evidently_timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {(done.stderr.strip().splitlines() or ['(no message)'])[-1]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- main


def timed(call: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    call()  # warm-up: first-use costs (imports, file metadata, page cache) are not the statistics
    runs, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), runs, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 current rows, 3 repeats (well under a minute)")
    parser.add_argument("--with-evidently", action="store_true",
                        help=f"make {EVIDENTLY_VENV.relative_to(ROOT)} with evidently in it, for a peer column")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--child", choices=["duckdb", "numpy"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.work)
        return 0
    size = QUICK if args.quick else DEFAULT
    started = time.perf_counter()

    import duckdb
    import numpy
    import scipy

    numeric = sum(1 for _, kind in FEATURES if kind == "numeric")
    print(f"bench/monitor.py ({size.name} size): drift of {size.current_rows:,} current rows ({PARTS} Parquet parts) "
          f"x {len(FEATURES)} features ({numeric} numeric, {len(FEATURES) - numeric} categorical) against a "
          f"{REFERENCE_ROWS:,}-row reference")
    unavailable = ensure_evidently_venv() if args.with_evidently else None
    version = evidently_version()
    if version is None and unavailable is None:
        unavailable = (f"{EVIDENTLY_VENV.relative_to(ROOT)} is absent (pass --with-evidently to make it)"
                       if not evidently_python().exists() else "evidently does not import in its venv")
    info = {"cores": os.cpu_count(), "python": pyplatform.python_version(), "platform": pyplatform.platform(),
            "duckdb": duckdb.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "evidently": version}
    print(f"  machine: {info['cores']} cores, Python {info['python']}, duckdb {info['duckdb']}, numpy "
          f"{info['numpy']}, scipy {info['scipy']}; {info['platform']}")
    print("  reference: numpy/scipy on in-memory arrays (ks_2samp, numpy PSI, chi2_contingency), one thread; "
          + (f"peer: Evidently {version} DataDriftPreset" if version else f"peer: Evidently unavailable: {unavailable}"))

    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        reference, folder = write_data(work, size)
        data_mb = sum(p.stat().st_size for p in folder.glob("*.parquet")) / (1 << 20)
        print(f"  data: written in {time.perf_counter() - t0:.1f} s; current {data_mb:.0f} MiB of Parquet", flush=True)

        con = duckdb_connection(reference, folder)
        ours_s, ours_runs, ours = timed(lambda: run_duckdb(con), size.repeats)
        con.close()
        t0 = time.perf_counter()
        arrays = load_arrays(reference, folder)
        load_s = time.perf_counter() - t0
        ref_s, ref_runs, theirs = timed(lambda: run_numpy(arrays), size.repeats)
        arrays.clear()
        worst = agreement(ours, theirs)
        memory = measure_child("duckdb", work)
        memory_ref = measure_child("numpy", work)

        peer: dict[str, Any] | None = None
        peer_error = unavailable
        if version:
            print(f"  Evidently {version}: DataDriftPreset on the same rows (bounded at "
                  f"{size.evidently_timeout_s:.0f} s) ...", flush=True)
            try:
                peer = measure_evidently(reference, folder, size)
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                peer_error = f"the Evidently run failed: {exc}"
                print(f"  {peer_error}", flush=True)

    peer_text = f"{fmt(peer['seconds'])} s" if peer else "-"
    figures = [
        Figure("drift_vs_numpy_s", f"compute_drift, {size.current_rows:,} x {len(FEATURES)}", "s", ours_s, ref_s,
               "numpy/scipy on in-memory arrays", ours_s / ref_s, 1.5, ours_s / ref_s <= 1.5, "ratio <=", peer_text),
        Figure("drift_1m_rows_s", f"compute_drift, {size.current_rows:,} x {len(FEATURES)}, absolute", "s", ours_s,
               ref_s, "numpy/scipy on in-memory arrays", ours_s / ref_s, 2.0, ours_s <= 2.0, "value <=", peer_text),
        Figure("drift_peak_rss_mb", "peak RSS of a compute_drift process", "MB", memory["peak_mb"],
               memory_ref["peak_mb"], "peak RSS of the numpy/scipy process", memory["peak_mb"] / memory_ref["peak_mb"],
               2048, memory["peak_mb"] <= 2048, "value <="),
    ]

    print()
    header = (f"{'figure':<42} {'value':>10} {'reference':>11} {'ratio':>7} {'target':>13}  {'result':<6} "
              f"{'evidently':>10}  reference is")
    print(header)
    print("-" * (len(header) + 28))
    for f in figures:
        print(f"{f.label:<42} {fmt(f.value) + ' ' + f.unit:>10} {fmt(f.reference) + ' ' + f.unit:>11} "
              f"{fmt(f.ratio):>7} {f.rule + ' ' + f'{f.target:g}':>13}  {'ok' if f.ok else 'SHORT':<6} "
              f"{f.peer:>10}  {f.reference_label}")
    print()
    print(f"DuckDB runs: {', '.join(f'{x:.3f}' for x in ours_runs)} s; numpy/scipy runs: "
          f"{', '.join(f'{x:.3f}' for x in ref_runs)} s (arrays loaded from Parquet beforehand in {load_s:.2f} s)")
    print(f"memory: DuckDB child {memory['base_mb']:.0f} MB before the run, {memory['peak_mb']:.0f} MB peak "
          f"({memory['seconds']:.2f} s); numpy child {memory_ref['base_mb']:.0f} MB after imports, "
          f"{memory_ref['peak_mb']:.0f} MB peak (load + statistics, {memory_ref['seconds']:.2f} s)")
    print("agreement, DuckDB vs numpy/scipy, largest absolute difference: "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()) + " (chi2: relative)")
    drifted = sorted(k for k, v in ours.items() if v["psi"] >= 0.2)
    print(f"drifted (PSI >= 0.2): {', '.join(drifted) or 'none'}")
    if peer:
        print(f"Evidently {peer['version']} ({peer['api']}): {peer['seconds']:.2f} s "
              f"({peer['seconds'] / ours_s:.1f} x the DuckDB time)")
    elif peer_error:
        print(f"Evidently peer not measured: {peer_error}")
    print(f"total {time.perf_counter() - started:.1f} s")
    print()
    for f in figures:
        print(bench_line(f))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "bench": "monitor", "size": size.name, "machine": info, "figures": [asdict(f) for f in figures],
            "runs": {"duckdb": ours_runs, "numpy": ref_runs}, "memory": {"duckdb": memory, "numpy": memory_ref},
            "agreement": worst, "evidently": peer}, indent=2) + "\n")
    tolerance = {"ks": 1e-9, "psi": 1e-9, "chi2": 1e-9}
    if any(worst.get(k, 0.0) > t for k, t in tolerance.items()):
        print(f"FAIL: DuckDB and numpy/scipy disagree beyond {tolerance}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
