"""The data plane: loaded model sessions and the traffic routes over them.

A ``Router`` reads no metadata database. It is told what each deployment is (a
``DeploymentRecord`` and the signatures of its versions), pushed by the control
plane in the same process or polled over HTTP by a separate serving process, and
loads ONNX files by digest from the content-addressed store. So any number of
processes can serve one deployment.

Hot swap: ``apply`` loads and warms every session a new route needs off the
request path, then replaces the route in one dictionary assignment; a request
holds the route it started with, so none is dropped or answered by half of each.
A file that is missing, corrupt or does not match its digest fails ``apply``
with a clear error and the previous route keeps serving.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_lite.errors import IntegrityError, InvalidInput, MlopsLiteError, NotFound
from mlops_lite.inference.columnar import ColumnRows
from mlops_lite.inference.session import ModelSession
from mlops_lite.records import DeploymentRecord, Prediction

if TYPE_CHECKING:
    from mlops_lite.inference.batching import BatcherStats, MicroBatcher

log = logging.getLogger("mlops_lite.inference")

# A shadow's answer, the request's rows and its latency; what it returns is ignored
# (``Monitoring.record`` answers whether it queued them).
ShadowHook = Callable[[Prediction, list[dict[str, Any]], float], object]
# A micro-batch run: digest, rows, requests, queue wait (s), why it was released.
BatchHook = Callable[[str, int, int, float, str], None]


@dataclass(frozen=True)
class Slot:
    """One loaded version inside a route."""

    model: str
    version: str
    digest: str
    session: ModelSession
    batcher: MicroBatcher | None = None

    def run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.batcher is not None:
            return self.batcher.submit(feed)
        return self.session.predict(feed)


@dataclass(frozen=True)
class Answer:
    """A prediction with the tensors it came from and went to (columnar callers answer
    and log from these without going through rows). ``prediction`` holds the rows as
    tuples only when they were asked for; who answered is in it either way."""

    prediction: Prediction
    feed: dict[str, np.ndarray]
    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Route:
    record: DeploymentRecord
    primary: Slot
    candidate: Slot | None

    def pick(self, key: str | None) -> tuple[Slot, str]:
        """The slot that answers a request, and its name (primary or canary)."""
        record = self.record
        if record.strategy != "canary" or self.candidate is None or not record.weight:
            return self.primary, "primary"
        if key is not None:  # sticky: the same key lands on the same side while the weight holds
            bucket = int.from_bytes(hashlib.blake2b(f"{record.name}\0{key}".encode(), digest_size=8).digest(),
                                    "big") / 2.0**64
        else:
            bucket = random.random()
        return (self.candidate, "canary") if bucket < record.weight else (self.primary, "primary")

    def choose(self, *, key: str | None = None, version: str | None = None) -> tuple[Slot, str]:
        """The slot that answers a request and its side: the version named, else the one the
        strategy picks (sticky by ``key``). InvalidInput for a bad key, NotFound for a
        version this deployment does not serve."""
        if version is not None:
            slot = self.slot_for_version(version)
            return slot, "primary" if slot is self.primary else "canary"
        if key is not None and (not isinstance(key, str) or len(key) > 256):
            raise InvalidInput("key must be a string of at most 256 characters", field="key",
                               expected="a string such as a user or session id")
        return self.pick(key)

    def slot_for_version(self, version: str) -> Slot:
        for slot in (self.primary, self.candidate):
            if slot is not None and slot.version == version:
                return slot
        raise NotFound(f"deployment {self.record.name!r} does not serve version {version!r}")


@dataclass(frozen=True)
class ServingStats:
    """A snapshot of what a router serves, for metrics: the routes, each session's load
    time and each micro-batcher's figures (by digest), and shadow traffic lost."""

    routes: dict[str, Route]
    load_seconds: dict[str, float]
    batches: dict[str, BatcherStats]
    shadow_dropped: int
    shadow_errors: int


