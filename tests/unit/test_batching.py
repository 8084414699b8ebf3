"""MicroBatcher over a real ModelSession (a skl2onnx model trained here)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
import pytest

from mlops_lite import BackendUnavailable, InvalidInput, TrainingSpec
from mlops_lite.inference import ModelSession
from mlops_lite.inference.batching import REASONS, MicroBatcher, size_buckets
from mlops_lite.training import train_classifier

from ..conftest import DATA, FEATURE_EXCLUDE


@pytest.fixture(scope="module")
def model() -> tuple[ModelSession, list[dict[str, Any]]]:
    """A logistic regression on 1,500 rows of loans.csv, and 200 other rows as instances."""
    table = pacsv.read_csv(DATA / "loans.csv")
    spec = TrainingSpec.infer(table, target="default", exclude=FEATURE_EXCLUDE)
    trained = train_classifier(table.slice(0, 1500), spec)
    session = ModelSession(trained.onnx, trained.signature, providers=["CPUExecutionProvider"])
    features = [*spec.numeric, *spec.categorical]
    rows = [{name: row[name] for name in features} for row in table.slice(2000, 200).to_pylist()]
    return session, rows


def _check(session: ModelSession, feed: dict[str, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> None:
    labels, probabilities = session.predict(feed)
    n = len(next(iter(feed.values())))
    assert got[0].shape == (n,) and got[1].shape == (n, 2)
    np.testing.assert_array_equal(got[0], labels)
    np.testing.assert_allclose(got[1], probabilities, rtol=1e-5, atol=1e-6)


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` on ``count`` threads started together; answer results (or exceptions) in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_requests_get_their_own_rows_and_share_batches(model) -> None:
    session, rows = model
    seen: list[tuple[int, int, float, str]] = []
    batcher = MicroBatcher(session.predict, max_batch_rows=64, name="loans",
                           on_batch=lambda *batch: seen.append(batch))
    threads, per_thread = 16, 50

    def client(i: int) -> int:
        rng = random.Random(i)
        done = 0
        for _ in range(per_thread):
            size = rng.choice((1, 1, 1, 2, 3, 5, 8, 13))
            start = rng.randrange(len(rows) - size)
            feed = session.build_feed(rows[start:start + size])
            _check(session, feed, batcher.submit(feed))
            done += size
        return done

    results = _in_threads(threads, client)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert batcher.close()
    stats = batcher.stats()
    assert stats.requests == threads * per_thread
    assert stats.rows == sum(results)
    assert stats.batches < stats.requests  # requests shared run() calls
    assert stats.max_batch_rows_seen <= 64 and stats.mean_batch_requests > 1
    assert stats.failed_batches == 0 and stats.by_reason["full"] + stats.by_reason["drained"] == stats.batches
    assert stats.by_reason["timeout"] == 0 and stats.by_reason["oversize"] == 0
    assert sum(count for _, count in stats.histogram) == stats.batches
    assert stats.cumulative_histogram()[-1] == (float("inf"), stats.batches)
    assert stats.mean_queue_wait_ms >= 0 and stats.max_queue_wait_ms >= stats.mean_queue_wait_ms
    # the hook saw every batch
    assert len(seen) == stats.batches and sum(s[0] for s in seen) == stats.rows
    assert sum(s[1] for s in seen) == stats.requests and {s[3] for s in seen} <= set(REASONS)


def test_a_lone_request_is_not_held_back(model) -> None:
    session, rows = model
    with MicroBatcher(session.predict) as batcher:
        feed = session.build_feed(rows[:3])
        _check(session, feed, batcher.submit(feed))
        stats = batcher.stats()
    assert (stats.batches, stats.requests, stats.rows) == (1, 1, 3)
    assert dict(stats.by_reason) == {"full": 0, "timeout": 0, "drained": 1, "oversize": 0}


def test_full_releases_a_batch_before_its_wait_is_over(model) -> None:
    session, rows = model
    # A wait far longer than the test: only reaching 8 rows can release the batch.
    batcher = MicroBatcher(session.predict, max_batch_rows=8, max_wait_ms=60_000)
    feeds = [session.build_feed(rows[i:i + 2]) for i in range(0, 8, 2)]
    results = _in_threads(4, lambda i: batcher.submit(feeds[i]))
    for feed, got in zip(feeds, results, strict=True):
        _check(session, feed, got)
    stats = batcher.stats()
    assert (stats.batches, stats.requests, stats.rows) == (1, 4, 8)
    assert stats.by_reason["full"] == 1
    assert dict(stats.histogram)[8] == 1
    assert batcher.close()


def test_timeout_releases_a_partial_batch(model) -> None:
    session, rows = model
    batcher = MicroBatcher(session.predict, max_batch_rows=256, max_wait_ms=30)
    feeds = [session.build_feed(rows[i:i + 1]) for i in range(3)]
    results = _in_threads(3, lambda i: batcher.submit(feeds[i]))
    for feed, got in zip(feeds, results, strict=True):
        _check(session, feed, got)
    stats = batcher.stats()
    assert stats.requests == 3 and stats.rows == 3
    assert stats.by_reason["timeout"] == stats.batches >= 1
    assert stats.by_reason["full"] == stats.by_reason["drained"] == 0
    assert stats.max_queue_wait_ms >= 30  # the oldest request waited out max_wait_ms
    assert batcher.close()


def test_oversize_request_runs_alone(model) -> None:
    session, rows = model
    seen: list[tuple[int, str]] = []
    batcher = MicroBatcher(session.predict, max_batch_rows=4,
                           on_batch=lambda rows_, requests, wait_s, reason: seen.append((rows_, reason)))
    big = session.build_feed(rows[:10])
    _check(session, big, batcher.submit(big))
    stats = batcher.stats()
    assert stats.by_reason["oversize"] == 1 and stats.max_batch_rows_seen == 10
    assert stats.histogram[-1] == (float("inf"), 1)
    # Among small requests too: every answer is right and a big one never shares a run() call.
    feeds = [session.build_feed(rows[i:i + (10 if i % 4 == 0 else 1)]) for i in range(12)]
    results = _in_threads(12, lambda i: batcher.submit(feeds[i]))
    for feed, got in zip(feeds, results, strict=True):
        _check(session, feed, got)
    assert seen.count((10, "oversize")) == 4
    assert all(0 < n <= 4 and reason != "oversize" for n, reason in seen if n != 10)
    assert batcher.close()


def test_a_failed_run_reaches_every_waiter_and_the_next_batch_works(model) -> None:
    session, rows = model
    poison = float(-1)

    def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if (feed["income"] == poison).any():
            raise ValueError("poisoned batch")
        return session.predict(feed)

    batcher = MicroBatcher(run, max_batch_rows=3, max_wait_ms=60_000)  # released only when full
    feeds = [session.build_feed(rows[i:i + 1]) for i in range(3)]
    feeds[1]["income"] = np.array([[poison]], dtype=np.float32)
    results = _in_threads(3, lambda i: batcher.submit(feeds[i]))
    assert all(isinstance(r, ValueError) and str(r) == "poisoned batch" for r in results), results
    stats = batcher.stats()
    assert (stats.batches, stats.failed_batches, stats.requests) == (1, 1, 3)
    # the worker goes on
    feeds = [session.build_feed(rows[i:i + 1]) for i in range(3, 6)]
    results = _in_threads(3, lambda i: batcher.submit(feeds[i]))
    for feed, got in zip(feeds, results, strict=True):
        _check(session, feed, got)
    assert batcher.stats().failed_batches == 1 and batcher.stats().batches == 2
    assert batcher.close()


def test_a_run_answering_the_wrong_rows_is_an_error_for_its_batch(model) -> None:
    session, rows = model
    batcher = MicroBatcher(lambda feed: session.predict({k: v[:1] for k, v in feed.items()}))
    with pytest.raises(RuntimeError, match="1 rows of labels for a batch of 2"):
        batcher.submit(session.build_feed(rows[:2]))
    assert batcher.close()


def test_close_finishes_in_flight_and_queued_work_then_refuses(model) -> None:
    session, rows = model
    started, gate = threading.Event(), threading.Event()

    def run(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        started.set()
        assert gate.wait(10)
        return session.predict(feed)

    batcher = MicroBatcher(run, max_batch_rows=2)
    feeds = [session.build_feed(rows[i:i + 1]) for i in range(5)]
    results: list[Any] = [None] * 5

    def client(i: int) -> None:
        results[i] = batcher.submit(feeds[i])

    first = threading.Thread(target=client, args=(0,))
    first.start()
    assert started.wait(10)  # request 0 is in flight, held by the gate
    others = [threading.Thread(target=client, args=(i,)) for i in range(1, 5)]
    for thread in others:
        thread.start()
    while batcher.stats().queued < 4:  # the four others are queued behind it
        threading.Event().wait(0.005)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    while not batcher.closed:
        threading.Event().wait(0.005)
    with pytest.raises(BackendUnavailable, match="closed"):
        batcher.submit(feeds[0])
    gate.set()
    closer.join(10)
    for thread in (first, *others):
        thread.join(10)
    for feed, got in zip(feeds, results, strict=True):
        _check(session, feed, got)
    assert batcher.stats().requests == 5 and batcher.stats().queued == 0
    assert not batcher._thread.is_alive()
    assert batcher.close()  # twice is harmless
    with pytest.raises(BackendUnavailable):
        batcher.submit(feeds[1])


def test_bad_settings_and_feeds_are_refused(model) -> None:
    session, rows = model
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidInput) as info:
            MicroBatcher(session.predict, max_batch_rows=bad)  # type: ignore[arg-type]
        assert info.value.field == "max_batch_rows"
    for bad_wait in (-1, float("nan"), float("inf")):
        with pytest.raises(InvalidInput) as info:
            MicroBatcher(session.predict, max_wait_ms=bad_wait)
        assert info.value.field == "max_wait_ms"
    with MicroBatcher(session.predict) as batcher:
        feed = session.build_feed(rows[:2])
        with pytest.raises(InvalidInput, match="rows"):
            batcher.submit({**feed, "income": feed["income"][:1]})
        with pytest.raises(InvalidInput):
            batcher.submit({})
        with pytest.raises(InvalidInput, match="no rows"):
            batcher.submit({k: v[:0] for k, v in feed.items()})
        assert batcher.stats().batches == 0


def test_size_buckets() -> None:
    assert size_buckets(256) == (1, 2, 4, 8, 16, 32, 64, 128, 256, float("inf"))
    assert size_buckets(100) == (1, 2, 4, 8, 16, 32, 64, 100, float("inf"))
    assert size_buckets(1) == (1, float("inf"))
