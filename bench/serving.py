"""Benchmark of the serving path, each figure beside a reference measured in the same run.

    .venv/bin/python bench/serving.py [--quick] [--clients 16] [--json PATH]

Figures (``bench: FIGURE value=V reference=R ratio=X target=T ok|short``):

- ``inprocess_predict_batch1_us``: mean microseconds per ``platform.deployments.predict``
  of one instance (validation, tensors, onnxruntime), against scikit-learn's
  ``predict_proba`` of the same pipeline on a one-row frame. ratio = reference/value
  (the speed-up); target >= 10.
- ``inprocess_predict_batch1000_rows_per_s``: rows/s for 1,000-instance predicts,
  against ``predict_proba`` on a 1,000-row frame. ratio = value/reference; target >= 1.
- ``http_predict_batch1_req_per_s``: requests/s on loopback, batch-1 JSON bodies,
  N concurrent keep-alive clients, against a bare Litestar route returning a constant
  (no auth, no model) served by the same runner. ratio = value/reference; target >= 0.5.
- ``http_error_rate``: errors/requests during the platform's HTTP load; must be 0.

The servers run in this process on a thread (``server.runner.serve_in_thread``), as the
demo does; the load generator runs in a child process, so that it does not share the
servers' interpreter lock, on plain asyncio streams (keep-alive HTTP/1.1, one send per
request): httpx.AsyncClient was tried and tops out near 300 req/s at 16 concurrent
requests on a 2-core machine, below the servers it would measure. The child reports its
own CPU use, so a client-bound run shows. Everything lives in a temporary home that is
removed at the end. Never run by the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform as pyplatform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from figures import Figure, bench_line, print_table

ROOT = Path(__file__).resolve().parent.parent
TRAIN_CSV = ROOT / "data" / "loans.csv"
HOLDOUT_CSV = ROOT / "data" / "loans_holdout.csv"
DEPLOYMENT = "loans"


@dataclass(frozen=True)
class Size:
    name: str
    rounds: int  # timed rounds per in-process measurement; the median round is reported
    round_s: float  # time limit of one round
    batch1_calls: int  # count limit of one round, platform batch 1
    sklearn_batch1_calls: int  # count limit of one round, sklearn batch 1 (~ms per call)
    batch1000_calls: int  # count limit of one round, batch 1,000 (both sides)
    http_warmup_s: float
    http_duration_s: float
    http_repeats: int  # alternating platform/reference runs; the median of each is reported
    http_max_requests: int  # count limit of one HTTP run


QUICK = Size("quick", rounds=3, round_s=0.3, batch1_calls=5_000, sklearn_batch1_calls=200,
             batch1000_calls=100, http_warmup_s=0.5, http_duration_s=1.5, http_repeats=1,
             http_max_requests=100_000)
DEFAULT = Size("default", rounds=5, round_s=1.0, batch1_calls=50_000, sklearn_batch1_calls=1_000,
               batch1000_calls=1_000, http_warmup_s=1.0, http_duration_s=5.0, http_repeats=3,
               http_max_requests=500_000)




# --------------------------------------------------------------------------- timing


def timed_rounds(call: Callable[[], Any], *, rounds: int, max_calls: int, max_s: float) -> float:
    """Median over ``rounds`` of the mean seconds per call; each round is bounded by
    ``max_calls`` and ``max_s`` (at least one call)."""
    means = []
    for _ in range(rounds):
        n = 0
        start = time.perf_counter()
        deadline = start + max_s
        while n < max_calls:
            call()
            n += 1
            if time.perf_counter() >= deadline:
                break
        means.append((time.perf_counter() - start) / n)
    return statistics.median(means)


def warm_up(call: Callable[[], Any], *, max_calls: int, max_s: float) -> None:
    deadline = time.perf_counter() + max_s
    for _ in range(max_calls):
        call()
        if time.perf_counter() >= deadline:
            break


# --------------------------------------------------------------------------- HTTP load (child process)


class _Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: each request is written
    in one send (asyncio sets TCP_NODELAY), each response read by its Content-Length."""

    def __init__(self, host: str, port: int, ssl_context: Any = None) -> None:
        self.host, self.port, self.ssl_context = host, port, ssl_context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl_context)
        assert self.reader is not None
        self.writer.write(request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = None, False
        for line in lines[1:]:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "connection" and value.strip().lower() == "close":
                close = True
        if length is None:
            await self.close()
            raise ValueError("response without Content-Length")
        body = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


async def _load(config: dict[str, Any]) -> dict[str, Any]:
    from urllib.parse import urlsplit

    url = urlsplit(config["url"])
    host, port = url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80)
    # HTTPS: a verifying context for the CA the server's certificate chains to.
    ssl_context = None
    if url.scheme == "https":
        import ssl

        ssl_context = ssl.create_default_context(cafile=config["ca"])
    headers = "".join(f"{k}: {v}\r\n" for k, v in config["headers"].items())
    requests = []
    # Binary bodies (OIP binary tensors, Arrow streams) travel as base64 in the JSON config.
    raw = ([base64.b64decode(b) for b in config["bodies_b64"]] if "bodies_b64" in config
           else [text.encode() for text in config["bodies"]])
    for body in raw:
        requests.append(f"POST {url.path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    clients, max_requests, timeout = config["clients"], config["max_requests"], config["request_timeout_s"]
    latencies: list[float] = []
    counts = {"requests": 0, "errors": 0, "issued": 0}
    first_error: list[str] = []
    measuring = False
    connections = [_Connection(host, port, ssl_context) for _ in range(clients)]

    async def worker(index: int, stop_at: float) -> None:
        connection, i = connections[index], index
        while time.perf_counter() < stop_at and counts["issued"] < max_requests:
            request = requests[i % len(requests)]
            i += clients
            if measuring:
                counts["issued"] += 1
            start = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(connection.post(request), timeout)
                ok = status == 200
                if not ok and not first_error:
                    first_error.append(f"HTTP {status}: {body[:300].decode(errors='replace')}")
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                    ValueError) as exc:
                ok = False
                await connection.close()
                if not first_error:
                    first_error.append(f"{type(exc).__name__}: {exc}")
            if measuring:
                latencies.append(time.perf_counter() - start)
                counts["requests"] += 1
                counts["errors"] += 0 if ok else 1

    try:
        warm_until = time.perf_counter() + config["warmup_s"]
        await asyncio.gather(*(worker(k, warm_until) for k in range(clients)))
        first_error.clear()
        measuring = True
        cpu0, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(k, start + config["duration_s"]) for k in range(clients)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    finally:
        for connection in connections:
            await connection.close()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {"requests": counts["requests"], "errors": counts["errors"], "elapsed_s": elapsed,
            "req_per_s": counts["requests"] / elapsed if elapsed else 0.0,
            "p50_ms": pct(0.50) * 1e3, "p99_ms": pct(0.99) * 1e3, "client_cpu": cpu / elapsed if elapsed else 0.0,
            "first_error": first_error[0] if first_error else None}


