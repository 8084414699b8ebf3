"""Dynamic micro-batching: concurrent predict requests share one onnxruntime call.

Server worker threads call ``MicroBatcher.submit(feed)`` and block; one background
thread concatenates the queued feeds (``np.concatenate`` per input along axis 0),
makes one ``run(feed)`` call for them, and hands each request its own rows back.

A batch is released when

- ``full``: the queued rows reach ``max_batch_rows`` (or the next request would not fit);
- ``timeout``: the oldest queued request has waited ``max_wait_ms`` (when it is > 0);
- ``drained``: with ``max_wait_ms == 0``, as soon as the worker is free, with whatever is
  queued: no added wait under light load, batches under heavy load (requests queue up
  while the previous batch runs); also how the last requests go when closing;
- ``oversize``: a single request larger than ``max_batch_rows`` runs alone.

An exception raised by ``run`` is delivered to every request of that batch (re-raised
by each ``submit``) and the worker goes on with the next batch.

    batcher = MicroBatcher(session.predict, max_batch_rows=256, max_wait_ms=0, name="loans")
    labels, probabilities = batcher.submit(session.build_feed(instances))
    batcher.stats()   # BatcherStats: batches, rows, by reason, sizes histogram, queue wait
    batcher.close()
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from mlops_lite.errors import BackendUnavailable, InvalidInput

log = logging.getLogger("mlops_lite.inference.batching")

Feed = dict[str, np.ndarray]
Result = tuple[np.ndarray, np.ndarray]
RunFn = Callable[[Feed], Result]
OnBatch = Callable[[int, int, float, str], None]

FULL, TIMEOUT, DRAINED, OVERSIZE = "full", "timeout", "drained", "oversize"
REASONS: tuple[str, ...] = (FULL, TIMEOUT, DRAINED, OVERSIZE)


def size_buckets(max_batch_rows: int) -> tuple[float, ...]:
    """Upper bounds of the batch-size histogram: 1, 2, 4, ... below ``max_batch_rows``,
    then ``max_batch_rows`` itself, then ``inf`` (oversize batches)."""
    bounds: list[float] = []
    bound = 1
    while bound < max_batch_rows:
        bounds.append(bound)
        bound *= 2
    bounds.append(max_batch_rows)
    bounds.append(math.inf)
    return tuple(bounds)


@dataclass(frozen=True)
class BatcherStats:
    """What a ``MicroBatcher`` has done since it was made (a snapshot)."""

    name: str
    max_batch_rows: int
    max_wait_ms: float
    batches: int  # run() calls, failed ones included
    rows: int  # rows in those batches
    requests: int  # requests answered (with a result or an error)
    failed_batches: int  # batches whose run() raised
    by_reason: MappingProxyType[str, int]  # batches per release reason, every reason present
    mean_batch_rows: float
    max_batch_rows_seen: int
    mean_batch_requests: float
    mean_queue_wait_ms: float  # per request: from submit to its batch's release
    max_queue_wait_ms: float
    mean_run_ms: float  # per batch: the run() call, concatenation and split included
    histogram: tuple[tuple[float, int], ...]  # (upper bound, batches in that bucket), not cumulative
    queued: int  # requests waiting at the time of the snapshot

    def cumulative_histogram(self) -> tuple[tuple[float, int], ...]:
        """Prometheus-style buckets: batches with at most ``bound`` rows (``le``)."""
        out, running = [], 0
        for bound, count in self.histogram:
            running += count
            out.append((bound, running))
        return tuple(out)


class _Request:
    __slots__ = ("done", "enqueued", "error", "feed", "result", "rows")

    def __init__(self, feed: Feed, rows: int) -> None:
        self.feed = feed
        self.rows = rows
        self.enqueued = time.monotonic()
        self.result: Result | None = None
        self.error: BaseException | None = None
        # A bare lock as a one-shot signal (cheaper than an Event): held until answered.
        self.done = threading.Lock()
        self.done.acquire()


class MicroBatcher:
    """Batch concurrent ``run(feed)`` calls into one, on one background thread.

    ``run`` takes a feed of ``[n, ...]`` arrays (every request must have the same inputs)
    and answers ``(labels, probabilities)`` with ``n`` rows each; it is only ever called
    from the batcher's thread. ``on_batch(rows, requests, wait_s, reason)`` is called on
    that thread after each batch, before its requests are released (keep it cheap);
    ``wait_s`` is how long the batch's oldest request waited in the queue.
    """

    def __init__(self, run: RunFn, *, max_batch_rows: int = 256, max_wait_ms: float = 0.0, name: str = "",
                 on_batch: OnBatch | None = None) -> None:
        if isinstance(max_batch_rows, bool) or not isinstance(max_batch_rows, int) or max_batch_rows < 1:
            raise InvalidInput(f"max_batch_rows is {max_batch_rows!r}", field="max_batch_rows",
                               expected="an integer >= 1")
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, int | float) \
                or not math.isfinite(max_wait_ms) or max_wait_ms < 0:
            raise InvalidInput(f"max_wait_ms is {max_wait_ms!r}", field="max_wait_ms",
                               expected="a finite number of milliseconds >= 0")
        self._run = run
        self.max_batch_rows = max_batch_rows
        self.max_wait_ms = float(max_wait_ms)
        self._max_wait_s = self.max_wait_ms / 1000.0
        self.name = name
        self._on_batch = on_batch
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._closing = False
        # statistics, written by the worker under _stats_lock
        self._stats_lock = threading.Lock()
        self._bounds = size_buckets(max_batch_rows)
        self._bucket_counts = [0] * len(self._bounds)
        self._batches = self._rows = self._requests = self._failed = self._max_rows_seen = 0
        self._reasons = dict.fromkeys(REASONS, 0)
        self._wait_total_s = self._wait_max_s = self._run_total_s = 0.0
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"mlops-lite-batcher{'-' + name if name else ''}")
        self._thread.start()

    # ----------------------------------------------------------------------------- callers

    def submit(self, feed: Feed) -> Result:
        """Queue ``feed``, block until its batch has run, answer its own rows.

        Re-raises the exception of a failed ``run``; raises BackendUnavailable once closed."""
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("MicroBatcher.submit called from its own worker thread (run() would deadlock)")
        request = _Request(feed, _rows(feed))
        with self._cond:
            if self._closing:
                raise BackendUnavailable(f"the micro-batcher{_for(self.name)} is closed")
            self._queue.append(request)
            self._queued_rows += request.rows
            self._cond.notify()
        request.done.acquire()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def stats(self) -> BatcherStats:
        with self._cond:
            queued = len(self._queue)
        with self._stats_lock:
            batches, requests = self._batches, self._requests
            return BatcherStats(
                name=self.name, max_batch_rows=self.max_batch_rows, max_wait_ms=self.max_wait_ms,
                batches=batches, rows=self._rows, requests=requests, failed_batches=self._failed,
                by_reason=MappingProxyType(dict(self._reasons)),
                mean_batch_rows=self._rows / batches if batches else 0.0,
                max_batch_rows_seen=self._max_rows_seen,
                mean_batch_requests=requests / batches if batches else 0.0,
                mean_queue_wait_ms=self._wait_total_s * 1e3 / requests if requests else 0.0,
                max_queue_wait_ms=self._wait_max_s * 1e3,
                mean_run_ms=self._run_total_s * 1e3 / batches if batches else 0.0,
                histogram=tuple(zip(self._bounds, self._bucket_counts, strict=True)),
                queued=queued)

    @property
    def closed(self) -> bool:
        return self._closing

    def close(self, timeout: float | None = 10.0) -> bool:
        """Refuse new requests, finish the queued ones, stop the thread.

        Answers whether the thread stopped within ``timeout`` seconds (if not, it still
        finishes the queue in the background). Closing twice is harmless."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if threading.get_ident() != self._thread.ident:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # ----------------------------------------------------------------------------- worker

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:  # closing, and nothing left
                    return
                if self._max_wait_s > 0:
                    deadline = self._queue[0].enqueued + self._max_wait_s
                    while self._queued_rows < self.max_batch_rows and not self._closing:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                batch, reason = self._take()
            self._execute(batch, reason)

    def _take(self) -> tuple[list[_Request], str]:
        """Pop the next batch from the queue (called with the condition held)."""
        queue, limit = self._queue, self.max_batch_rows
        first = queue.popleft()
        if first.rows > limit:
            self._queued_rows -= first.rows
            return [first], OVERSIZE
        batch, rows = [first], first.rows
        while queue and rows + queue[0].rows <= limit:
            request = queue.popleft()
            batch.append(request)
            rows += request.rows
        self._queued_rows -= rows
        if rows >= limit or queue:  # full, or the next request does not fit
            reason = FULL
        elif self._max_wait_s > 0 and not self._closing:
            reason = TIMEOUT
        else:
            reason = DRAINED
        return batch, reason

    def _execute(self, batch: list[_Request], reason: str) -> None:
        released = time.monotonic()
        rows = sum(r.rows for r in batch)
        error: BaseException | None = None
        try:
            if len(batch) == 1:
                batch[0].result = self._call(batch[0].feed, rows)
            else:
                feed = {key: np.concatenate([r.feed[key] for r in batch], axis=0) for key in batch[0].feed}
                labels, probabilities = self._call(feed, rows)
                offset = 0
                for request in batch:
                    end = offset + request.rows
                    request.result = (labels[offset:end], probabilities[offset:end])
                    offset = end
        except BaseException as exc:  # delivered to every waiter of this batch; the worker goes on
            error = exc
            for request in batch:
                request.result, request.error = None, exc
        finished = time.monotonic()
        waits = [released - r.enqueued for r in batch]
        with self._stats_lock:
            self._batches += 1
            self._rows += rows
            self._requests += len(batch)
            self._failed += error is not None
            self._reasons[reason] += 1
            self._max_rows_seen = max(self._max_rows_seen, rows)
            self._wait_total_s += sum(waits)
            self._wait_max_s = max(self._wait_max_s, *waits)
            self._run_total_s += finished - released
            self._bucket_counts[_bucket(self._bounds, rows)] += 1
        if self._on_batch is not None:
            try:
                self._on_batch(rows, len(batch), max(waits), reason)
            except Exception:
                log.exception("on_batch callback of micro-batcher%s failed", _for(self.name))
        for request in batch:
            request.feed = {}  # do not keep the tensors alive through the caller's result
            request.done.release()

    def _call(self, feed: Feed, rows: int) -> Result:
        labels, probabilities = self._run(feed)
        for what, array in (("labels", labels), ("probabilities", probabilities)):
            if len(array) != rows:
                raise RuntimeError(f"run() answered {len(array)} rows of {what} for a batch of {rows} rows")
        return labels, probabilities


def _rows(feed: Any) -> int:
    if not isinstance(feed, dict) or not feed:
        raise InvalidInput("a feed must be a non-empty dict of input name -> array", field="feed",
                           expected="{input: array of [n, ...]}")
    rows: int | None = None
    for name, array in feed.items():
        shape = getattr(array, "shape", None)
        if not shape:
            raise InvalidInput(f"input {name!r} is not an array with a batch dimension", field=f"feed.{name}",
                               expected="an array of [n, ...]")
        if rows is None:
            rows = int(shape[0])
        elif int(shape[0]) != rows:
            raise InvalidInput(f"input {name!r} has {shape[0]} rows, the first input {rows}", field=f"feed.{name}",
                               expected=f"{rows} rows, as every other input")
    assert rows is not None
    if rows < 1:
        raise InvalidInput("the feed has no rows", field="feed", expected="at least one row")
    return rows


def _bucket(bounds: tuple[float, ...], rows: int) -> int:
    for index, bound in enumerate(bounds):
        if rows <= bound:
            return index
    return len(bounds) - 1


def _for(name: str) -> str:
    return f" {name!r}" if name else ""
