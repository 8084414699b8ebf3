"""Benchmark of the feature store against Feast's local stores, measured in the same run.

    .venv/bin/python bench/features.py [--quick] [--with-feast | --no-peer] [--no-plaintext]
                                       [--entities N] [--entity-rows N] [--calls N] [--json PATH]

Data, generated deterministically (numpy seed 20261204), never downloaded: one feature view
``stats`` of 50,000 customers x 20 timestamps = 1,000,000 rows x 20 features (15 float64, 5
int64) in one Parquet file, event times one per day over the 20 days before the hour the run
starts (random second within the day); 1% of the rows repeat their predecessor's event time
with a later ``created`` time and other values (the tie the created timestamp breaks). TTL
2 days. 100,000 entity rows (``--quick``: 5,000 customers, 10,000 rows) with ``row_id``,
``customer_id`` and ``event_timestamp``: 2% unknown customers, some before a customer's first
row, some past its TTL, 1% exactly at an event time and 1% exactly at event time + TTL (both
present, on both sides). ``created`` equals the event time except on the tied rows: Feast 0.67
also blanks a row created after the entity row's time (``_apply_created_timestamp_cutoff``),
a rule mlops-lite does not have (created only breaks ties), so the data keeps the two apart.

Sides, each in a process of its own, run one after the other:

- mlops-lite: a home made by ``mlops-lite init`` (encrypted at rest, the default), the Parquet
  committed to repository ``bench`` on a branch and merged into ``main`` (protected), the
  definitions applied; ``platform.features.historical`` (an ASOF JOIN in DuckDB). An encrypted
  home's objects are decrypted into Arrow before DuckDB reads them (``offline.data_register``);
  a plaintext home (``init --no-encryption``) lets DuckDB read the Parquet file in place: both
  are measured (``--no-plaintext`` skips the second).
- Feast (``bench/.venvs/feast``, made by ``--with-feast``: ``python -m venv`` + ``pip install
  'feast==0.67.*'``, never the project's venv; an existing venv is used without the flag):
  the same Parquet as a ``FileSource`` (with ``created_timestamp_column``), the same TTL,
  offline store ``file`` (Dask, Feast's local default), online store SQLite;
  ``get_historical_features(...).to_df()``, ``materialize``, ``get_online_features`` and
  ``feast serve`` on 127.0.0.1.

Figures (``bench: FIGURE value=V reference=R ratio=X target=T ok|short``; ``n/a`` when the
reference is Feast and Feast was not measured):

- ``features_historical_s``: seconds of one point-in-time retrieval (first call in a fresh
  process, entity rows already in memory), vs Feast's; ratio = Feast / ours, target >= 10.
- ``features_historical_peak_rss_mb``: peak resident memory (VmHWM) of that process, vs
  Feast's process; ratio = ours / Feast, target <= 0.25. ``_plain`` variants: plaintext home.
- ``features_online_{inproc,inproc_logged,http}_{1,100}_p99_ms``: p99 of a lookup of 1 and 100
  entities: ``platform.features.online(..., log=False)``, with the served-vector log, and
  ``POST /v1/features/{service}`` on a server on 127.0.0.1 (one keep-alive client), vs
  Feast's ``get_online_features`` in-process and ``feast serve`` (``POST
  /get-online-features``); ratio = ours / Feast, target <= 1. ``features_online_inproc_1_p99_abs_ms``:
  the absolute target, <= 1 ms.
- ``features_materialize_incremental_s``: ``materialize()`` after a data commit that gives
  1% of the customers a new row, vs ``materialize(mode="full")`` of the same view (ratio
  <= 0.10); Feast's ``materialize`` of the same 1,000,000 rows into SQLite is its peer column.

Answers are checked on a sample of 1,000 entity rows value by value against a numpy
point-in-time join made from the generated arrays (both sides); a mismatch of mlops-lite's
fails the run. Everything lives in a temporary folder removed at the end. Never run by the
tests (tests/unit/test_bench_features.py runs the mlops-lite half at a tiny size, so it
cannot rot).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform as pyplatform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from figures import Figure, fmt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
FEAST_VENV = ROOT / "bench" / ".venvs" / "feast"
FEAST_SPEC = "feast==0.67.*"
SEED = 20261204
DAYS = 20
N_FLOAT, N_INT = 15, 5
FEATURES = [f"f{i:02d}" for i in range(N_FLOAT + N_INT)]
TTL_S = 2 * 86400
SAMPLE = 1000
ROUNDS = 3  # materializations of each kind; the figure is the median
SERVICE, VIEW, REPOSITORY = "credit", "stats", "bench"


@dataclass(frozen=True)
class Size:
    name: str
    entities: int
    entity_rows: int
    calls: int


QUICK = Size("quick", entities=5_000, entity_rows=10_000, calls=300)
DEFAULT = Size("default", entities=50_000, entity_rows=100_000, calls=2_000)


# --------------------------------------------------------------------------- data


def write_data(work: Path, size: Size, hour: datetime) -> dict[str, Any]:
    """features.parquet, entities.parquet, delta-<r>.parquet (r = 1..ROUNDS: 1% of the customers,
    one new row each at ``hour`` + r - 1 ms) and the sample's expected answers (numpy
    point-in-time join; ``tie``: the answer is the later-created of two rows of one event time)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    e, n = size.entities, size.entities * DAYS
    hour_us = int(hour.timestamp()) * 1_000_000
    base_us = hour_us - DAYS * 86400 * 1_000_000
    ids = np.repeat(np.arange(1, e + 1, dtype=np.int64) * 7 + 1000, DAYS)  # sparse ids, sorted by customer
    day = np.tile(np.arange(DAYS, dtype=np.int64), e)
    event = base_us + day * 86400 * 1_000_000 + rng.integers(0, 86400, n) * 1_000_000
    created = event.copy()
    tied = np.flatnonzero((rng.random(n) < 0.01) & (day > 0))
    event[tied] = event[tied - 1]  # the same event time as the customer's previous row...
    created[tied] = event[tied] + 1_000_000  # ...created a second later: it wins the tie
    values = {f: rng.normal(0, 1, n) for f in FEATURES[:N_FLOAT]}
    values.update({f: rng.integers(0, 1000, n).astype(np.int64) for f in FEATURES[N_FLOAT:]})
    ts = pa.timestamp("us", tz="UTC")
    pq.write_table(pa.table({"customer_id": ids, "event_timestamp": pa.array(event, ts),
                             "created": pa.array(created, ts), **values}), work / "features.parquet")

    # entity rows: times over [first day - 2 d, last day + 3 d]; special cases planted
    m = size.entity_rows
    customers = rng.integers(1, int(e * 1.02) + 1, m) * 7 + 1000  # ~2% unknown
    t = base_us - 2 * 86400 * 1_000_000 + rng.integers(0, (DAYS + 5) * 86400, m) * 1_000_000 \
        + rng.integers(0, 1_000_000, m)
    untied = np.setdiff1d(np.arange(n), np.concatenate([tied, tied - 1]))
    exact = rng.choice(m, m // 50, replace=False)
    rows = rng.choice(untied, len(exact))
    customers[exact], t[exact] = ids[rows], event[rows]  # half at an event time, half at event + TTL
    t[exact[len(exact) // 2:]] += TTL_S * 1_000_000
    later_row = np.minimum(rows + 1, n - 1)
    # event + TTL may reach the customer's next row: keep only the boundary rows where it does not
    keep = (ids[later_row] != ids[rows]) | (event[later_row] > t[exact]) | (np.arange(len(exact)) < len(exact) // 2)
    t[exact[~keep]] -= 1
    pq.write_table(pa.table({"row_id": np.arange(m, dtype=np.int64), "customer_id": customers,
                             "event_timestamp": pa.array(t, ts)}), work / "entities.parquet")

    # the expected answers of a sample of entity rows
    sample = np.sort(rng.choice(m, min(SAMPLE, m), replace=False))
    order = np.lexsort((created, event, ids))
    s_ids, s_event = ids[order], event[order]
    expected: dict[str, list[Any]] = {"row_id": sample.tolist(), "tie": [], **{f: [] for f in FEATURES}}
    present = 0
    winners = set(tied.tolist())
    for i in sample:
        lo, hi = np.searchsorted(s_ids, customers[i], "left"), np.searchsorted(s_ids, customers[i], "right")
        j = lo + np.searchsorted(s_event[lo:hi], t[i], "right") - 1
        hit = j >= lo and t[i] - s_event[j] <= TTL_S * 1_000_000
        present += bool(hit)
        expected["tie"].append(bool(hit) and int(order[j]) in winners)
        for f in FEATURES:
            expected[f].append(values[f][order[j]].item() if hit else None)

    # deltas: each round, 1% of the customers get a new row at the hour the run started
    for r in range(1, ROUNDS + 1):
        changed = np.sort(rng.choice(np.arange(1, e + 1), max(1, e // 100), replace=False)) * 7 + 1000
        k = len(changed)
        delta = {f: rng.normal(0, 1, k) for f in FEATURES[:N_FLOAT]}
        delta.update({f: rng.integers(0, 1000, k).astype(np.int64) for f in FEATURES[N_FLOAT:]})
        at = pa.array(np.full(k, hour_us + (r - 1) * 1000), ts)
        pq.write_table(pa.table({"customer_id": changed, "event_timestamp": at, "created": at, **delta}),
                       work / f"delta-{r}.parquet")
    (work / "expected.json").write_text(json.dumps(expected))
    return {"feature_rows": n, "entity_rows": m, "tied_rows": len(tied), "sample": len(sample),
            "sample_present": present, "sample_ties": sum(expected["tie"]), "changed_keys": k,
            "lookup_ids": (np.arange(1, e + 1) * 7 + 1000)[rng.permutation(e)[:5000]].tolist(),
            "base": datetime.fromtimestamp(base_us / 1e6, UTC).isoformat(), "hour": hour.isoformat()}


def definitions_toml() -> str:
    features = ", ".join(f'{f} = "{"float64" if i < N_FLOAT else "int64"}"' for i, f in enumerate(FEATURES))
    return f"""
[[entity]]
name = "customer"
join_keys = {{customer_id = "int64"}}

[[feature_view]]
name = "{VIEW}"
entities = ["customer"]
source = {{repository = "{REPOSITORY}", path = "features/*.parquet"}}
timestamp_field = "event_timestamp"
created_timestamp_field = "created"
ttl = "{TTL_S}s"
features = {{{features}}}

[[feature_service]]
name = "{SERVICE}"
features = ["{VIEW}"]
"""


def make_home(work: Path, name: str, encryption: bool) -> dict[str, Any]:
    """A home (``init``, encrypted unless told), the features committed on a branch and
    merged into main, the definitions applied. Returns the home, its token, its settings."""
    from mlops_lite import connect
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home

    home = work / name
    settings = load_settings(home=home)
    t0 = time.perf_counter()
    token = init_home(settings, encryption=None if encryption else False).token
    with connect(home=home) as p:
        p.data.repo(REPOSITORY).create(classification="internal")
        branch = p.data.repo(REPOSITORY).branch("load")
        branch.create()
        branch.upload("features/part-0000.parquet", work / "features.parquet")
        branch.commit("features: 20 days of customer statistics")
        branch.merge_into("main")
        (work / "features.toml").write_text(definitions_toml())
        p.features.apply(work / "features.toml")
        # what offline.data_register meets: file paths (read in place) or decrypting readers
        files = p.data.repo(REPOSITORY).ref("main").table_files("features/*.parquet")[1]
        encrypted = not isinstance(files[0], str)
    return {"home": str(home), "token": token, "encrypted": encrypted, "setup_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------- children


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, else ru_maxrss (as bench/monitor.py)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sample_out(table: Any, work: Path, name: str) -> None:
    expected = json.loads((work / "expected.json").read_text())
    wanted = set(expected["row_id"])
    rows = {r["row_id"]: r for r in table.select(["row_id", *FEATURES]).to_pylist() if r["row_id"] in wanted}
    (work / f"answers-{name}.json").write_text(json.dumps({str(k): [v[f] for f in FEATURES] for k, v in rows.items()}))


def child_historical(work: Path, home: Path, name: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from mlops_lite import connect

    entities = pq.read_table(work / "entities.parquet")
    with connect(home=home) as p:
        p.features.plan(SERVICE)
        base = peak_rss_mb()
        t0 = time.perf_counter()
        table, _ = p.features.historical(SERVICE, entities)
        seconds = time.perf_counter() - t0
        peak = peak_rss_mb()
        t0 = time.perf_counter()
        p.features.historical(SERVICE, entities)
        again = time.perf_counter() - t0
        _sample_out(table, work, name)
    return {"seconds": seconds, "again_s": again, "peak_mb": peak, "base_mb": base, "rows": table.num_rows}


def child_online(work: Path, home: Path, token: str, calls: int, lookup_ids: list[int]) -> dict[str, Any]:
    from mlops_lite import connect

    out: dict[str, Any] = {}
    with connect(home=home) as p:
        out["full_runs"], out["incremental_runs"], out["incremental_written"], out["incremental_modes"] = [], [], [], []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            full = p.features.materialize(mode="full")
            out["full_runs"].append(time.perf_counter() - t0)
            out["full_keys"] = full[0].written
        for r in range(1, ROUNDS + 1):
            branch = p.data.repo(REPOSITORY).branch(f"delta-{r}")
            branch.create()
            branch.upload(f"features/part-{r:04d}.parquet", work / f"delta-{r}.parquet")
            branch.commit(f"features: 1% of the customers changed ({r})")
            branch.merge_into("main")
            t0 = time.perf_counter()
            incremental = p.features.materialize()
            out["incremental_runs"].append(time.perf_counter() - t0)
            out["incremental_written"].append(incremental[0].written)
            out["incremental_modes"].append(incremental[0].mode)
        out["full_s"] = statistics.median(out["full_runs"])
        out["incremental_s"] = statistics.median(out["incremental_runs"])

        sets = {1: [[{"customer_id": k}] for k in lookup_ids],
                100: [[{"customer_id": k} for k in lookup_ids[i:i + 100]] for i in range(0, len(lookup_ids) - 99, 7)]}
        check = p.features.online(SERVICE, sets[1][0], log=False)
        out["online_status"] = check.statuses[0][FEATURES[0]]
        for n, batches in sets.items():
            out[f"inproc_{n}"] = latencies(lambda b: p.features.online(SERVICE, b, log=False), batches, calls)
            out[f"inproc_logged_{n}"] = latencies(lambda b: p.features.online(SERVICE, b), batches, calls)
        p.features.served.flush()

    # Over HTTP the server is a process of its own, as the daemon is to its clients (and as
    # `feast serve` is to the reference): a server in this process would share its GIL.
    server = subprocess.Popen([sys.executable, "-c", SERVER_CHILD, str(home)], stdout=subprocess.PIPE, text=True,
                              stdin=subprocess.PIPE, start_new_session=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            out["http_absent"] = f"the server process did not start ({url!r})"
            return out
        host, port = url.split("//")[1].rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        route = f"/v1/features/{SERVICE}"
        connection.request("POST", route, json.dumps({"entities": sets[1][0]}), headers)
        answer = connection.getresponse()
        body = answer.read()
        if answer.status >= 300:
            out["http_absent"] = f"POST {route} answered {answer.status}: {body[:200]!r}"
        else:
            for n, batches in sets.items():
                bodies = [json.dumps({"entities": b}).encode() for b in batches]
                out[f"http_{n}"] = latencies(lambda b: _post(connection, route, b, headers), bodies, calls)
        connection.close()
    finally:
        if server.stdin is not None:
            server.stdin.close()  # the child stops its server and closes the home
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return out


# The HTTP side's server: the home's platform served on a free loopback port until stdin closes.
SERVER_CHILD = """
import sys
from mlops_lite import connect
from server import create_app
from server.runner import serve_in_thread
with connect(home=sys.argv[1]) as p:
    server = serve_in_thread(create_app(p))
    print(server.url, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()
"""


def _post(connection: http.client.HTTPConnection, route: str, body: bytes, headers: dict[str, str]) -> None:
    connection.request("POST", route, body, headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status >= 300:
        raise RuntimeError(f"POST {route} answered {answer.status}")


def latencies(call: Any, batches: list[Any], calls: int) -> dict[str, float]:
    """p50/p99/mean in ms of ``calls`` calls (bounded at 30 s), after a warm-up."""
    for b in batches[:min(50, calls)]:
        call(b)
    samples = []
    deadline = time.monotonic() + 30
    for i in range(calls):
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        call(b)
        samples.append((time.perf_counter() - t0) * 1000)
        if time.monotonic() > deadline:
            break
    samples.sort()
    return {"p50": samples[len(samples) // 2], "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "mean": statistics.fmean(samples), "n": len(samples)}


def run_child(args: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed: {done.stderr.strip()[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- Feast, the peer


FEAST_CHILD = r"""
import json, socket, subprocess, sys, time, warnings, os
from datetime import datetime, timedelta, timezone
from pathlib import Path
warnings.filterwarnings("ignore")
config = json.load(sys.stdin)
work = Path(config["work"]); repo = work / "feast"

def peak_rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

import pandas as pd
import feast
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64
repo.mkdir(exist_ok=True)
(repo / "feature_store.yaml").write_text(
    "project: bench\n"
    f"registry: {repo / 'registry.db'}\n"
    "provider: local\n"
    "online_store:\n  type: sqlite\n" f"  path: {repo / 'online.db'}\n"
    "offline_store:\n  type: file\n"
    "entity_key_serialization_version: 3\n")
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
source = FileSource(name="stats_source", path=str(work / "features.parquet"), timestamp_field="event_timestamp",
                    created_timestamp_column="created")
names = config["features"]
schema = [Field(name=f, dtype=Float64 if i < config["n_float"] else Int64) for i, f in enumerate(names)]
view = FeatureView(name="stats", entities=[customer], ttl=timedelta(seconds=config["ttl_s"]), schema=schema,
                   source=source, online=True)
service = FeatureService(name="credit", features=[view])
store = FeatureStore(repo_path=str(repo))
store.apply([customer, view, service])
refs = [f"stats:{f}" for f in names]
out = {"version": feast.__version__}

def latencies(call, batches, calls):
    for b in batches[:min(50, calls)]:
        call(b)
    samples = []
    deadline = time.monotonic() + 30
    for i in range(calls):
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        call(b)
        samples.append((time.perf_counter() - t0) * 1000)
        if time.monotonic() > deadline:
            break
    samples.sort()
    return {"p50": samples[len(samples) // 2], "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "mean": sum(samples) / len(samples), "n": len(samples)}

if config["mode"] == "historical":
    entity_df = pd.read_parquet(work / "entities.parquet")
    out["base_mb"] = peak_rss_mb()
    t0 = time.perf_counter()
    df = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    out["seconds"] = time.perf_counter() - t0
    out["peak_mb"] = peak_rss_mb()
    out["rows"] = len(df)
    expected = json.loads((work / "expected.json").read_text())
    df = df[df["row_id"].isin(set(expected["row_id"]))]
    answers = {}
    for row in df[["row_id", *names]].itertuples(index=False):
        answers[str(int(row[0]))] = [None if pd.isna(v) else (int(v) if i >= config["n_float"] else float(v))
                                     for i, v in enumerate(row[1:])]
    (work / "answers-feast.json").write_text(json.dumps(answers))
else:
    end = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    store.materialize(start_date=datetime.fromisoformat(config["base"]) - timedelta(days=1), end_date=end)
    out["materialize_s"] = time.perf_counter() - t0
    ids = config["lookup_ids"]
    sets = {1: [[k] for k in ids], 100: [ids[i:i + 100] for i in range(0, len(ids) - 99, 7)]}
    check = store.get_online_features(features=refs, entity_rows=[{"customer_id": ids[0]}]).to_dict()
    out["online_value"] = check[names[0]][0]
    for n, batches in sets.items():
        out[f"inproc_{n}"] = latencies(lambda b: store.get_online_features(
            features=refs, entity_rows=[{"customer_id": k} for k in b]).to_dict(), batches, config["calls"])
    sock = socket.socket(); sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]; sock.close()
    feast_bin = str(Path(sys.executable).parent / "feast")
    server = subprocess.Popen([feast_bin, "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port),
                               "--no-access-log", "-w", "1", "--max-requests", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        import http.client
        deadline = time.monotonic() + 90
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", "/health"); r = c.getresponse(); r.read()
                if r.status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("feast serve did not start: " + server.stderr.read().decode()[-1000:]
                                   if server.poll() is not None else "feast serve did not answer /health in 90 s")
            time.sleep(0.2)
        headers = {"Content-Type": "application/json"}
        def post(body):
            c.request("POST", "/get-online-features", body, headers)
            r = c.getresponse(); r.read()
            if r.status != 200:
                raise RuntimeError(f"feast serve answered {r.status}")
        for n, batches in sets.items():
            bodies = [json.dumps({"features": refs, "entities": {"customer_id": b}}).encode() for b in batches]
            out[f"http_{n}"] = latencies(post, bodies, config["calls"])
        c.close()
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9); server.wait()
print(json.dumps(out))
"""


def feast_python() -> Path:
    return FEAST_VENV / "bin" / "python"


def _feast_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"FEAST_USAGE": "False", "DO_NOT_TRACK": "1"})
    return env


def feast_version() -> str | None:
    if not feast_python().exists():
        return None
    done = subprocess.run([str(feast_python()), "-c", "import feast; print(feast.__version__)"],
                          capture_output=True, text=True, env=_feast_env())
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_feast_venv() -> str | None:
    """``--with-feast``: a virtualenv of its own with Feast. Returns why it could not, or None."""
    try:
        if not feast_python().exists():
            print(f"  making {FEAST_VENV.relative_to(ROOT)} (python -m venv) ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)
        if feast_version() is None:
            print(f"  pip install '{FEAST_SPEC}' into it (a minute or two) ...", flush=True)
            done = subprocess.run([str(feast_python()), "-m", "pip", "install", "-q", FEAST_SPEC],
                                  capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                return "pip install feast failed: " + (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not make {FEAST_VENV.relative_to(ROOT)}: {exc}"
    return None if feast_version() else "feast does not import in its venv"


def run_feast(mode: str, work: Path, info: dict[str, Any], size: Size, timeout: float) -> dict[str, Any]:
    config = {"mode": mode, "work": str(work), "features": FEATURES, "n_float": N_FLOAT, "ttl_s": TTL_S,
              "base": info["base"], "lookup_ids": info["lookup_ids"], "calls": size.calls}
    done = subprocess.run([str(feast_python()), "-c", FEAST_CHILD], input=json.dumps(config), capture_output=True,
                          text=True, env=_feast_env(), timeout=timeout, cwd=work)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-1500:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- answers


def mismatches(work: Path, name: str) -> tuple[int, int, int, int, list[str]]:
    """(rows compared, rows that differ, of them rows whose answer is a created-time tie's
    winner, rows left out whose expected values are all null, a few examples) of
    ``answers-<name>.json`` against the expected answers."""
    expected = json.loads((work / "expected.json").read_text())
    got = json.loads((work / f"answers-{name}.json").read_text())
    bad, ties, dropped, examples = 0, 0, 0, []
    for i, row_id in enumerate(expected["row_id"]):
        want = [expected[f][i] for f in FEATURES]
        have = got.get(str(row_id))
        if have is None and all(v is None for v in want):
            dropped += 1
        elif have is None or any((a is None) != (b is None) or (a is not None and a != b)
                                 for a, b in zip(want, have, strict=True)):
            bad += 1
            ties += expected["tie"][i]
            if len(examples) < 3:
                examples.append(f"row {row_id}: expected {want[:2]}..., got {None if have is None else have[:2]}...")
    return len(expected["row_id"]), bad, ties, dropped, examples


# --------------------------------------------------------------------------- main


def _figure(name: str, label: str, unit: str, value: float, reference: float | None, reference_label: str,
            rule: str, target: float, *, speedup: bool = False, absolute: bool = False, peer: str = "-",
            note: str = "") -> Figure:
    if reference is None or reference <= 0:
        return Figure(name, label, unit, value, float("nan"), reference_label, float("nan"), target, False, rule,
                      peer, note or "n/a")
    ratio = reference / value if speedup else value / reference
    judged = value if absolute else ratio
    ok = judged >= target if ">=" in rule else judged <= target
    return Figure(name, label, unit, value, reference, reference_label, ratio, target, ok, rule, peer, note)


def _result(f: Figure) -> str:
    return "n/a" if f.note == "n/a" else ("ok" if f.ok else "short")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 customers, 10,000 entity rows, 300 calls")
    parser.add_argument("--with-feast", action="store_true",
                        help=f"make {FEAST_VENV.relative_to(ROOT)} with {FEAST_SPEC} in it, for the reference")
    parser.add_argument("--no-peer", action="store_true", help="measure mlops-lite only (no Feast)")
    parser.add_argument("--no-plaintext", action="store_true", help="skip the plaintext home's retrieval")
    parser.add_argument("--entities", type=int, help="customers (x 20 feature rows each)")
    parser.add_argument("--entity-rows", type=int, help="entity rows of the retrieval")
    parser.add_argument("--calls", type=int, help="online calls per figure")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--child", choices=["historical", "online"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = QUICK if args.quick else DEFAULT
    size = Size(size.name if not (args.entities or args.entity_rows or args.calls) else "custom",
                args.entities or size.entities, args.entity_rows or size.entity_rows, args.calls or size.calls)
    if min(size.entities, size.entity_rows, size.calls) < 100:
        parser.error("--entities, --entity-rows and --calls must be at least 100")
    if args.child == "historical":
        print(json.dumps(child_historical(args.work, args.home, args.name)))
        return 0
    if args.child == "online":
        info = json.loads((args.work / "info.json").read_text())
        home = json.loads((args.work / "homes.json").read_text())["default"]
        print(json.dumps(child_online(args.work, Path(home["home"]), home["token"], size.calls, info["lookup_ids"])))
        return 0
    started = time.perf_counter()

    import duckdb
    import pyarrow

    print(f"bench/features.py ({size.name} size): {size.entities:,} customers x {DAYS} timestamps = "
          f"{size.entities * DAYS:,} feature rows x {len(FEATURES)} features, {size.entity_rows:,} entity rows")
    unavailable: str | None = "--no-peer" if args.no_peer else None
    version = None
    if not args.no_peer:
        unavailable = ensure_feast_venv() if args.with_feast else None
        version = feast_version()
        if version is None and unavailable is None:
            unavailable = (f"{FEAST_VENV.relative_to(ROOT)} is absent (pass --with-feast to make it)"
                           if not feast_python().exists() else "feast does not import in its venv")
    info_m = {"cores": os.cpu_count(), "python": pyplatform.python_version(), "platform": pyplatform.platform(),
              "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__, "feast": version}
    print(f"  machine: {info_m['cores']} cores, Python {info_m['python']}, duckdb {info_m['duckdb']}, pyarrow "
          f"{info_m['pyarrow']}; {info_m['platform']}")
    print("  reference: " + (f"Feast {version} (offline store 'file' = Dask, online store SQLite, feast serve)"
                              if version else f"Feast unavailable: {unavailable}"))
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-features-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        info = write_data(work, size, hour)
        (work / "info.json").write_text(json.dumps(info))
        mb = (work / "features.parquet").stat().st_size / (1 << 20)
        print(f"  data: {mb:.0f} MiB of Parquet, {info['tied_rows']:,} tied rows, written in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        homes = {"default": make_home(work, "home", True)}
        if not args.no_plaintext:
            homes["plain"] = make_home(work, "home-plain", False)
        (work / "homes.json").write_text(json.dumps(homes))
        for name, h in homes.items():
            print(f"  home {name}: objects {'encrypted (decrypted into Arrow to read)' if h['encrypted'] else 'plaintext (read in place by DuckDB)'}; "
                  f"init + commit + merge + apply {h['setup_s']:.1f} s", flush=True)
        timeout = 300 if size.name == "quick" else 1800
        for name, h in homes.items():
            results[f"historical_{name}"] = run_child(["--child", "historical", "--work", str(work), "--home",
                                                       h["home"], "--name", name], timeout)
            print(f"  mlops-lite historical ({name}): {results[f'historical_{name}']['seconds']:.2f} s", flush=True)
        if version:
            try:
                print("  Feast get_historical_features ...", flush=True)
                results["feast_historical"] = run_feast("historical", work, info, size, timeout)
                print(f"  Feast historical: {results['feast_historical']['seconds']:.2f} s", flush=True)
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                errors["feast_historical"] = str(exc)
                print(f"  Feast historical failed: {exc}", flush=True)
        results["online"] = run_child(["--child", "online", "--work", str(work)]
                                      + (["--quick"] if args.quick else [])
                                      + [a for k, v in (("--entities", args.entities), ("--entity-rows", args.entity_rows),
                                                        ("--calls", args.calls)) if v for a in (k, str(v))], timeout)
        if version:
            try:
                print("  Feast materialize + online ...", flush=True)
                results["feast_online"] = run_feast("online", work, info, size, timeout)
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                errors["feast_online"] = str(exc)
                print(f"  Feast online failed: {exc}", flush=True)
        answers = {name: mismatches(work, name) for name in homes}
        if "feast_historical" in results:
            answers["feast"] = mismatches(work, "feast")

    figures: list[Figure] = []
    fh = results.get("feast_historical")
    fo = results.get("feast_online")
    for name, suffix in (("default", ""), ("plain", "_plain")):
        r = results.get(f"historical_{name}")
        if r is None:
            continue
        what = "encrypted home" if homes[name]["encrypted"] else "plaintext home"
        figures.append(_figure(f"features_historical{suffix}_s", f"historical, {what}", "s", r["seconds"],
                               fh and fh["seconds"], "Feast get_historical_features().to_df()", "speed-up >=", 10,
                               speedup=True))
        figures.append(_figure(f"features_historical{suffix}_peak_rss_mb", f"historical peak RSS, {what}", "MB",
                               r["peak_mb"], fh and fh["peak_mb"], "Feast's process peak RSS", "ratio <=", 0.25))
    on = results["online"]
    for kind, label in (("inproc", "in-process, log=False"), ("inproc_logged", "in-process, logged"),
                        ("http", "HTTP POST /v1/features")):
        for n in (1, 100):
            ours = on.get(f"{kind}_{n}")
            if ours is None:
                continue
            peer_kind = "http" if kind == "http" else "inproc"
            ref = fo.get(f"{peer_kind}_{n}") if fo else None
            ref_label = ("feast serve /get-online-features" if kind == "http" else "Feast get_online_features")
            figures.append(_figure(f"features_online_{kind}_{n}_p99_ms", f"online p99, {n} entit{'y' if n == 1 else 'ies'}, {label}",
                                   "ms", ours["p99"], ref and ref["p99"], ref_label, "ratio <=", 1,
                                   peer=f"p50 {fmt(ours['p50'])}/{fmt(ref['p50']) if ref else '-'}"))
    ours1 = on["inproc_1"]
    figures.append(_figure("features_online_inproc_1_p99_abs_ms", "online p99, 1 entity, in-process, absolute", "ms",
                           ours1["p99"], fo["inproc_1"]["p99"] if fo else ours1["p50"],
                           "Feast get_online_features" if fo else "our own p50", "value <=", 1, absolute=True))
    figures.append(_figure("features_materialize_incremental_s", "materialize, 1% of keys changed", "s",
                           on["incremental_s"], on["full_s"], "materialize(mode='full') of the same view",
                           "ratio <=", 0.10,
                           peer=f"Feast full {fmt(fo['materialize_s'])} s" if fo else "-"))

    print()
    header = (f"{'figure':<50} {'value':>11} {'reference':>11} {'ratio':>7} {'target':>16}  {'result':<6} "
              f"{'peer / p50 ours/ref':>22}  reference is")
    print(header)
    print("-" * (len(header) + 24))
    for f in figures:
        print(f"{f.label:<50} {fmt(f.value) + ' ' + f.unit:>11} {fmt(f.reference) + ' ' + f.unit:>11} "
              f"{fmt(f.ratio):>7} {f.rule + ' ' + f'{f.target:g}':>16}  {_result(f).upper() if _result(f) == 'short' else _result(f):<6} "
              f"{f.peer:>22}  {f.reference_label}")
    print()
    for name, h in results.items():
        if name.startswith("historical_"):
            print(f"mlops-lite historical ({name[11:]}): first {h['seconds']:.2f} s, again {h['again_s']:.2f} s; "
                  f"{h['base_mb']:.0f} MB before, {h['peak_mb']:.0f} MB peak; {h['rows']:,} rows")
    if fh:
        print(f"Feast {fh['version']} historical: {fh['seconds']:.2f} s; {fh['base_mb']:.0f} MB before, "
              f"{fh['peak_mb']:.0f} MB peak; {fh['rows']:,} rows")
    print(f"materialize ({ROUNDS} rounds each, median): full {on['full_s']:.2f} s "
          f"({', '.join(f'{x:.2f}' for x in on['full_runs'])}; {on['full_keys']:,} keys), incremental "
          f"{on['incremental_s']:.2f} s ({', '.join(f'{x:.2f}' for x in on['incremental_runs'])}; "
          f"{'/'.join(str(n) for n in on['incremental_written'])} keys written, "
          f"mode {'/'.join(on['incremental_modes'])})"
          + (f"; Feast materialize {fo['materialize_s']:.2f} s" if fo else ""))
    if "http_absent" in on:
        print(f"HTTP not measured: {on['http_absent']}")
    for name, (compared, bad, ties, dropped, examples) in answers.items():
        print(f"answers, {name}: {compared - bad - dropped}/{compared} sample rows equal the numpy point-in-time join "
              f"({info['sample_present']} have values, {info['sample_ties']} of them a created-time tie's winner)"
              + (f"; {dropped} rows with no value left out of the result" if dropped else "")
              + (f"; {bad} differ ({ties} of them ties), e.g. {'; '.join(examples)}" if bad else ""))
    for name, error in errors.items():
        print(f"{name} not measured: {error[-600:]}")
    if not version:
        print(f"Feast not measured: {unavailable}")
    print(f"total {time.perf_counter() - started:.1f} s")
    print()
    for f in figures:
        print(f"bench: {f.figure} value={fmt(f.value)} reference={fmt(f.reference)} ratio={fmt(f.ratio)} "
              f"target={f.target:g} {_result(f)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "bench": "features", "size": asdict(size), "machine": info_m, "figures": [asdict(f) for f in figures],
            "results": results, "errors": errors, "homes": {k: {"encrypted": v["encrypted"], "setup_s": v["setup_s"]}
                                                            for k, v in homes.items()},
            "answers": {k: {"compared": v[0], "differ": v[1], "differ_ties": v[2], "left_out": v[3]}
                        for k, v in answers.items()}}, indent=2, default=str) + "\n")
    if any(bad or dropped for name, (_, bad, _, dropped, _) in answers.items() if name != "feast"):
        print("FAIL: mlops-lite's answers differ from the numpy point-in-time join", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
