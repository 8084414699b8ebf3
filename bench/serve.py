"""The serving benchmark: mlops-lite's HTTP prediction routes against references measured in the same run.

    .venv/bin/python bench/serve.py [--quick] [--with-mlflow] [--no-wrk] [--connections 8,32,64]
                                    [--batch-rows N] [--batch-wait-ms MS] [--json PATH]

Model: a RandomForest (100 trees, depth 10) on 30 numeric features of a synthetic
table (numpy, fixed seed), ingested, trained, registered and deployed through the
platform as ``synth`` (skl2onnx, parity-checked), as a user would.

Columns, each measured in this run:

1. ``raw onnxruntime``: ``InferenceSession.run`` of the deployed ONNX bytes in this process,
   batch 1 (calls/s) and 1,000 rows (rows/s), one thread, a prebuilt feed: the limit.
2. ``litestar+ort``: a minimal Litestar route written here: ``POST /predict`` with
   ``{"instances": [{...}]}`` (a msgspec-typed body), numpy tensors, ``session.run`` on the event
   loop, labels and probabilities back. No auth, no logging, no metrics: the framework reference.
3. ``native``: mlops-lite ``POST /v1/deployments/synth/predict``, everything on: bearer token,
   validation, the prediction log, Prometheus metrics (micro-batching as the platform's settings say,
   or ``--batch-rows``/``--batch-wait-ms``).
4. ``oip``: mlops-lite ``POST /v2/models/synth/infer`` (Open Inference Protocol JSON tensors),
   bearer token and validation.

   1,000-row requests only, always from the asyncio generator (their bodies are bytes):
   (3b) ``arrow``: native predict with an Arrow IPC stream body (one float64 column per feature),
   JSON answer; (4b) ``oip-binary``: ``/v2`` infer by the binary tensor data extension (FP32
   inputs, binary outputs), as tritonclient sends by default.
5. ``mlflow`` (``--with-mlflow``): ``mlflow models serve`` (``--env-manager local``, its default of 1
   worker) of the same fitted scikit-learn pipeline, ``predict_proba`` as its pyfunc, from its own
   virtualenv ``bench/.venvs/mlflow`` (made by ``bench/tracking.py``'s code; never the project's venv).

Load comes from other processes: the asyncio load generator of ``bench/serving.py`` (keep-alive
HTTP/1.1, a child process that reports its own CPU use) and, when ``/usr/bin/wrk`` (or ``wrk`` on
PATH) exists, ``wrk -t1`` with a Lua POST script. Each point runs ~10 s (``--quick``: 3 s) after a
short warm-up, at 8, 32 and 64 connections. The figures use wrk when it is there (it costs the
2-core machines far less CPU than the Python generator), otherwise the asyncio generator.

Figures (``bench: FIGURE value=V reference=R ratio=X target=T ok|short``):

- ``serve_native_vs_litestar_c32_req_per_s``: native req/s / litestar+ort req/s at 32 connections, >= 1.0.
- ``serve_oip_vs_litestar_c32_req_per_s``: the same for the OIP route, >= 0.7.
- ``serve_native_vs_mlflow_c32_req_per_s`` (with MLflow): native / MLflow req/s at 32 connections, >= 10.
- ``serve_native_p99_c32_ms``: native p99 latency at 32 connections; value <= 25 ms (reference: litestar+ort).
- ``serve_native_p99_vs_litestar_c32``: native p99 / litestar+ort p99 at 32 connections, <= 1.5.
- ``serve_errors``: failed requests over every native and OIP run; value == 0.
- ``serve_native_batch1000_rows_per_s`` / ``serve_oip_batch1000_rows_per_s``: rows/s of 1,000-row
  requests at 8 connections / raw onnxruntime rows/s on 1,000-row batches, >= 0.8.
- ``serve_oip_binary_batch1000_rows_per_s`` / ``serve_arrow_batch1000_rows_per_s``: the same for
  OIP binary tensors and Arrow bodies, >= 0.8.

  Each 1,000-row run starts with the prediction log's backlog written; a run during which the log
  dropped rows (its queue full) is short whatever its ratio, with a note saying how many.

The servers run in this process on threads (``server.runner.serve_in_thread``, 127.0.0.1, free
ports); MLflow's server is a child process in its own session, stopped with its process group.
Everything lives in a temporary folder removed at the end. Never run by the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from figures import Figure, print_lines, print_table
from serving import accepted_nodelay, machine_info, run_load, sklearn_pipeline

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEPLOYMENT = "synth"
MODEL = "synth-rf"
FEATURES = tuple(f"f{i:02d}" for i in range(30))
TARGET = "label"
BATCH_ROWS = 1000
BATCH_CONNECTIONS = 8
FIGURE_CONNECTIONS = 32


@dataclass(frozen=True)
class Size:
    name: str
    point_s: int  # seconds per load point (wrk takes whole seconds)
    warmup_s: float
    raw_s: float  # seconds per in-process raw onnxruntime measurement
    train_rows: int


QUICK = Size("quick", point_s=3, warmup_s=1.0, raw_s=1.5, train_rows=5000)
DEFAULT = Size("default", point_s=10, warmup_s=2.0, raw_s=5.0, train_rows=5000)


# --------------------------------------------------------------------------- data and model


def synthetic(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """30 standard-normal features (5 decimals), a label that needs trees to learn."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(rows, len(FEATURES))), 5)
    logit = (1.5 * x[:, 0] - x[:, 1] + 0.8 * x[:, 2] * x[:, 3] + np.sin(3 * x[:, 4])
             + 0.5 * x[:, 5:10].sum(axis=1) - 0.3 * np.abs(x[:, 10]))
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with path.open("w") as out:
        out.write(",".join([*FEATURES, TARGET]) + "\n")
        for row, label in zip(x, y, strict=True):
            out.write(",".join(repr(float(v)) for v in row) + f",{int(label)}\n")


