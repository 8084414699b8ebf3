"""``platform.monitoring``: the prediction log and feedback labels of served deployments,
read back: one request traced, read-only SQL over the log, the log's counters, and true
labels recorded for logged requests.

Seams off the Protocol, each for a reason:
- ``record``, ``record_columns`` and ``record_error``: the serving path writes the log
  (every served request, each failed one counted); a caller that could append rows could
  fake the traffic that drift, quality and the retrain triggers judge.
- ``flush`` and ``close``: the log's writer thread belongs to the process that serves;
  ``trace`` flushes before it reads, and the platform's ``close()`` writes what is queued.
- ``log``, ``errors``, ``feedback`` and the folders: the store behind the facet.
- ``alerts``: its own facet, ``platform.alerts`` (``mlops_lite/api/alerts.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from mlops_lite.records import PredictionTrace, TrafficWindow

if TYPE_CHECKING:
    import pyarrow as pa


class MonitoringAPI(Protocol):
    def trace(self, request_id: str) -> PredictionTrace:
        """One logged request: its deployment, slot, version, time, input rows, answers,
        feedback label and the deployment's lineage then. NotFound when nothing logged
        answers it; InvalidInput (``request_id``) for a malformed id."""

    def stats(self) -> dict[str, int]:
        """The prediction log's counters in the process that serves: ``rows_logged``,
        ``rows_dropped``, ``rows_written``, ``write_errors``, ``batches``, ``rows_queued``."""

    def record_feedback(self, deployment: str, labels: Sequence[tuple[str, int | str]]) -> int:
        """True labels, as ``(request_id, label)`` pairs, for logged predictions of
        ``deployment``; answers how many were written. InvalidInput naming the pair."""

    def query(self, sql: str) -> pa.Table:
        """One SQL query over the views ``predictions``, ``feedback`` and ``errors`` (failed
        requests counted per deployment, second, slot and status) (Parquet under the home;
        see ``mlops_lite.monitoring.prediction_log``), answered as a pyarrow Table.
        InvalidInput (``sql``) when it fails."""

    def windows(self, *, count: int = 12, width_s: int = 300, until: datetime | str | None = None,
                deployment: str | None = None) -> list[TrafficWindow]:
        """Served traffic in the last ``count`` windows of ``width_s`` seconds ending at
        ``until`` (now), for every deployment or one: a ``TrafficWindow`` (requests, failed
        requests, p50/p99 latency) per deployment, slot (None: all together) and window
        with traffic, oldest first. Figures only, no row's content, so a viewer may read
        them. InvalidInput naming ``count``, ``width_s``, ``until`` or ``deployment``."""
