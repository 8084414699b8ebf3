"""``platform.loop``: the closed loop's steps, as the flows call them in the daemon or on
a worker (mlops_lite/monitoring/loop.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class LoopAPI(Protocol):
    def check(self, deployment: str, *, since: datetime | str | None = None,
              debounce_s: float = 600.0) -> dict[str, Any]: ...

    def should_retrain(self, deployment: str, *, now: datetime | str | None = None,
                       debounce_s: float = 600.0) -> dict[str, Any]: ...

    def gate(self, deployment: str, model: str, version: str, *, since: datetime | str | None = None,
             target: str = "label", min_rows: int = 30) -> dict[str, Any]: ...

    def block(self, deployment: str, model: str, version: str, reasons: list[str],
              scores: dict[str, Any] | None = None) -> None: ...

    def judge_canary(self, deployment: str, *, since: datetime | str, min_requests: int = 20) -> dict[str, Any]: ...

    def finish(self, deployment: str, decision: str, reasons: list[str]) -> dict[str, Any]: ...

    def flow_finished(self, flow: str, *, failed: bool, details: dict[str, Any] | None = None) -> None: ...

    def request_retrain(self, deployment: str, *, reason: str = "") -> dict[str, Any]:
        """A person asks to retrain ``deployment`` now (audited ``loop.retrain_requested``):
        the daemon starts ``retrain-release`` at once (``started``), unless a release is in
        progress (``held`` says so); a process without the daemon's flows records it for
        the daemon's next monitoring pass (``pending``)."""
