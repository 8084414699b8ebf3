"""Values the tracking facet returns beyond ``RunRecord`` (frozen, like mlops_lite.records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlops_lite.records import RunRecord


@dataclass(frozen=True)
class ExperimentRecord:
    name: str
    created_at: datetime
    description: str = ""
    tags: dict[str, Any] = field(default_factory=dict)
    created_by: str | None = None
    runs: int = 0


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric: its step, value and when it was measured (UTC)."""

    step: int
    value: float
    timestamp: datetime


@dataclass(frozen=True)
class RunComparison:
    """Runs side by side. ``params[key][run_id]`` and ``metrics[key][run_id]`` (the
    latest value, at the highest step) are None where a run lacks the key; a key
    differs when its values are not all equal, a missing value counting as a value."""

    run_ids: tuple[str, ...]
    runs: tuple[RunRecord, ...]
    params: dict[str, dict[str, str | None]]
    metrics: dict[str, dict[str, float | None]]
    differing_params: tuple[str, ...]
    differing_metrics: tuple[str, ...]

    @property
    def same_params(self) -> tuple[str, ...]:
        return tuple(k for k in self.params if k not in self.differing_params)

    def rows(self, *, only_differences: bool = False) -> list[tuple[str, str, tuple[Any, ...], bool]]:
        """(kind "param" | "metric", key, one value per run in ``run_ids`` order, differs),
        params first, each kind sorted by key: what a side-by-side table prints."""
        out: list[tuple[str, str, tuple[Any, ...], bool]] = []
        for kind, values, differing in (("param", self.params, self.differing_params),
                                        ("metric", self.metrics, self.differing_metrics)):
            for key in sorted(values):
                differs = key in differing
                if differs or not only_differences:
                    out.append((kind, key, tuple(values[key].get(r) for r in self.run_ids), differs))
        return out