def load_child() -> None:
    """``serving.py --load-child``: read a config on stdin, load, print a JSON result."""
    config = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_load(config))))


def run_load(url: str, bodies: list[str] | list[bytes], headers: dict[str, str], *, clients: int, warmup_s: float,
             duration_s: float, max_requests: int, ca: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"url": url, "headers": headers, "clients": clients, "warmup_s": warmup_s,
                              "duration_s": duration_s, "max_requests": max_requests, "request_timeout_s": 10.0,
                              "ca": ca}
    if bodies and isinstance(bodies[0], bytes):
        config["bodies_b64"] = [base64.b64encode(b).decode() for b in bodies if isinstance(b, bytes)]
    else:
        config["bodies"] = bodies
    limit = warmup_s + duration_s + 60
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--load-child"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        out, err = child.communicate(json.dumps(config), timeout=limit)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    if child.returncode != 0:
        raise RuntimeError(f"the load generator failed (exit {child.returncode}): {err.strip()[-2000:]}")
    return dict(json.loads(out))


# --------------------------------------------------------------------------- the reference app


def constant_app() -> Any:
    """A bare Litestar POST route that answers a constant: no auth, no body parsing, no model."""
    from litestar import Litestar, post

    answer = {"predictions": [0], "probabilities": [[0.9, 0.1]], "classes": [0, 1]}

    @post("/predict", status_code=200, sync_to_thread=False)
    def constant() -> dict[str, Any]:
        return answer

    return Litestar(route_handlers=[constant], debug=False, logging_config=None)


