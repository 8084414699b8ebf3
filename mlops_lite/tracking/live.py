"""Runs open in this process, flushed at interpreter exit: the local run handle
(runs.py) and the HTTP client's (mlops_lite/client/tracking.py) both register here. No
store here: the client imports it."""

from __future__ import annotations

import atexit
import sys
import threading
from typing import Protocol


class BufferedRun(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def pending(self) -> int: ...

    def flush(self) -> object: ...


class LiveRuns:
    """Strong references: a run left open must not be collected with its buffer."""

    def __init__(self) -> None:
        self._runs: set[BufferedRun] = set()
        self._lock = threading.Lock()

    def add(self, run: BufferedRun) -> None:
        with self._lock:
            self._runs.add(run)

    def discard(self, run: BufferedRun) -> None:
        with self._lock:
            self._runs.discard(run)

    def flush_all(self) -> None:
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            pending = run.pending
            if not pending:
                continue
            try:
                run.flush()
            except Exception as exc:  # exiting: report, never raise
                print(f"mlops-lite: could not record the last {pending} buffered point(s) of run {run.id} "
                      f"at exit: {exc}", file=sys.stderr)


LIVE = LiveRuns()
atexit.register(LIVE.flush_all)
