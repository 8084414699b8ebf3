"""Tracking: experiments' runs, params, metrics and artifacts."""

from mlops_lite.tracking.records import ExperimentRecord, MetricPoint, RunComparison
from mlops_lite.tracking.runs import ActiveRun, Tracking

__all__ = ["ActiveRun", "ExperimentRecord", "MetricPoint", "RunComparison", "Tracking"]