def records(x: np.ndarray) -> list[dict[str, float]]:
    return [{name: float(v) for name, v in zip(FEATURES, row, strict=True)} for row in x]


def native_body(rows: list[dict[str, float]]) -> str:
    return json.dumps({"instances": rows})


def oip_body(rows: list[dict[str, float]]) -> str:
    return json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": [len(rows), 1],
                                   "data": [row[name] for row in rows]} for name in FEATURES]})


OIP_HEADER = "Inference-Header-Content-Length"


def oip_binary_parts(rows: list[dict[str, float]]) -> tuple[bytes, bytes]:
    """An OIP request by the binary tensor data extension, as tritonclient sends it by default:
    a JSON header (one FP32 tensor per feature, ``binary_data_size``; binary outputs asked for),
    then each tensor's little-endian bytes. Answers (header, binary data)."""
    header = json.dumps({"inputs": [{"name": name, "datatype": "FP32", "shape": [len(rows), 1],
                                     "parameters": {"binary_data_size": 4 * len(rows)}} for name in FEATURES],
                         "parameters": {"binary_data_output": True}}).encode()
    data = b"".join(np.asarray([row[name] for row in rows], dtype="<f4").tobytes() for name in FEATURES)
    return header, data


def oip_binary_body(rows: list[dict[str, float]]) -> bytes:
    header, data = oip_binary_parts(rows)
    return header + data


def arrow_body(rows: list[dict[str, float]]) -> bytes:
    """An Arrow IPC stream, one float64 column per feature, as a columnar client sends it."""
    import pyarrow as pa

    table = pa.table({name: np.asarray([row[name] for row in rows], dtype=np.float64) for name in FEATURES})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def mlflow_body(rows: list[dict[str, float]]) -> str:
    return json.dumps({"dataframe_records": rows})


# --------------------------------------------------------------------------- (1) raw onnxruntime


def ort_session(onnx: bytes, providers: list[str], intra_op_threads: int) -> Any:
    """An onnxruntime session with the platform's options (ModelSession's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx, sess_options=options, providers=providers)


def raw_ort(session: Any, feed: dict[str, np.ndarray], seconds: float) -> dict[str, Any]:
    """Back-to-back ``run`` calls on one thread for ``seconds``: calls/s, rows/s and per-call latency."""
    outputs = ["label", "probabilities"]
    for _ in range(20):
        session.run(outputs, feed)
    rows = len(next(iter(feed.values())))
    times: list[float] = []
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    now = start
    while now < deadline:
        session.run(outputs, feed)
        then, now = now, clock()
        times.append(now - then)
    elapsed = now - start
    times.sort()
    return {"calls": len(times), "calls_per_s": len(times) / elapsed, "rows_per_s": len(times) * rows / elapsed,
            "p50_ms": times[len(times) // 2] * 1e3, "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))] * 1e3}


# --------------------------------------------------------------------------- (2) the framework reference


class _Instances(msgspec.Struct):
    instances: list[dict[str, float]]


def litestar_ort_app(onnx: bytes, providers: list[str], intra_op_threads: int) -> Any:
    """A minimal Litestar + onnxruntime prediction route, written the plain way."""
    from litestar import Litestar, post

    session = ort_session(onnx, providers, intra_op_threads)
    names = [i.name for i in session.get_inputs()]

    @post("/predict", status_code=200, sync_to_thread=False)
    def predict(data: _Instances) -> dict[str, Any]:
        feed = {name: np.array([[row[name]] for row in data.instances], dtype=np.float32) for name in names}
        labels, probabilities = session.run(["label", "probabilities"], feed)
        return {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}

    return Litestar(route_handlers=[predict], debug=False, logging_config=None)


# --------------------------------------------------------------------------- (5) MLflow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


MLFLOW_SAVE = r"""
import json, pickle, sys
import mlflow.sklearn
config = json.loads(sys.stdin.read())
with open(config["pickle"], "rb") as f:
    model = pickle.load(f)