def accepted_nodelay(running: Any) -> bool | None:
    """Whether connections accepted by a ``serve_in_thread`` server get TCP_NODELAY.

    asyncio sets it only when the socket's ``proto`` is IPPROTO_TCP; a listener made with
    ``socket.socket(AF_INET, SOCK_STREAM)`` has proto 0, which accepted sockets inherit.
    Without it, Nagle's algorithm holds a response's body until the client's delayed ACK
    (~40 ms on Linux) because uvicorn writes head and body separately. None: unknown."""
    import socket

    try:
        listener = running.server.servers[0].sockets[0]
        if listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
            return True  # inherited by accepted sockets
        return bool(listener.proto == socket.IPPROTO_TCP)
    except (AttributeError, IndexError, OSError):
        return None


# --------------------------------------------------------------------------- main


def deploy_loans(platform: Any) -> tuple[Any, Any, Any]:
    """What the demo does before serving: ingest the bundled loans, train a random forest,
    register it and deploy it as ``DEPLOYMENT``. Returns (table, spec, version)."""
    from mlops_lite import TrainingSpec

    platform.data.repo("loans").create(classification="internal", exist_ok=True)
    platform.data.ingest("loans", TRAIN_CSV, "loans/train.csv")
    table = platform.data.repo("loans").ref("main").read_table("loans/train.csv").table
    spec = TrainingSpec.infer(table, target="default", exclude=("name", "email", "phone", "gender", "age"),
                              sensitive="gender", algorithm="random_forest")
    run = platform.training.train("loans", "main", "loans/train.csv", spec)
    version = platform.registry.register_from_run("loan-default", run.run.id)
    platform.deployments.deploy(DEPLOYMENT, version.model, version.version)
    return table, spec, version


def machine_info(providers: list[str]) -> dict[str, Any]:
    import importlib.util

    import onnxruntime
    import sklearn
    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return {"cores": os.cpu_count(), "python": pyplatform.python_version(),
            "platform": pyplatform.platform(), "onnxruntime": onnxruntime.__version__,
            "provider": providers[0] if providers else "?", "scikit_learn": sklearn.__version__,
            "litestar": _dist("litestar"),
            "uvicorn": uvicorn.__version__, "server_stack": f"uvicorn {loop}/{http}"}