class Router:
    """Routes, sessions by digest, and shadow traffic (see the module doc)."""

    def __init__(self, load: Callable[[str], bytes], *, providers: list[str], intra_op_threads: int = 1,
                 max_batch_size: int = 10_000, batch_rows: int = 0, batch_wait_ms: float = 0.0,
                 shadow_queue: int = 256, on_shadow: ShadowHook | None = None,
                 on_batch: BatchHook | None = None) -> None:
        """``load`` reads an ONNX file by digest; ``on_shadow`` receives each shadow answer
        (off the request path), ``on_batch`` each micro-batch run."""
        self._load = load
        self.providers = list(providers)
        self._threads = intra_op_threads
        self._max_batch = max_batch_size
        self._batch_rows = batch_rows
        self._batch_wait_ms = batch_wait_ms
        self._sessions: dict[str, Slot] = {}
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.load_seconds: dict[str, float] = {}
        self._on_shadow = on_shadow
        self._on_batch = on_batch
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._shadow_limit = shadow_queue
        self._shadow_pending = 0
        self.shadow_dropped = 0
        self.shadow_errors = 0

    @property
    def batching(self) -> bool:
        """Whether requests wait on a micro-batcher (they must not run on an event loop)."""
        return self._batch_rows > 1

    # ---- the control side --------------------------------------------------------
    def apply(self, record: DeploymentRecord, signatures: Mapping[str, dict[str, Any]]) -> Route:
        """Load and warm what ``record`` needs, then switch the route in one step."""
        primary = self.load(record.model, record.version, record.digest, signatures)
        candidate = None
        if record.candidate_digest:
            candidate = self.load(record.candidate_model or record.model, record.candidate_version or "",
                                   record.candidate_digest, signatures)
        route = Route(record=record, primary=primary, candidate=candidate)
        with self._lock:
            current = self._routes.get(record.name)
            if current is None or current.record.revision <= record.revision:
                self._routes[record.name] = route
            else:
                route = current  # a newer revision was applied meanwhile; keep it
        return route

    def remove(self, name: str) -> None:
        with self._lock:
            self._routes.pop(name, None)

    def route(self, name: str) -> Route | None:
        return self._routes.get(name)

    def routes(self) -> dict[str, Route]:
        return dict(self._routes)

    def load(self, model: str, version: str, digest: str, signatures: Mapping[str, dict[str, Any]]) -> Slot:
        """The slot for a version, loading and warming its session once per digest."""
        cached = self._sessions.get(digest)
        if cached is not None:
            return Slot(model, version, digest, cached.session, cached.batcher)
        if digest not in signatures:
            raise NotFound(f"no signature for {model}@{version} ({digest[:12]})")
        started = time.perf_counter()
        data = self._load(digest)  # verified against the digest by the object store
        try:
            session = ModelSession(data, signatures[digest], providers=self.providers,
                                   intra_op_threads=self._threads, max_batch_size=self._max_batch)
            session.predict(_warm_feed(session))  # warm off the request path
        except MlopsLiteError:
            raise
        except Exception as exc:
            raise IntegrityError(f"model {model}@{version} ({digest[:12]}) cannot be loaded: {exc}",
                                 details={"digest": digest}) from exc
        batcher = None
        if self._batch_rows > 1:
            from mlops_lite.inference.batching import MicroBatcher

            def on_batch(rows: int, requests: int, wait_s: float, reason: str, _d: str = digest) -> None:
                if self._on_batch is not None:
                    self._on_batch(_d, rows, requests, wait_s, reason)

            batcher = MicroBatcher(session.predict, max_batch_rows=self._batch_rows,
                                   max_wait_ms=self._batch_wait_ms, name=f"{model}@{version}", on_batch=on_batch)
        slot = Slot(model, version, digest, session, batcher)
        with self._lock:
            self._sessions.setdefault(digest, slot)
            slot = self._sessions[digest]
        self.load_seconds[digest] = time.perf_counter() - started
        return Slot(model, version, digest, slot.session, slot.batcher)

    # ---- the request path ----------------------------------------------------------
    def get(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is None:
            raise NotFound(f"deployment {name!r} does not exist or is not loaded")
        return route

    def predict(self, name: str, instances: Any, *, key: str | None = None) -> Prediction:
        """Answer ``instances`` on the loaded route of ``name`` (nothing logged or counted)."""
        route = self.get(name)
        slot, side = route.choose(key=key)
        return self.answer(route, slot, side, lambda session: session.build_feed(instances), instances).prediction

    def answer(self, route: Route, slot: Slot, side: str, build: Callable[[ModelSession], dict[str, np.ndarray]],
               instances: Sequence[dict[str, Any]] | None = None, *, request_id: str | None = None,
               tuples: bool = True) -> Answer:
        """Run ``slot`` of ``route`` (``Route.choose`` picked it) on the feed ``build`` makes
        for its session (a canary may have other inputs than the primary), and mirror the
        request to a shadow when the primary answered it. ``instances`` are the request's
        rows for a shadow that needs them; None: a row view over the feed (columnar
        requests). ``tuples``: the prediction carries the rows as tuples (a JSON answer);
        without, it says who answered only (for callers that answer from the arrays)."""
        feed = build(slot.session)
        labels, probabilities = slot.run(feed)
        request_id = request_id or uuid.uuid4().hex
        if tuples:
            prediction = _prediction(request_id, route.record.name, slot, side, labels, probabilities)
        else:
            prediction = Prediction(request_id=request_id, deployment=route.record.name, model=slot.model,
                                    version=slot.version, digest=slot.digest, predictions=(), probabilities=(),
                                    classes=slot.session.classes, slot=side)
        if (route.record.strategy == "shadow" and route.candidate is not None and slot is route.primary
                and self._on_shadow is not None):
            rows = instances if instances is not None else ColumnRows(feed, len(labels))
            self._mirror(route.candidate, request_id, route.record.name, rows, feed)
        return Answer(prediction, feed, labels, probabilities)

    def _mirror(self, slot: Slot, request_id: str, name: str, instances: Sequence[dict[str, Any]],
                feed: dict[str, np.ndarray]) -> None:
        """Run the shadow off the request path; a full queue drops the mirror, never the request."""
        with self._lock:
            if self._shadow_pending >= self._shadow_limit:
                self.shadow_dropped += 1
                return
            self._shadow_pending += 1
            if self._shadow_pool is None:
                self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-lite-shadow")
            pool = self._shadow_pool

        def run() -> None:
            try:
                started = time.perf_counter()
                shadow_feed = feed if slot.session.inputs == self.get(name).primary.session.inputs \
                    else slot.session.build_feed(list(instances))
                labels, probabilities = slot.session.predict(shadow_feed)
                shadow = _prediction(request_id, name, slot, "shadow", labels, probabilities)
                hook = self._on_shadow
                if hook is not None:
                    hook(shadow, list(instances), time.perf_counter() - started)
            except Exception:
                self.shadow_errors += 1
                log.exception("shadow prediction for %s failed", name)
            finally:
                with self._lock:
                    self._shadow_pending -= 1

        pool.submit(run)

    def wait_for_shadows(self, timeout: float = 30.0) -> bool:
        """Wait until the shadow predictions mirrored so far are done (and handed to the
        hook); answers whether they were within ``timeout`` seconds."""
        with self._lock:
            pool = self._shadow_pool
        if pool is None:
            return True
        try:
            pool.submit(lambda: None).result(timeout)  # one worker: it runs after what was queued
        except TimeoutError:
            return False
        return True

    def stats(self) -> ServingStats:
        """What this router serves now (see ``ServingStats``)."""
        slots = list(self._sessions.values())
        return ServingStats(routes=self.routes(), load_seconds=dict(self.load_seconds),
                            batches={slot.digest: slot.batcher.stats() for slot in slots if slot.batcher is not None},
                            shadow_dropped=self.shadow_dropped, shadow_errors=self.shadow_errors)

    def ready(self) -> bool:
        return all(route.primary.session is not None for route in self._routes.values())

    def close(self) -> None:
        if self._shadow_pool is not None:
            self._shadow_pool.shutdown(wait=True)
        for slot in list(self._sessions.values()):
            if slot.batcher is not None:
                slot.batcher.close()


def _prediction(request_id: str, name: str, slot: Slot, side: str, labels: np.ndarray,
                probabilities: np.ndarray) -> Prediction:
    return Prediction(
        request_id=request_id, deployment=name, model=slot.model, version=slot.version, digest=slot.digest,
        predictions=tuple(labels.tolist()),
        probabilities=tuple(map(tuple, np.asarray(probabilities, dtype=np.float64).tolist())),
        classes=slot.session.classes, slot=side)


def _warm_feed(session: ModelSession) -> dict[str, np.ndarray]:
    return {spec["name"]: (np.zeros((1, 1), dtype=np.float32) if spec["type"] == "float"
                           else np.asarray([[""]], dtype=object)) for spec in session.inputs}
