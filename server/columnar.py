"""Columnar bodies on the native predict route: an Arrow IPC stream in, JSON or Arrow out.

``POST /v1/deployments/{name}/predict`` with ``Content-Type: application/vnd.apache.arrow.stream``
carries one column per model input; the feed is made from the columns with numpy
(``mlops_lite.inference.columnar``), never row by row. The answer is the same JSON
record as for ``{"instances": [...]}``, or an Arrow IPC stream when the request's
``Accept`` asks for one. ``?key=`` is the canary stickiness key of the JSON body.

It runs as the route's ``before_request`` hook, so an Arrow body is answered before
Litestar would decode it as JSON; any other body falls through to the JSON handler.
The prediction pipeline (``platform.deployments.pipeline``) answers, logs and counts it.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import numpy as np
from litestar import Request, Response

from mlops_lite.inference.columnar import ARROW_STREAM, arrow_answer, feed_from_arrow
from mlops_lite.inference.pipeline import ColumnFeed, PredictionPipeline, RequestMetrics
from mlops_lite.inference.session import ModelSession
from mlops_lite.records import Prediction
from server.inline import INLINE_BYTES

TRUNCATED = b"mlops_lite.truncated"  # in an Arrow answer's schema metadata when rows were left out


def arrow_stream(table: Any, *, truncated: bool = False, metadata: dict[bytes, bytes] | None = None) -> Response[bytes]:
    """``table`` as an Arrow IPC stream answer, its types kept; ``metadata`` and, when rows
    were left out, ``TRUNCATED`` added to its schema metadata."""
    import pyarrow as pa

    extra = {**(metadata or {}), **({TRUNCATED: b"true"} if truncated else {})}
    if extra:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)


def _is_arrow(value: str) -> bool:
    return any(part.split(";")[0].strip().lower() == ARROW_STREAM for part in value.split(","))


async def arrow_predict(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Answer an Arrow predict request; None for any other body (the JSON handler's)."""
    if not _is_arrow(request.headers.get("content-type", "")):
        return None
    name = str(request.path_params["name"])
    key = request.query_params.get("key")
    raw = await request.body()
    pipeline: PredictionPipeline = request.app.state.platform.deployments.pipeline
    metrics = request.app.state.metrics
    as_arrow = _is_arrow(request.headers.get("accept", ""))
    if len(raw) <= INLINE_BYTES and pipeline.runs_inline(name):
        prediction, content = predict_arrow(pipeline, metrics, name, raw, key, as_arrow)
    else:
        prediction, content = await anyio.to_thread.run_sync(predict_arrow, pipeline, metrics, name, raw, key,
                                                             as_arrow)
    if content is not None:
        return Response(content, status_code=200, media_type=ARROW_STREAM)
    return Response(prediction, status_code=200)


def predict_arrow(pipeline: PredictionPipeline, metrics: RequestMetrics | None, name: str, raw: bytes,
                  key: str | None, as_arrow: bool) -> tuple[Prediction, bytes | None]:
    """Predict on the columns of ``raw``, logged with the values the client sent (float64 or
    integers, as the same rows sent as JSON are). Answers the prediction and, when
    ``as_arrow``, its Arrow IPC stream."""
    def parse(session: ModelSession) -> ColumnFeed:
        sent: dict[str, np.ndarray] = {}
        feed = feed_from_arrow(session, raw, sent)[0]
        return feed, sent or feed

    answer = pipeline.predict_columns(name, parse, key=key, metrics=metrics)
    prediction = answer.prediction
    return prediction, (arrow_answer(prediction, answer.labels, answer.probabilities) if as_arrow else None)