mlflow.sklearn.save_model(model, config["path"], pyfunc_predict_fn="predict_proba",
                          skops_trusted_types=["sklearn.tree._tree.Tree"])
print(json.dumps({"mlflow": mlflow.__version__}))
"""


class MlflowServer:
    """``mlflow models serve`` of a pickled scikit-learn pipeline, from bench/.venvs/mlflow."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, version: str, log: Path) -> None:
        self.process, self.url, self.version, self.log = process, url, version, log

    @classmethod
    def start(cls, pipeline: Any, work: Path, *, install: bool) -> tuple[MlflowServer | None, str]:
        """Answers (server, '') or (None, why it could not be set up)."""
        import pickle

        import sklearn
        import tracking

        if install:
            why = tracking.ensure_mlflow_venv()
            if why:
                return None, why
        version = tracking.mlflow_version()
        if version is None:
            return None, (f"{tracking.MLFLOW_VENV.relative_to(ROOT)} has no working mlflow"
                          + ("" if install else " (pass --with-mlflow to make it)"))
        python, env = str(tracking.mlflow_python()), tracking._child_env()
        env["PATH"] = f"{tracking.MLFLOW_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        theirs = subprocess.run([python, "-c", "import sklearn; print(sklearn.__version__)"],
                                capture_output=True, text=True, env=env)
        if theirs.stdout.strip() != sklearn.__version__:
            print(f"  pip install scikit-learn=={sklearn.__version__} into {tracking.MLFLOW_VENV.relative_to(ROOT)} "
                  "(the pickled pipeline needs the same version) ...", flush=True)
            done = subprocess.run([python, "-m", "pip", "install", "-q", f"scikit-learn=={sklearn.__version__}"],
                                  capture_output=True, text=True, env=env, timeout=900)
            if done.returncode != 0:
                return None, "pip install scikit-learn failed: " + (done.stderr.strip().splitlines()
                                                                    or ["(no message)"])[-1]
        (work / "pipeline.pkl").write_bytes(pickle.dumps(pipeline))
        saved = subprocess.run([python, "-c", MLFLOW_SAVE], input=json.dumps(
            {"pickle": str(work / "pipeline.pkl"), "path": str(work / "model")}), capture_output=True, text=True,
            env=env, cwd=work, timeout=300)
        if saved.returncode != 0:
            return None, "mlflow.sklearn.save_model failed: " + saved.stderr.strip()[-500:]
        port = free_port()
        log = work / "mlflow-serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(tracking.MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(work / "model"),
                 "-h", "127.0.0.1", "-p", str(port), "--env-manager", "local"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True)
        server = cls(process, f"http://127.0.0.1:{port}", version, log)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log.read_text(errors="replace").strip()[-800:]
                return None, f"mlflow models serve exited ({process.returncode}): {tail}"
            try:
                with urllib.request.urlopen(f"{server.url}/ping", timeout=2) as response:
                    if response.status == 200:
                        return server, ""
            except OSError:
                pass
            time.sleep(0.25)
        server.stop()
        return None, "mlflow models serve did not answer /ping within 180 s"

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass


# --------------------------------------------------------------------------- wrk


def find_wrk() -> str | None:
    return "/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else shutil.which("wrk")


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def wrk_script(path: Path, bodies: list[str], headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"']
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()]
    lines.append("local bodies = { " + ",\n".join(_lua_string(b) for b in bodies) + " }")
    lines.append("local i = 0")
    lines.append("request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend")
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    def number(pattern: str) -> float | None:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else None

    latency = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.MULTILINE))
    requests = number(r"(\d+) requests in")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(number(r"Non-2xx or 3xx responses: (\d+)") or 0)
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return {"requests": int(requests or 0), "errors": errors, "req_per_s": number(r"Requests/sec:\s+([\d.]+)") or 0.0,
            "p50_ms": _ms(latency.get("50", "")), "p99_ms": _ms(latency.get("99", "")),
            "socket_errors": socket_errors.group(0) if socket_errors else None}


