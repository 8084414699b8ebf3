"""Prometheus metrics for the inference API, in the text exposition format (0.0.4),
written by hand: no client library. The prediction pipeline updates a ``Metrics`` (its
``RequestMetrics``) for every predict and infer request; the ``/metrics`` route renders
it with the platform's prediction-log counters and what its router serves."""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from mlops_lite.inference.routing import ServingStats

LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{key}="{_escape(str(value))}"' for key, value in pairs)
    return f"{{{inner}}}" if inner else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * len(self.bounds)  # per bucket, made cumulative when rendered
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.count += 1
        self.total += value

    def lines(self, name: str, labels: tuple[tuple[str, str], ...]) -> list[str]:
        out: list[str] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            out.append(f"{name}_bucket{_labels((*labels, ('le', _number(bound))))} {running}")
        out.append(f"{name}_bucket{_labels((*labels, ('le', '+Inf')))} {self.count}")
        out.append(f"{name}_sum{_labels(labels)} {_number(self.total)}")
        out.append(f"{name}_count{_labels(labels)} {self.count}")
        return out


class Metrics:
    """Thread-safe request counters and histograms, keyed by deployment and version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], _Histogram] = {}
        self._batch: dict[tuple[str, str], _Histogram] = {}

    def observe(self, deployment: str, version: str, status: str, latency_s: float,
                batch_size: int | None = None) -> None:
        """One predict request: its outcome (an HTTP status code), latency and, when it
        succeeded, its number of instances."""
        key = (deployment, version)
        with self._lock:
            self._requests[(deployment, version, status)] = self._requests.get((deployment, version, status), 0) + 1
            self._latency.setdefault(key, _Histogram(LATENCY_BUCKETS)).observe(latency_s)
            if batch_size is not None:
                self._batch.setdefault(key, _Histogram(BATCH_BUCKETS)).observe(batch_size)

    def render(self, *, log_stats: dict[str, int] | None = None, providers: Sequence[str] = (),
               serving: ServingStats | None = None) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            latency = [(k, h.lines("mlops_lite_request_latency_seconds",
                                   (("deployment", k[0]), ("version", k[1]))))
                       for k, h in sorted(self._latency.items())]
            batch = [(k, h.lines("mlops_lite_batch_size", (("deployment", k[0]), ("version", k[1]))))
                     for k, h in sorted(self._batch.items())]
        stats = log_stats or {}
        lines = [
            "# HELP mlops_lite_requests_total Predict requests by deployment, version and HTTP status.",
            "# TYPE mlops_lite_requests_total counter",
        ]
        for (deployment, version, status), count in requests:
            labels = _labels((("deployment", deployment), ("version", version), ("status", status)))
            lines.append(f"mlops_lite_requests_total{labels} {count}")
        lines += ["# HELP mlops_lite_request_latency_seconds Predict latency in the server, in seconds.",
                  "# TYPE mlops_lite_request_latency_seconds histogram"]
        for _, block in latency:
            lines += block
        lines += ["# HELP mlops_lite_batch_size Instances per successful predict request.",
                  "# TYPE mlops_lite_batch_size histogram"]
        for _, block in batch:
            lines += block
        lines += [
            "# HELP mlops_lite_prediction_log_dropped_total Prediction rows dropped because the log queue was full.",
            "# TYPE mlops_lite_prediction_log_dropped_total counter",
            f"mlops_lite_prediction_log_dropped_total {stats.get('rows_dropped', 0)}",
            "# HELP mlops_lite_prediction_log_errors_total Prediction log batches that failed to write.",
            "# TYPE mlops_lite_prediction_log_errors_total counter",
            f"mlops_lite_prediction_log_errors_total {stats.get('write_errors', 0)}",
            "# HELP mlops_lite_prediction_log_written_total Prediction rows written to Parquet.",
            "# TYPE mlops_lite_prediction_log_written_total counter",
            f"mlops_lite_prediction_log_written_total {stats.get('rows_written', 0)}",
            "# HELP mlops_lite_execution_provider onnxruntime execution providers configured, in order of preference.",
            "# TYPE mlops_lite_execution_provider gauge",
        ]
        lines += [f"mlops_lite_execution_provider{_labels((('provider', p),))} 1" for p in providers]
        if serving is not None:
            lines += _serving_lines(serving)
        return "\n".join(lines) + "\n"


def _serving_lines(serving: ServingStats) -> list[str]:
    """Loaded routes, model load times, micro-batches (size, wait, why released), shadow traffic."""
    routes = serving.routes
    slots = {}
    for route in routes.values():
        for slot in (route.primary, route.candidate):
            if slot is not None:
                slots[slot.digest] = slot
    lines = ["# HELP mlops_lite_route_info Live routes: which version serves which side of a deployment.",
             "# TYPE mlops_lite_route_info gauge"]
    for name, route in sorted(routes.items()):
        record = route.record
        for side, slot in (("primary", route.primary), ("candidate", route.candidate)):
            if slot is not None:
                labels = _labels((("deployment", name), ("side", side), ("version", slot.version),
                                  ("strategy", record.strategy), ("revision", str(record.revision))))
                lines.append(f"mlops_lite_route_info{labels} 1")
    lines += ["# HELP mlops_lite_model_load_seconds Time to load, verify and warm a model version's session.",
              "# TYPE mlops_lite_model_load_seconds gauge"]
    for digest, seconds in sorted(serving.load_seconds.items()):
        slot = slots.get(digest)
        labels = _labels((("digest", digest[:12]), ("version", slot.version if slot else "")))
        lines.append(f"mlops_lite_model_load_seconds{labels} {seconds:.6f}")
    batch_lines: list[str] = []
    for digest, stats in sorted(serving.batches.items()):
        slot = slots.get(digest)
        if slot is None:  # loaded, but serves no route (scored only)
            continue
        base = (("version", slot.version), ("digest", digest[:12]))
        for reason, count in sorted(stats.by_reason.items()):
            batch_lines.append(f"mlops_lite_microbatches_total{_labels((*base, ('reason', reason)))} {count}")
        for bound, count in stats.cumulative_histogram():
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            batch_lines.append(f"mlops_lite_microbatch_rows_bucket{_labels((*base, ('le', le)))} {count}")
        batch_lines.append(f"mlops_lite_microbatch_rows_count{_labels(base)} {stats.batches}")
        batch_lines.append(f"mlops_lite_microbatch_rows_sum{_labels(base)} {stats.rows}")
        batch_lines.append(f"mlops_lite_microbatch_queue_wait_ms_mean{_labels(base)} {stats.mean_queue_wait_ms:.4f}")
    if batch_lines:
        lines += ["# HELP mlops_lite_microbatches_total Micro-batches run, by why each was released "
                  "(full, timeout, drained, oversize).",
                  "# TYPE mlops_lite_microbatches_total counter",
                  "# HELP mlops_lite_microbatch_rows Rows per micro-batch.",
                  "# TYPE mlops_lite_microbatch_rows histogram", *batch_lines]
    lines += ["# HELP mlops_lite_shadow_dropped_total Mirrored requests not sent to a shadow (its queue was full).",
              "# TYPE mlops_lite_shadow_dropped_total counter",
              f"mlops_lite_shadow_dropped_total {serving.shadow_dropped}",
              "# HELP mlops_lite_shadow_errors_total Shadow predictions that failed (never seen by callers).",
              "# TYPE mlops_lite_shadow_errors_total counter",
              f"mlops_lite_shadow_errors_total {serving.shadow_errors}"]
    return lines


def parse(text: str) -> dict[str, Any]:
    """Parse exposition text into ``{(name, ((label, value), ...)): value}`` (for tests and
    tools; handles the subset ``render`` writes)."""
    samples: dict[Any, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if "{" in head:
            name, _, rest = head.partition("{")
            labels = tuple(_split_labels(rest.rstrip("}")))
        else:
            name, labels = head, ()
        samples[(name, labels)] = float(value)
    return samples


def _split_labels(text: str) -> Iterable[tuple[str, str]]:
    i = 0
    while i < len(text):
        eq = text.index("=", i)
        key = text[i:eq]
        j = eq + 2  # past ="
        value: list[str] = []
        while text[j] != '"':
            if text[j] == "\\":
                j += 1
                value.append({"n": "\n"}.get(text[j], text[j]))
            else:
                value.append(text[j])
            j += 1
        yield key, "".join(value)
        i = j + 2 if j + 1 < len(text) and text[j + 1] == "," else j + 1

