"""Tracking: experiments' runs, params, metrics and artifacts.

``Tracking`` and ``ActiveRun`` load on first use (PEP 562), so the HTTP client can
import the records without the SQL store behind the local facet."""

import importlib as _importlib
import typing as _typing

from mlops_lite.tracking.records import ExperimentRecord, MetricPoint, RunComparison

if _typing.TYPE_CHECKING:
    from mlops_lite.tracking.runs import ActiveRun, Tracking

__all__ = ["ActiveRun", "ExperimentRecord", "MetricPoint", "RunComparison", "Tracking"]


def __getattr__(name: str) -> _typing.Any:
    if name not in ("ActiveRun", "Tracking"):
        raise AttributeError(f"module 'mlops_lite.tracking' has no attribute {name!r}")
    value = getattr(_importlib.import_module("mlops_lite.tracking.runs"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