def run_wrk(wrk: str, url: str, script: Path, *, connections: int, duration_s: int,
            warmup_s: float) -> dict[str, Any]:
    base = [wrk, "-t1", f"-c{connections}", "--timeout", "10s", "-s", str(script)]
    if warmup_s > 0:
        subprocess.run([*base, f"-d{max(1, math.ceil(warmup_s))}s", url], capture_output=True, text=True,
                       timeout=warmup_s + 60)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([*base, "--latency", f"-d{duration_s}s", url], capture_output=True, text=True,
                          timeout=duration_s + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or done.stderr.strip():  # a Lua error is only a line on stderr; wrk then sends GETs
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip()[-1000:]}")
    result = parse_wrk(done.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["client_cpu"] = cpu / duration_s
    result["first_error"] = None
    if result["errors"]:
        result["first_error"] = result["socket_errors"] or "non-2xx responses"
    return result


# --------------------------------------------------------------------------- checks


def post_json(url: str, body: str | bytes, headers: dict[str, str]) -> Any:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        content = response.read()
        length = response.headers.get(OIP_HEADER)
    if length is None:
        return json.loads(content)
    answer = json.loads(content[:int(length)])  # binary outputs: header, then the tensors' bytes
    offset = int(length)
    for output in answer["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            dtype = "<f4" if output["datatype"] == "FP32" else "<i8"
            output["data"] = np.frombuffer(content[offset:offset + size], dtype=dtype).tolist()
            offset += size
    return answer


def probabilities_of(column: str, answer: Any) -> np.ndarray:
    if column in ("oip", "oip-binary"):
        out = next(o for o in answer["outputs"] if o["name"] == "probabilities")
        return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])
    if column == "mlflow":
        return np.asarray(answer["predictions"], dtype=np.float64)
    return np.asarray(answer["probabilities"], dtype=np.float64)


