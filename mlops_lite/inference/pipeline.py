"""The request path every serving protocol shares: /v1 JSON, /v1 Arrow and /v2 (OIP).

A server parses a request and formats the answer; between the two it calls one
method here, which

1. resolves the deployment's route (loading it on first use where the control plane
   is in this process) and the slot that answers (the version named, else the one the
   strategy picks, sticky by key);
2. runs that slot's session on the feed the caller's parser makes for it (a canary may
   have other inputs than the primary), mirroring the request to a shadow;
3. records the outcome: on success the prediction in the log (rows, or columns for a
   columnar request) and, in the caller's request metrics, status 200, latency and
   rows; on failure the status the error maps to (``http_status``, 500 for anything
   else) with its latency in the metrics and, for a deployment served here, in the
   error rate of the slot that failed (a canary's verdict reads it).

Nothing is recorded twice and no protocol has its own copy, so the error rate and the
log mean the same whichever protocol carried the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from mlops_lite.inference.routing import Answer, Route, Router
from mlops_lite.inference.session import ModelSession
from mlops_lite.records import Prediction

# A columnar request parsed for one session: the model's tensors and the columns the
# prediction log keeps (the values as sent, or the tensors themselves).
ColumnFeed = tuple[dict[str, np.ndarray], Mapping[str, np.ndarray]]


class PredictionRecorder(Protocol):
    """Where answered requests and failures go (``platform.monitoring`` is one)."""

    def record(self, prediction: Prediction, instances: list[dict[str, Any]], latency_s: float) -> object: ...

    def record_columns(self, prediction: Prediction, columns: Mapping[str, np.ndarray], latency_s: float, *,
                       labels: np.ndarray | None = None, probabilities: np.ndarray | None = None) -> object: ...

    def record_error(self, deployment: str, status: int, slot: str | None = None) -> None: ...


class RequestMetrics(Protocol):
    """A server's request counters (``server.metrics.Metrics`` is one)."""

    def observe(self, deployment: str, version: str, status: str, latency_s: float,
                batch_size: int | None = None) -> None: ...


class PredictionPipeline:
    """Resolve -> run -> record, for every protocol (see the module doc)."""

    def __init__(self, router: Router, route: Callable[[str], Route], recorder: PredictionRecorder | None) -> None:
        """``route(name)`` answers the loaded route of a deployment (NotFound, or
        BackendUnavailable for one that cannot load); ``recorder`` takes the outcomes."""
        self._router = router
        self._route = route
        self._recorder = recorder

    def runs_inline(self, name: str) -> bool:
        """Whether a request to ``name`` does no I/O and waits on nothing: its route is
        loaded and no micro-batcher gathers requests (so a small one may run on an event loop)."""
        return not self._router.batching and self._router.route(name) is not None

    def predict(self, name: str, instances: list[dict[str, Any]], *, key: str | None = None,
                metrics: RequestMetrics | None = None) -> Prediction:
        """Answer named-feature rows (a JSON body); the rows go to the log as sent."""
        started = time.perf_counter()
        side: str | None = None
        try:
            route = self._route(name)
            slot, side = route.choose(key=key)
            answer = self._router.answer(route, slot, side, lambda session: session.build_feed(instances), instances)
        except Exception as exc:
            self._failed(name, "", exc, started, side, metrics)
            raise
        latency = time.perf_counter() - started
        prediction = answer.prediction
        if self._recorder is not None:
            self._recorder.record(prediction, instances, latency)  # queued; never fails the request
        if metrics is not None:
            metrics.observe(name, prediction.version, "200", latency, len(instances))
        return prediction

    def predict_columns(self, name: str, parse: Callable[[ModelSession], ColumnFeed], *, key: str | None = None,
                        version: str | None = None, request_id: str | None = None, tuples: bool = True,
                        metrics: RequestMetrics | None = None) -> Answer:
        """Answer a columnar request (an Arrow body, OIP tensors): ``parse`` validates it
        against the answering slot's session (its errors count as the request's failure).
        ``version`` names the slot (else the strategy picks, by ``key``); ``request_id`` is
        the caller's (else a new one); ``tuples`` as for ``Router.answer``."""
        started = time.perf_counter()
        side: str | None = None
        logged: list[Mapping[str, np.ndarray]] = []

        def build(session: ModelSession) -> dict[str, np.ndarray]:
            tensors, columns = parse(session)
            logged.append(columns)
            return tensors

        try:
            route = self._route(name)
            slot, side = route.choose(key=key, version=version)
            answer = self._router.answer(route, slot, side, build, request_id=request_id, tuples=tuples)
        except Exception as exc:
            self._failed(name, version or "", exc, started, side, metrics)
            raise
        latency = time.perf_counter() - started
        if self._recorder is not None:
            self._recorder.record_columns(answer.prediction, logged[0], latency, labels=answer.labels,
                                          probabilities=answer.probabilities)
        if metrics is not None:
            metrics.observe(name, answer.prediction.version, "200", latency, answer.rows)
        return answer

    def _failed(self, name: str, version: str, exc: BaseException, started: float, side: str | None,
                metrics: RequestMetrics | None) -> None:
        status = int(getattr(exc, "http_status", 500))
        if metrics is not None:
            metrics.observe(name, version, str(status), time.perf_counter() - started)
        if self._recorder is not None and self._router.route(name) is not None:
            self._recorder.record_error(name, status, side)
