"""One monitoring window of a deployment: drift, live quality, infra health.

Everything is computed with DuckDB over the Parquet prediction log (the typed
``f_<feature>`` columns) and the feedback labels, never by loading the log into
pandas. The result turns into alert ``Observation``s:

- ``drift.share``: the share of features whose PSI against the training reference
  passed its threshold (effect size, not p-values; see ``drift.py``), and
  ``drift.max_psi``: the largest one feature's PSI (one feature can break a model);
- ``quality.accuracy``, ``quality.f1``, ``quality.roc_auc``: predictions joined to
  feedback labels by request id (only when at least ``min_labels`` are labelled);
- ``latency.p50_ms``, ``latency.p99_ms``: server-side latency of the window;
- ``process.cpu_percent``, ``process.rss_mb``: this process's CPU and memory.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlops_lite.alerts import Observation
from mlops_lite.crypto.keys import DataKey
from mlops_lite.monitoring.drift import DriftReport, compute_drift
from mlops_lite.monitoring.prediction_log import FEATURE_PREFIX, log_connection, log_scan, unreadable

SERVED_SLOTS = ("primary", "canary")  # shadow answers reached nobody: not part of live quality
MIN_ATTEMPTS_FOR_ERROR_RATE = 20  # fewer requests than this give no error rate worth alerting on


@dataclass(frozen=True)
class WindowReport:
    deployment: str
    since: datetime | None
    until: datetime | None
    rows: int
    drift: DriftReport | None
    quality: dict[str, float] = field(default_factory=dict)
    infra: dict[str, float] = field(default_factory=dict)
    by_slot: dict[str, dict[str, float]] = field(default_factory=dict)
    errors_by_status: dict[str, int] = field(default_factory=dict)

    def observations(self) -> list[Observation]:
        evidence = {"deployment": self.deployment, "rows": self.rows,
                    "since": self.since.isoformat() if self.since else None,
                    "until": self.until.isoformat() if self.until else None}
        out = []
        if self.drift is not None:
            out.append(Observation("drift.share", self.deployment, self.drift.drifted_share,
                                   {**evidence, "drifted_features": list(self.drift.drifted_features),
                                    "psi": {f.feature: round(f.psi, 4) for f in self.drift.features}}))
            strongest = max(self.drift.features, key=lambda f: f.psi, default=None)
            if strongest is not None:
                out.append(Observation("drift.max_psi", self.deployment, strongest.psi,
                                       {**evidence, "feature": strongest.feature.removeprefix(FEATURE_PREFIX),
                                        "drifted_features": list(self.drift.drifted_features)}))
        for key in ("accuracy", "f1", "roc_auc"):
            if key in self.quality:
                out.append(Observation(f"quality.{key}", self.deployment, self.quality[key],
                                       {**evidence, "labelled": self.quality.get("labelled", 0)}))
        for key in ("p50_ms", "p99_ms"):
            if key in self.infra:
                out.append(Observation(f"latency.{key}", self.deployment, self.infra[key], evidence))
        if "error_rate" in self.infra and self.infra.get("attempts", 0) >= MIN_ATTEMPTS_FOR_ERROR_RATE:
            out.append(Observation("errors.rate", self.deployment, self.infra["error_rate"],
                                   {**evidence, "errors": self.infra["errors"], "attempts": self.infra["attempts"],
                                    "by_status": self.errors_by_status}))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "rows": self.rows,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "drift": self.drift.as_dict() if self.drift else None, "quality": self.quality,
                "infra": self.infra, "by_slot": self.by_slot, "errors_by_status": self.errors_by_status}


def check_window(predictions_dir: Path, feedback_dir: Path, deployment: str, reference: pa.Table,
                 features: Sequence[tuple[str, str]], *, since: datetime | None = None,
                 until: datetime | None = None, min_rows: int = 50, min_labels: int = 30,
                 positive: str = "1", psi_threshold: float = 0.2, share_threshold: float = 0.5,
                 errors_dir: Path | None = None, log_key: DataKey | None = None) -> WindowReport:
    """Drift, quality, latency and (with ``errors_dir``) error rate of ``deployment`` over
    ``[since, until)``.

    ``reference`` holds the training data's feature columns (named as the features);
    ``features`` is ``[(name, "numeric" | "categorical")]``. Drift needs ``min_rows``
    logged rows in the window, quality ``min_labels`` labelled ones. ``log_key``: the
    key of an encrypted log (``Monitoring.log_key``). A log file that does not verify is
    an IntegrityError naming the deployment."""
    import duckdb

    con = log_connection(log_key)
    try:
        return _check_window(con, predictions_dir, feedback_dir, deployment, reference, features, since=since,
                             until=until, min_rows=min_rows, min_labels=min_labels, positive=positive,
                             psi_threshold=psi_threshold, share_threshold=share_threshold,
                             errors_dir=errors_dir, log_key=log_key)
    except duckdb.Error as exc:
        damaged = unreadable(exc, f"monitoring window of {deployment!r}")
        if damaged is not None:
            raise damaged from exc
        raise
    finally:
        con.close()


def _check_window(con: Any, predictions_dir: Path, feedback_dir: Path, deployment: str, reference: pa.Table,
                  features: Sequence[tuple[str, str]], *, since: datetime | None, until: datetime | None,
                  min_rows: int, min_labels: int, positive: str, psi_threshold: float, share_threshold: float,
                  errors_dir: Path | None, log_key: DataKey | None) -> WindowReport:
    con.register("reference_raw", reference.select([name for name, _ in features]))
    con.execute("CREATE VIEW reference AS SELECT " + ", ".join(
        f'"{name}" AS "{FEATURE_PREFIX}{name}"' for name, _ in features) + " FROM reference_raw")
    where = [f"slot IN ({', '.join(repr(s) for s in SERVED_SLOTS)}) OR slot IS NULL"]
    params: list[Any] = []
    if since is not None:
        where.append('"at" >= ?')
        params.append(since)
    if until is not None:
        where.append('"at" < ?')
        params.append(until)
    source = log_scan(predictions_dir / f"deployment={deployment}", log_key, hive=False)
    if source is not None:
        con.execute(f"CREATE TABLE win AS SELECT * FROM {source} WHERE ({') AND ('.join(where)})", params)
    else:
        errors, by_status = _errors(con, errors_dir, deployment, where[1:], params, log_key)
        slots: dict[str, dict[str, float]] = {}
        return WindowReport(deployment, since, until, 0, None, infra=_with_errors({}, slots, errors),
                            by_slot=slots, errors_by_status=by_status)
    rows = int(con.execute("SELECT count(*) FROM win").fetchone()[0])
    present = {r[0] for r in con.execute("DESCRIBE win").fetchall()}
    usable = [(name, kind) for name, kind in features if f"{FEATURE_PREFIX}{name}" in present]
    drift = None
    if rows >= min_rows and usable:
        drift = compute_drift(con, "reference", "win", [(f"{FEATURE_PREFIX}{n}", k) for n, k in usable],
                              psi_threshold=psi_threshold, share_threshold=share_threshold)
    infra: dict[str, float] = {}
    if rows:
        p50, p99, requests = con.execute(
            "SELECT quantile_cont(latency_ms, 0.5), quantile_cont(latency_ms, 0.99), "
            "count(DISTINCT request_id) FROM win").fetchone()
        infra = {"p50_ms": float(p50), "p99_ms": float(p99), "requests": float(requests)}
    infra.update(_process())
    quality: dict[str, float] = {}
    by_slot: dict[str, dict[str, float]] = {}
    labels = log_scan(feedback_dir / f"deployment={deployment}", log_key, hive=False) if rows else None
    if labels is not None:
        con.execute(f"CREATE VIEW feedback AS SELECT request_id, last(label ORDER BY \"at\") AS label "
                    f"FROM {labels} GROUP BY request_id")
        con.execute("CREATE TABLE joined AS SELECT w.slot, w.version, w.prediction, w.probability, f.label "
                    "FROM win w JOIN feedback f USING (request_id)")
        quality = _quality(con, "TRUE", positive)
        if quality.get("labelled", 0) < min_labels:
            quality = {"labelled": quality.get("labelled", 0)}
        for (slot,) in con.execute("SELECT DISTINCT coalesce(slot, 'primary') FROM joined").fetchall():
            by_slot[slot] = _quality(con, f"coalesce(slot, 'primary') = '{slot}'", positive)
    for slot, figures in _latency_by_slot(con).items():
        by_slot.setdefault(slot, {}).update(figures)
    errors, by_status = _errors(con, errors_dir, deployment, where[1:], params, log_key)
    infra = _with_errors(infra, by_slot, errors)
    return WindowReport(deployment, since, until, rows, drift, quality, infra, by_slot, by_status)


def _quality(con: Any, where: str, positive: str) -> dict[str, float]:
    n, correct, tp, fp, fn = con.execute(
        f"SELECT count(*), count(*) FILTER (prediction = label), "
        f"count(*) FILTER (prediction = '{positive}' AND label = '{positive}'), "
        f"count(*) FILTER (prediction = '{positive}' AND label <> '{positive}'), "
        f"count(*) FILTER (prediction <> '{positive}' AND label = '{positive}') FROM joined WHERE {where}").fetchone()
    if not n:
        return {"labelled": 0.0}
    out = {"labelled": float(n), "accuracy": correct / n}
    out["f1"] = (2 * tp / (2 * tp + fp + fn)) if (tp + fp + fn) else 0.0
    # ROC AUC by the rank-sum (Mann-Whitney) formula, ties sharing their mean rank
    auc = con.execute(
        f"WITH r AS (SELECT label = '{positive}' AS pos, "
        f"avg(rn) OVER (PARTITION BY probability) AS rk FROM "
        f"(SELECT label, probability, row_number() OVER (ORDER BY probability) AS rn FROM joined "
        f"WHERE probability IS NOT NULL AND {where})) "
        f"SELECT (sum(rk) FILTER (pos) - count(*) FILTER (pos) * (count(*) FILTER (pos) + 1) / 2.0) "
        f"/ nullif(count(*) FILTER (pos) * count(*) FILTER (NOT pos), 0) FROM r").fetchone()[0]
    if auc is not None:
        out["roc_auc"] = float(auc)
    return out


def _errors(con: Any, errors_dir: Path | None, deployment: str, where: list[str],
            params: list[Any], log_key: DataKey | None) -> tuple[dict[str, int], dict[str, int]]:
    """Failed requests in the window: by slot ('' when none was picked) and by status."""
    if errors_dir is None:
        return {}, {}
    source = log_scan(errors_dir / f"deployment={deployment}", log_key, hive=False)
    if source is None:
        return {}, {}
    con.execute(f"CREATE OR REPLACE TABLE errs AS SELECT coalesce(slot, '') AS slot, status, count "
                f"FROM {source}"
                + (f" WHERE ({') AND ('.join(where)})" if where else ""), params[:len(where)])
    by_slot = {slot: int(n) for slot, n in con.execute("SELECT slot, sum(count) FROM errs GROUP BY 1").fetchall()}
    by_status = {str(status): int(n) for status, n in
                 con.execute("SELECT status, sum(count) FROM errs GROUP BY 1 ORDER BY 1").fetchall()}
    return by_slot, by_status


def _with_errors(infra: dict[str, float], by_slot: dict[str, dict[str, float]],
                 errors: dict[str, int]) -> dict[str, float]:
    """``errors``, ``attempts`` and ``error_rate`` overall and per served slot. An error
    before any slot was picked (an unknown deployment, a malformed body) counts overall."""
    total = float(sum(errors.values()))
    attempts = infra.get("requests", 0.0) + total
    infra = {**infra, "errors": total, "attempts": attempts}
    if attempts:
        infra["error_rate"] = total / attempts
    for slot in {*by_slot, *(s for s in errors if s)}:
        figures = by_slot.setdefault(slot, {})
        n = float(errors.get(slot, 0))
        figures["errors"] = n
        figures["error_rate"] = n / (figures.get("requests", 0.0) + n) if figures.get("requests", 0.0) + n else 0.0
    return infra


def _latency_by_slot(con: Any) -> dict[str, dict[str, float]]:
    try:
        rows = con.execute("SELECT coalesce(slot, 'primary'), count(DISTINCT request_id), "
                           "quantile_cont(latency_ms, 0.99) FROM win GROUP BY 1").fetchall()
    except Exception:
        return {}
    return {slot: {"requests": float(n), "p99_ms": float(p99)} for slot, n, p99 in rows}


_LAST_CPU: list[float] = []


def _process() -> dict[str, float]:
    """This process's CPU share since the last call and its peak resident memory."""
    now, cpu = time.monotonic(), time.process_time()
    out = {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if _LAST_CPU:
        elapsed = now - _LAST_CPU[0]
        if elapsed > 0:
            out["cpu_percent"] = 100.0 * (cpu - _LAST_CPU[1]) / elapsed / (os.cpu_count() or 1)
    _LAST_CPU[:] = [now, cpu]
    return out