# --------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Target:
    column: str
    label: str
    url: str
    headers: dict[str, str]
    body: Any  # rows -> request body (text, or bytes for the binary columns)
    binary: bool = False  # measured with the asyncio generator (wrk's Lua scripts carry text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per point, for a smoke run (~2 min)")
    parser.add_argument("--with-mlflow", action="store_true",
                        help="measure `mlflow models serve` too, from bench/.venvs/mlflow (made if missing)")
    parser.add_argument("--no-wrk", action="store_true", help="only the bundled asyncio load generator")
    parser.add_argument("--connections", default="8,32,64", help="connection counts (default 8,32,64)")
    parser.add_argument("--batch-rows", type=int, default=None, metavar="N",
                        help="the platform's micro-batching (settings batch_rows; default: the platform's)")
    parser.add_argument("--batch-wait-ms", type=float, default=None, metavar="MS",
                        help="the platform's micro-batching wait (settings batch_wait_ms)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        connections = sorted({int(c) for c in args.connections.split(",") if c.strip()})
    except ValueError:
        parser.error("--connections takes a comma-separated list of integers")
    if not connections or min(connections) < 1:
        parser.error("--connections must be integers >= 1")
    if FIGURE_CONNECTIONS not in connections:
        connections = sorted({*connections, FIGURE_CONNECTIONS})
    size = QUICK if args.quick else DEFAULT
    started = time.perf_counter()
    wrk = None if args.no_wrk else find_wrk()
    generators = ["asyncio", *(["wrk"] if wrk else [])]
    primary = "wrk" if wrk else "asyncio"

    from mlops_lite import TrainingSpec, connect
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from server import create_app
    from server.runner import serve_in_thread

    print(f"bench/serve.py ({size.name} size): mlops-lite's prediction routes against references measured "
          "in this run")
    print(f"  load: {' and '.join(generators)} from other processes, {size.point_s} s per point after "
          f"{size.warmup_s:g} s warm-up, connections {', '.join(map(str, connections))}; figures from {primary}"
          + ("" if wrk or args.no_wrk else " (wrk not found: apt-get install wrk)"))

    results: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}  # column -> conns -> generator -> result
    batch: dict[str, dict[str, Any]] = {}
    raw: dict[str, dict[str, Any]] = {}
    columnar: list[Target] = []
    mlflow_note = "not asked for (--with-mlflow)"
    log_stats: Any = None
    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-serve-") as tmp:
        work = Path(tmp)
        home = work / "home"
        overrides = {"batch_rows": args.batch_rows, "batch_wait_ms": args.batch_wait_ms}
        settings = load_settings(home=home, **overrides)
        token = init_home(settings).token
        assert token is not None
        platform = connect(home=home, **overrides)
        servers: list[Any] = []
        mlflow: MlflowServer | None = None
        try:
            # ---- setup: a synthetic table through the platform, as a user would
            t0 = time.perf_counter()
            x, y = synthetic(size.train_rows, seed=7)
            write_csv(work / "synth.csv", x, y)
            holdout = records(synthetic(2000, seed=8)[0])
            platform.data.repo(DEPLOYMENT).create(classification="internal", exist_ok=True)
            platform.data.ingest(DEPLOYMENT, work / "synth.csv", "synth/train.csv")
            table = platform.data.repo(DEPLOYMENT).ref("main").read_table("synth/train.csv").table
            spec = TrainingSpec.infer(table, target=TARGET, algorithm="random_forest")
            trained = platform.training.train(DEPLOYMENT, "main", "synth/train.csv", spec)
            version = platform.registry.register_from_run(MODEL, trained.run.id)
            platform.deployments.deploy(DEPLOYMENT, version.model, version.version)
            onnx = platform.registry.model_bytes(version.model, version.version)
            setup_s = time.perf_counter() - t0
            providers = platform.deployments.providers
            threads = settings.intra_op_threads
            info = machine_info(providers)
            info["wrk"] = _wrk_version(wrk) if wrk else None
            print(f"  machine: {info['cores']} cores, Python {info['python']}, onnxruntime {info['onnxruntime']} "
                  f"({info['provider']}, {threads} intra-op thread(s)), scikit-learn {info['scikit_learn']}, "
                  f"litestar {info['litestar']}, {info['server_stack']}"
                  + (f", {info['wrk']}" if info["wrk"] else "") + f"; {info['platform']}; load average "
                  + " ".join(f"{v:.1f}" for v in os.getloadavg()) + " (anything else running shares the cores)")
            params = trained.run.params
            print(f"  model: random_forest {version.model}@{version.version} (n_estimators "
                  f"{params.get('n_estimators', 100)}, max_depth {params.get('max_depth', 10)}), "
                  f"{len(spec.numeric)} numeric features, {size.train_rows} training rows, roc_auc "
                  f"{trained.metrics.get('roc_auc', float('nan')):.3f}, ONNX {len(onnx) / 1e6:.1f} MB; "
                  f"setup {setup_s:.1f} s")
            batching = getattr(settings, "batch_rows", 0)
            print("  platform micro-batching: " + (f"batch_rows {batching}, batch_wait_ms "
                                                   f"{getattr(settings, 'batch_wait_ms', 0):g}" if batching > 1
                                                   else "off (settings batch_rows; --batch-rows N to turn it on)"))

            # ---- (1) raw onnxruntime, in this process
            session = ort_session(onnx, providers, threads)
            one = {name: np.asarray([[holdout[0][name]]], dtype=np.float32) for name in FEATURES}
            thousand = {name: np.asarray([[row[name]] for row in holdout[:BATCH_ROWS]], dtype=np.float32)
                        for name in FEATURES}
            raw["batch1"] = raw_ort(session, one, size.raw_s)
            raw["batch1000"] = raw_ort(session, thousand, size.raw_s)
            reference_proba = session.run(["probabilities"], {
                name: np.asarray([[row[name]] for row in holdout[:64]], dtype=np.float32) for name in FEATURES})[0]

            # ---- (5) MLflow first: its setup may take a while, and nothing of ours runs meanwhile
            if args.with_mlflow:
                print("  setting up mlflow models serve ...", flush=True)
                pipeline = sklearn_pipeline(table, spec)
                (work / "mlflow").mkdir()
                mlflow, why = MlflowServer.start(pipeline, work / "mlflow", install=True)
                mlflow_note = f"MLflow {mlflow.version}" if mlflow else f"skipped: {why}"
                print(f"  mlflow: {mlflow_note}")

            # ---- servers
            servers.append(serve_in_thread(litestar_ort_app(onnx, providers, threads)))
            servers.append(serve_in_thread(create_app(platform)))
            reference, ours = servers
            nodelay = accepted_nodelay(ours)
            auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            plain = {"Content-Type": "application/json"}
            targets = [
                Target("litestar+ort", "(2) litestar+ort", f"{reference.url}/predict", plain, native_body),
                Target("native", "(3) native /v1 predict", f"{ours.url}/v1/deployments/{DEPLOYMENT}/predict",
                       auth, native_body),
                Target("oip", "(4) oip /v2 infer", f"{ours.url}/v2/models/{DEPLOYMENT}/infer", auth, oip_body),
            ]
            header_length = len(oip_binary_parts(holdout[:BATCH_ROWS])[0])
            columnar += [  # 1,000-row requests only
                Target("oip-binary", "(4b) oip /v2 binary tensors", f"{ours.url}/v2/models/{DEPLOYMENT}/infer",
                       {**auth, "Content-Type": "application/octet-stream", OIP_HEADER: str(header_length)},
                       oip_binary_body, binary=True),
                Target("arrow", "(3b) native /v1 Arrow body", f"{ours.url}/v1/deployments/{DEPLOYMENT}/predict",
                       {**auth, "Content-Type": "application/vnd.apache.arrow.stream"}, arrow_body, binary=True),
            ]
            if mlflow is not None:
                targets.append(Target("mlflow", f"(5) mlflow {mlflow.version}", f"{mlflow.url}/invocations",
                                      plain, mlflow_body))
            print(f"  runner: TCP_NODELAY on accepted connections: "
                  f"{ {True: 'yes', False: 'NO', None: 'unknown'}[nodelay] }")

            # ---- every column answers the same model
            for target in [*targets, *columnar]:
                headers = dict(target.headers)
                if target.column == "oip-binary":
                    headers[OIP_HEADER] = str(len(oip_binary_parts(holdout[:64])[0]))
                answer = post_json(target.url, target.body(holdout[:64]), headers)
                diff = float(np.max(np.abs(probabilities_of(target.column, answer) - reference_proba)))
                print(f"  check: {target.column:<13} vs raw onnxruntime on 64 rows: max |dp| = {diff:.2g}"
                      + ("" if diff <= 1e-4 else "  WARNING: not the same model's answers"))

            # ---- batch-1 sweep; the columns interleave at each connection count
            singles = [[row] for row in holdout[:256]]
            for conns in connections:
                for target in targets:
                    bodies = [target.body(rows) for rows in singles]
                    for generator in generators:
                        result = _measure(generator, wrk, target, bodies, conns, size, work)
                        results.setdefault(target.column, {}).setdefault(conns, {})[generator] = result
                        print(f"  {target.column:<13} c={conns:<3} {generator:<8} {result['req_per_s']:>8.0f} req/s  "
                              f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
                              f"errors {result['errors']}", flush=True)

            # ---- 1,000-row requests
            chunks = [holdout[i:i + BATCH_ROWS] for i in range(0, len(holdout) - BATCH_ROWS + 1, BATCH_ROWS // 2)]
            for target in [*targets, *columnar]:
                bodies = [target.body(rows) for rows in chunks]
                if target.column == "oip-binary":  # one header length serves every body
                    assert {len(oip_binary_parts(rows)[0]) for rows in chunks} == {header_length}
                before = _log_counts(platform)  # each run starts with the log's backlog written
                result = _measure(primary, wrk, target, bodies, BATCH_CONNECTIONS, size, work)
                result["rows_per_s"] = result["req_per_s"] * BATCH_ROWS
                after = _log_counts(platform, flush=False)
                if before and after:
                    result["log_rows_logged"] = after["rows_logged"] - before["rows_logged"]
                    result["log_rows_dropped"] = after["rows_dropped"] - before["rows_dropped"]
                batch[target.column] = result
                kept = ""
                if "log_rows_dropped" in result and target.column != "litestar+ort":
                    offered = result["log_rows_logged"] + result["log_rows_dropped"]
                    kept = (f"  log kept {result['log_rows_logged']} of {offered} rows"
                            + (f" (DROPPED {result['log_rows_dropped']}: its queue was full)"
                               if result["log_rows_dropped"] else ""))
                print(f"  {target.column:<13} batch {BATCH_ROWS} c={BATCH_CONNECTIONS} {primary:<8} "
                      f"{result['rows_per_s']:>9.0f} rows/s  p50 {result['p50_ms']:.1f} ms  "
                      f"p99 {result['p99_ms']:.1f} ms  errors {result['errors']}{kept}", flush=True)
            try:
                log_stats = platform.monitoring.stats()
            except Exception as exc:  # the prediction log is being reworked; never fail the bench on it
                log_stats = f"unavailable: {exc}"
        finally:
            for server in servers:
                server.stop()
            if mlflow is not None:
                mlflow.stop()
            platform.close()

    # ---- report
    print()
    columns = ["litestar+ort", "native", "oip", *(["mlflow"] if "mlflow" in results else [])]
    head = f"{'column':<30} {'conns':>5}"
    for generator in generators:
        head += f" | {generator + ' req/s':>13} {'p50 ms':>7} {'p99 ms':>7} {'err':>4} {'cpu':>4}"
    print(head)
    print("-" * len(head))
    r1, r1000 = raw["batch1"], raw["batch1000"]
    print(f"{'(1) raw onnxruntime, batch 1':<30} {'-':>5} | {r1['calls_per_s']:>13.0f} {r1['p50_ms']:>7.3f} "
          f"{r1['p99_ms']:>7.3f} {'-':>4} {'-':>4}   (calls/s in this process, one thread, no HTTP)")
    labels = {t.column: t.label for t in [*targets, *columnar]}
    for conns in connections:
        for column in columns:
            line = f"{labels[column]:<30} {conns:>5}"
            for generator in generators:
                r = results[column][conns][generator]
                line += (f" | {r['req_per_s']:>13.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']:>4} "
                         f"{r['client_cpu']:>4.0%}")
            print(line)
    print()
    print(f"1,000-row requests, {BATCH_CONNECTIONS} connections, {primary}:")
    print(f"  {'(1) raw onnxruntime':<26} {r1000['rows_per_s']:>10.0f} rows/s  "
          f"({r1000['p50_ms']:.2f} ms per 1,000-row run, one thread)")
    for column in [*columns, *(c.column for c in columnar)]:
        r = batch[column]
        dropped = r.get("log_rows_dropped")
        print(f"  {labels[column]:<26} {r['rows_per_s']:>10.0f} rows/s  p50 {r['p50_ms']:.1f} ms  "
              f"p99 {r['p99_ms']:.1f} ms  errors {r['errors']}"
              + ("" if dropped is None or column == "litestar+ort" else
                 f"  prediction log: {dropped} of {dropped + r['log_rows_logged']} rows dropped"))
    print()
    first_errors = [(column, conns, generator, r["first_error"])
                    for column in columns for conns in connections
                    for generator, r in results[column][conns].items() if r.get("first_error")]
    first_errors += [(column, BATCH_CONNECTIONS, "batch", r["first_error"]) for column, r in batch.items()
                     if r.get("first_error")]
    for column, conns, generator, error in first_errors[:8]:
        print(f"first error: {column} c={conns} {generator}: {error}")
    print(f"cpu = the load generator's own CPU use, % of one core; the servers share the machine's "
          f"{os.cpu_count()} cores with it")
    print(f"prediction log after the run: {log_stats}")
    print(f"mlflow: {mlflow_note}")
    print(f"total {time.perf_counter() - started:.1f} s")
    print()

    figures = _figures(results, batch, raw, primary, columns)
    print_table(figures)
    for figure in figures:
        if figure.note:
            print(f"  {figure.figure}: short: {figure.note}")
    print_lines(figures)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "bench": "serve", "size": size.name, "connections": connections, "generators": generators,
            "primary": primary, "machine": info, "mlflow": mlflow_note, "raw_onnxruntime": raw,
            "figures": [{**asdict(f), "ratio": f.ratio if math.isfinite(f.ratio) else None} for f in figures],
            "results": {c: {str(n): g for n, g in v.items()} for c, v in results.items()}, "batch": batch,
        }, indent=2, default=str) + "\n")
    return 0


