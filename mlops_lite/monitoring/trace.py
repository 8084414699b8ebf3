"""Trace one logged prediction back to what produced it.

``trace_prediction(monitoring, lineage, request_id)`` reads the request's rows from the Parquet
prediction log (after a flush: the log is written off the request path, in batches),
its latest feedback label, any shadow answers logged under the same id, and the
deployment's lineage at the moment it was answered (``lineage``: the deployments'
``lineage``, which the Platform passes to the monitoring facet).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from mlops_lite.clock import as_utc
from mlops_lite.errors import InvalidInput, NotFound
from mlops_lite.records import DeploymentLineage, PredictionTrace, ShadowAnswer

# Request ids are uuid4 hex here, and a feedback caller's own ids are plain tokens; the
# pattern also keeps the id safe to quote in the SQL over the log.
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_COLUMNS = 'request_id, deployment, model, version, digest, "at", latency_ms, features, prediction, probability, slot'


class LoggedPredictions(Protocol):
    """The prediction log as a trace reads it (the monitoring facet)."""

    def flush(self, timeout: float = 30.0) -> bool: ...

    def query(self, sql: str) -> Any: ...


def check_request_id(request_id: Any) -> str:
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise InvalidInput(f"bad request id {request_id!r}", field="request_id",
                           expected="a request id as a predict call answered it (letters, digits, '.', '_', ':', '-')")
    return request_id


def trace_prediction(monitoring: LoggedPredictions, lineage: Callable[[str, datetime], DeploymentLineage],
                     request_id: str) -> PredictionTrace:
    """The trace of ``request_id`` (see the module doc). NotFound when the log holds no
    answer to it; InvalidInput (field ``request_id``) for a malformed id."""
    request_id = check_request_id(request_id)
    monitoring.flush()
    rows = monitoring.query(f"SELECT {_COLUMNS} FROM predictions WHERE request_id = '{request_id}'").to_pylist()
    answered = [r for r in rows if (r["slot"] or "primary") != "shadow"]
    if not answered:
        raise NotFound(f"no logged prediction has request id {request_id!r}")
    first = answered[0]
    deployment = str(first["deployment"])
    shadows: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["slot"] == "shadow":
            shadows.setdefault((row["model"], row["version"], row["digest"]), []).append(row)
    label = monitoring.query(
        "SELECT label, \"at\" FROM feedback WHERE request_id = '" + request_id + "' AND deployment = '"
        + deployment.replace("'", "''") + "' ORDER BY \"at\" DESC LIMIT 1").to_pylist()
    at = as_utc(first["at"])
    return PredictionTrace(
        request_id=request_id, deployment=deployment, slot=first["slot"] or "primary", model=first["model"],
        version=first["version"], digest=first["digest"], at=at, latency_ms=first["latency_ms"],
        instances=tuple(json.loads(r["features"]) for r in answered),
        predictions=tuple(r["prediction"] for r in answered),
        probabilities=tuple(r["probability"] for r in answered),
        feedback=label[0]["label"] if label else None,
        feedback_at=as_utc(label[0]["at"]) if label else None,
        shadow=tuple(ShadowAnswer(model=model, version=version, digest=digest,
                                  predictions=tuple(r["prediction"] for r in group),
                                  probabilities=tuple(r["probability"] for r in group))
                     for (model, version, digest), group in shadows.items()),
        lineage=lineage(deployment, at))
