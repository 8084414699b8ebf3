"""Monitoring: the prediction log, feedback labels, and SQL over both."""

from mlops_lite.monitoring.prediction_log import Feedback, Monitoring, PredictionLog

__all__ = ["Feedback", "Monitoring", "PredictionLog"]
