"""Columnar bodies on the native predict route: an Arrow IPC stream in, JSON or Arrow out.

``POST /v1/deployments/{name}/predict`` with ``Content-Type: application/vnd.apache.arrow.stream``
carries one column per model input; the feed is made from the columns with numpy
(``mlops_lite.inference.columnar``), never row by row. The answer is the same JSON
record as for ``{"instances": [...]}``, or an Arrow IPC stream when the request's
``Accept`` asks for one. ``?key=`` is the canary stickiness key of the JSON body.

It runs as the route's ``before_request`` hook, so an Arrow body is answered before
Litestar would decode it as JSON; any other body falls through to the JSON handler.
"""

from __future__ import annotations

import time
from typing import Any

import anyio.to_thread
from litestar import Request, Response

from mlops_lite import Platform
from mlops_lite.inference.columnar import ARROW_STREAM, arrow_answer, feed_from_arrow
from mlops_lite.records import Prediction
from server.metrics import observe_failure

INLINE_BYTES = 8 * 1024  # a body this small is a few rows: a thread hop costs more than the model


def _is_arrow(value: str) -> bool:
    return any(part.split(";")[0].strip().lower() == ARROW_STREAM for part in value.split(","))


async def arrow_predict(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Answer an Arrow predict request; None for any other body (the JSON handler's)."""
    if not _is_arrow(request.headers.get("content-type", "")):
        return None
    name = str(request.path_params["name"])
    key = request.query_params.get("key")
    raw = await request.body()
    platform: Platform = request.app.state.platform
    metrics = request.app.state.metrics
    router = platform.deployments.router
    if len(raw) <= INLINE_BYTES and not router.batching and router.route(name) is not None:
        prediction, content = predict_arrow(platform, metrics, name, raw, key, _wants_arrow(request))
    else:
        prediction, content = await anyio.to_thread.run_sync(predict_arrow, platform, metrics, name, raw, key,
                                                             _wants_arrow(request))
    if content is not None:
        return Response(content, status_code=200, media_type=ARROW_STREAM)
    return Response(prediction, status_code=200)


def _wants_arrow(request: Request[Any, Any, Any]) -> bool:
    return _is_arrow(request.headers.get("accept", ""))


def predict_arrow(platform: Platform, metrics: Any, name: str, raw: bytes, key: str | None,
                  as_arrow: bool) -> tuple[Prediction, bytes | None]:
    """Predict on the columns of ``raw``; log and count it like the JSON path. Answers the
    prediction and, when ``as_arrow``, its Arrow IPC stream."""
    started = time.perf_counter()
    try:
        sent: dict[str, Any] = {}
        answer = platform.deployments.predict_with(name, lambda session: feed_from_arrow(session, raw, sent)[0],
                                                   key=key)
    except Exception as exc:
        observe_failure(metrics, platform, name, "", exc, started, getattr(exc, "slot", None))
        raise
    latency = time.perf_counter() - started
    prediction = answer.prediction
    rows = len(prediction.predictions)
    platform.monitoring.record_columns(prediction, sent or answer.feed, latency, labels=answer.labels,
                                       probabilities=answer.probabilities)
    metrics.observe(name, prediction.version, "200", latency, rows)
    return prediction, (arrow_answer(prediction, answer.labels, answer.probabilities) if as_arrow else None)
