"""Which predict requests run on the event loop rather than on a worker thread.

A thread hop costs more than the model for a small request; a request may run inline
only when it is small and does no I/O and no waiting (its route loaded, no
micro-batcher: ``PredictionPipeline.runs_inline``)."""

from __future__ import annotations

from mlops_lite.inference.pipeline import PredictionPipeline

INLINE_ROWS = 16  # rows of a JSON or OIP request that run inline
INLINE_BYTES = 8 * 1024  # an Arrow body this small is a few rows


def inline_ok(pipeline: PredictionPipeline, name: str, rows: int) -> bool:
    """Whether a request of ``rows`` rows to deployment ``name`` may run on the event loop."""
    return rows <= INLINE_ROWS and pipeline.runs_inline(name)