def _log_counts(platform: Any, *, flush: bool = True) -> dict[str, int] | None:
    """The prediction log's counters (after writing its backlog, when ``flush``): rows it
    dropped during a run are rows the run's figure did not pay to write."""
    try:
        if flush:
            platform.monitoring.flush(120)
        return dict(platform.monitoring.stats())
    except Exception:  # never fail the bench on the log's counters
        return None


def _wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].split(" [")[0] if text else "wrk"


def _measure(generator: str, wrk: str | None, target: Target, bodies: list[Any], conns: int, size: Size,
             work: Path) -> dict[str, Any]:
    if generator == "wrk" and not target.binary:
        assert wrk is not None
        script = wrk_script(work / f"wrk-{target.column.replace('+', '-')}.lua", bodies, target.headers)
        return run_wrk(wrk, target.url, script, connections=conns, duration_s=size.point_s,
                       warmup_s=size.warmup_s)
    return run_load(target.url, bodies, target.headers, clients=conns, warmup_s=size.warmup_s,
                    duration_s=float(size.point_s), max_requests=10_000_000)


def _figures(results: dict[str, Any], batch: dict[str, Any], raw: dict[str, Any], primary: str,
             columns: list[str]) -> list[Figure]:
    c = FIGURE_CONNECTIONS
    native, reference = results["native"][c][primary], results["litestar+ort"][c][primary]
    oip = results["oip"][c][primary]
    figures: list[Figure] = []

    def ratio_figure(name: str, label: str, value: float, ref: float, ref_label: str, target: float,
                     unit: str = "req/s") -> Figure:
        ratio = value / ref if ref else 0.0
        return Figure(name, label, unit, value, ref, ref_label, ratio, target, ratio >= target, ">=")

    figures.append(ratio_figure(f"serve_native_vs_litestar_c{c}_req_per_s", f"native predict, {c} conns",
                                native["req_per_s"], reference["req_per_s"], "litestar+ort route", 1.0))
    figures.append(ratio_figure(f"serve_oip_vs_litestar_c{c}_req_per_s", f"OIP infer, {c} conns",
                                oip["req_per_s"], reference["req_per_s"], "litestar+ort route", 0.7))
    if "mlflow" in columns:
        figures.append(ratio_figure(f"serve_native_vs_mlflow_c{c}_req_per_s", f"native vs MLflow, {c} conns",
                                    native["req_per_s"], results["mlflow"][c][primary]["req_per_s"],
                                    "mlflow models serve", 10))
    p99, ref_p99 = native["p99_ms"], reference["p99_ms"]
    figures.append(Figure(f"serve_native_p99_c{c}_ms", f"native p99, {c} conns", "ms", p99, ref_p99,
                          "litestar+ort p99", p99 / ref_p99 if ref_p99 else float("inf"), 25,
                          p99 <= 25, "value <="))
    p99_ratio = p99 / ref_p99 if ref_p99 else float("inf")
    figures.append(Figure(f"serve_native_p99_vs_litestar_c{c}", f"native p99 / litestar+ort p99, {c} conns", "ms",
                          p99, ref_p99, "litestar+ort p99", p99_ratio, 1.5, p99_ratio <= 1.5, "ratio <="))
    ours = ("native", "oip", "oip-binary", "arrow")
    errors = sum(r["errors"] for column in ("native", "oip") for by_gen in results[column].values()
                 for r in by_gen.values()) + sum(batch[column]["errors"] for column in ours)
    requests = sum(r["requests"] for column in ("native", "oip") for by_gen in results[column].values()
                   for r in by_gen.values()) + sum(batch[column]["requests"] for column in ours)
    figures.append(Figure("serve_errors", "native + OIP errors", "", float(errors), 0.0,
                          f"none expected in {requests} requests", 0.0 if errors == 0 else float("inf"), 0,
                          errors == 0 and requests > 0, "value =="))
    raw_rows = raw["batch1000"]["rows_per_s"]
    first_batch = len(figures)
    figures.append(ratio_figure(f"serve_native_batch{BATCH_ROWS}_rows_per_s",
                                f"native predict, {BATCH_ROWS} rows/request", batch["native"]["rows_per_s"],
                                raw_rows, f"raw onnxruntime, {BATCH_ROWS}-row batches", 0.8, "rows/s"))
    figures.append(ratio_figure(f"serve_oip_batch{BATCH_ROWS}_rows_per_s",
                                f"OIP infer, {BATCH_ROWS} rows/request", batch["oip"]["rows_per_s"],
                                raw_rows, f"raw onnxruntime, {BATCH_ROWS}-row batches", 0.8, "rows/s"))
    figures.append(ratio_figure(f"serve_oip_binary_batch{BATCH_ROWS}_rows_per_s",
                                f"OIP binary tensors, {BATCH_ROWS} rows/request", batch["oip-binary"]["rows_per_s"],
                                raw_rows, f"raw onnxruntime, {BATCH_ROWS}-row batches", 0.8, "rows/s"))
    figures.append(ratio_figure(f"serve_arrow_batch{BATCH_ROWS}_rows_per_s",
                                f"native predict, Arrow body, {BATCH_ROWS} rows/request", batch["arrow"]["rows_per_s"],
                                raw_rows, f"raw onnxruntime, {BATCH_ROWS}-row batches", 0.8, "rows/s"))
    # A run whose prediction log dropped rows did not pay for writing them: short whatever its ratio.
    for index, column in zip(range(first_batch, len(figures)), ("native", "oip", "oip-binary", "arrow"), strict=True):
        dropped = batch[column].get("log_rows_dropped", 0)
        if dropped:
            offered = dropped + batch[column]["log_rows_logged"]
            figures[index] = replace(figures[index], ok=False, note=(
                f"the prediction log dropped {dropped} of the run's {offered} rows ({dropped / offered:.0%}; "
                f"its queue was full): this rate did not pay for logging them"))
    return figures


if __name__ == "__main__":
    sys.exit(main())