def _dist(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def sklearn_pipeline(table: Any, spec: Any) -> Any:
    """Fit the pipeline exactly as ``train_classifier`` does (same split, estimator, transforms)."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from mlops_lite.training.classifier import build_pipeline, training_frame

    frame = training_frame(table, spec)
    target = np.asarray(table.column(spec.target).to_pylist())
    x_train, _, y_train, _ = train_test_split(frame, target, test_size=spec.test_size,
                                              random_state=spec.seed, stratify=target)
    pipeline, _, _ = build_pipeline(spec)
    pipeline.fit(x_train, y_train)
    return pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (~30 s)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    parser.add_argument("--load-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_child:
        load_child()
        return 0
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    size = QUICK if args.quick else DEFAULT
    started = time.perf_counter()

    import numpy as np
    import pyarrow.csv as pacsv

    from mlops_lite import connect
    from mlops_lite.config import load_settings
    from mlops_lite.home import init_home
    from mlops_lite.training.classifier import training_frame
    from server import create_app
    from server.runner import serve_in_thread

    print(f"bench/serving.py ({size.name} size): the serving path against references measured in this run")
    print("  in-process: platform.deployments.predict (validation + tensors + onnxruntime) "
          "vs scikit-learn predict_proba of the same pipeline")
    print(f"  HTTP: POST /v1/deployments/{DEPLOYMENT}/predict, batch-1 JSON, {args.clients} clients, "
          "vs a bare Litestar route returning a constant, same runner")

    figures: list[Figure] = []
    http_runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-") as tmp:
        home = Path(tmp) / "home"
        settings = load_settings(home=home)
        token = init_home(settings).token
        assert token is not None
        platform = connect(home=home)
        servers: list[Any] = []
        try:
            # ---- setup: ingest, train, register, deploy (as the demo does)
            t0 = time.perf_counter()
            table, spec, version = deploy_loans(platform)
            pipeline = sklearn_pipeline(table, spec)
            setup_s = time.perf_counter() - t0

            features = [*spec.numeric, *spec.categorical]
            holdout = pacsv.read_csv(HOLDOUT_CSV).select(features)
            rows: list[dict[str, Any]] = holdout.to_pylist()
            frame = training_frame(holdout, spec)
            batch = (rows * (1000 // len(rows) + 1))[:1000]
            batch_frame = frame.iloc[[i % len(rows) for i in range(1000)]].reset_index(drop=True)
            one_row, one_frame = [rows[0]], frame.iloc[:1]

            # The reference must be the same model: compare probabilities on the holdout.
            served = np.asarray(platform.deployments.predict(DEPLOYMENT, rows).probabilities)
            parity = float(np.max(np.abs(served - pipeline.predict_proba(frame))))

            info = machine_info(platform.deployments.providers)
            print(f"  machine: {info['cores']} cores, Python {info['python']}, onnxruntime {info['onnxruntime']} "
                  f"({info['provider']}, {settings.intra_op_threads} intra-op thread(s)), scikit-learn "
                  f"{info['scikit_learn']}, litestar {info['litestar']}, {info['server_stack']}; {info['platform']}")
            print(f"  model: random_forest {version.model}@{version.version}, {len(features)} input features "
                  f"({len(spec.numeric)} numeric, {len(spec.categorical)} categorical); "
                  f"setup {setup_s:.1f} s; ONNX vs sklearn on {len(rows)} holdout rows: "
                  f"max |dp| = {parity:.2g}")
            if not parity <= 1e-4:
                print("  WARNING: the sklearn reference does not match the served model (max |dp| > 1e-4)")

            # ---- 1. in-process, batch 1
            def predict_one() -> Any:
                return platform.deployments.predict(DEPLOYMENT, one_row)

            def sklearn_one() -> Any:
                return pipeline.predict_proba(one_frame)

            warm_up(predict_one, max_calls=500, max_s=0.5)
            warm_up(sklearn_one, max_calls=20, max_s=0.5)
            value = timed_rounds(predict_one, rounds=size.rounds, max_calls=size.batch1_calls,
                                 max_s=size.round_s) * 1e6
            reference = timed_rounds(sklearn_one, rounds=size.rounds, max_calls=size.sklearn_batch1_calls,
                                     max_s=size.round_s) * 1e6
            ratio = reference / value
            figures.append(Figure("inprocess_predict_batch1_us", "in-process predict, 1 instance", "us/call",
                                  value, reference, "sklearn predict_proba, 1 row", ratio, 10, ratio >= 10,
                                  "speed-up >="))

            # ---- 2. in-process, batch 1,000
            def predict_batch() -> Any:
                return platform.deployments.predict(DEPLOYMENT, batch)

            def sklearn_batch() -> Any:
                return pipeline.predict_proba(batch_frame)

            warm_up(predict_batch, max_calls=5, max_s=0.5)
            warm_up(sklearn_batch, max_calls=5, max_s=0.5)
            value = 1000 / timed_rounds(predict_batch, rounds=size.rounds, max_calls=size.batch1000_calls,
                                        max_s=size.round_s)
            reference = 1000 / timed_rounds(sklearn_batch, rounds=size.rounds, max_calls=size.batch1000_calls,
                                            max_s=size.round_s)
            ratio = value / reference
            figures.append(Figure("inprocess_predict_batch1000_rows_per_s", "in-process predict, 1,000 instances",
                                  "rows/s", value, reference, "sklearn predict_proba, 1,000 rows", ratio, 1,
                                  ratio >= 1, ">="))

            # ---- 3, 4. HTTP on loopback
            servers.append(serve_in_thread(create_app(platform)))
            servers.append(serve_in_thread(constant_app()))
            targets = {
                "platform": (f"{servers[0].url}/v1/deployments/{DEPLOYMENT}/predict",
                             {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}),
                "reference": (f"{servers[1].url}/predict", {"Content-Type": "application/json"}),
            }
            nodelay = accepted_nodelay(servers[0])
            print(f"  runner: TCP_NODELAY on accepted connections: "
                  f"{ {True: 'yes', False: 'NO', None: 'unknown'}[nodelay] }")
            if nodelay is False:
                print("  WARNING: serve_in_thread's listening socket leaves TCP_NODELAY off, so each response "
                      "waits for the client's delayed ACK (~40 ms): both HTTP figures measure that stall more "
                      "than the servers (fix in server/runner.py: socket.socket(AF_INET, SOCK_STREAM, "
                      "IPPROTO_TCP) or setsockopt TCP_NODELAY on the listener)")
            bodies = [json.dumps({"instances": [row]}) for row in rows]
            runs: dict[str, list[dict[str, Any]]] = {"platform": [], "reference": []}
            for repeat in range(size.http_repeats):
                order = ("reference", "platform") if repeat % 2 else ("platform", "reference")
                for name in order:
                    url, headers = targets[name]
                    runs[name].append(run_load(url, bodies, headers, clients=args.clients,
                                               warmup_s=size.http_warmup_s, duration_s=size.http_duration_s,
                                               max_requests=size.http_max_requests))
            for name, results in runs.items():
                results.sort(key=lambda r: r["req_per_s"])
                median = dict(results[len(results) // 2])
                median["requests"] = sum(r["requests"] for r in results)
                median["errors"] = sum(r["errors"] for r in results)
                median["first_error"] = next((r["first_error"] for r in results if r["first_error"]), None)
                http_runs[name] = median
            plat, ref = http_runs["platform"], http_runs["reference"]
            ratio = plat["req_per_s"] / ref["req_per_s"] if ref["req_per_s"] else 0.0
            figures.append(Figure("http_predict_batch1_req_per_s", f"HTTP predict, batch 1, {args.clients} clients",
                                  "req/s", plat["req_per_s"], ref["req_per_s"], "bare Litestar constant route",
                                  ratio, 0.5, ratio >= 0.5, ">="))
            error_rate = plat["errors"] / plat["requests"] if plat["requests"] else 1.0
            figures.append(Figure("http_error_rate", "HTTP errors / requests", "", error_rate, 0.0,
                                  "none expected", 0.0 if error_rate == 0 else float("inf"), 0,
                                  error_rate == 0 and plat["requests"] > 0, "value =="))
        finally:
            for server in servers:
                server.stop()
            platform.close()

    # ---- report
    print()
    print_table(figures, value=17, target=15)
    print()
    for name in ("platform", "reference"):
        r = http_runs[name]
        print(f"HTTP {name:<9}: {r['req_per_s']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
              f"{r['requests']} requests, {r['errors']} errors, load generator CPU {r['client_cpu']:.0%}"
              + (f" (first error: {r['first_error']})" if r["first_error"] else ""))
    print(f"total {time.perf_counter() - started:.1f} s")
    print()
    for f in figures:
        print(bench_line(f))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "bench": "serving", "size": size.name, "clients": args.clients, "machine": info,
            "figures": [{**asdict(f), "ratio": f.ratio if f.ratio != float("inf") else None} for f in figures],
            "http": http_runs,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
