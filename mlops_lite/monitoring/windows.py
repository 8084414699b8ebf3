"""Served traffic per time window: how many requests each deployment answered and failed,
and their p50/p99 latency, in total and per slot, over the last ``count`` windows of
``width_s`` seconds. Figures only, no logged row's content: what a dashboard's sparklines
and charts are drawn from, readable by a viewer (``platform.monitoring.windows``).

A request counts once whatever its rows (a batch logs a row per instance, each with the
request's latency); shadow answers serve nobody and are left out. Failures come from the
error counts (``ERROR_SCHEMA``), per slot when the route had picked one."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from mlops_lite.clock import parse_time, utcnow
from mlops_lite.errors import InvalidInput
from mlops_lite.records import TrafficWindow

MAX_WINDOWS = 1000
MIN_WIDTH_S, MAX_WIDTH_S = 1, 7 * 24 * 3600
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_window_args(count: Any, width_s: Any, until: datetime | str | None,
                      deployment: str | None) -> tuple[int, int, datetime]:
    """The arguments, checked: InvalidInput naming ``count``, ``width_s``, ``until`` or
    ``deployment``."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_WINDOWS:
        raise InvalidInput(f"count must be a whole number of windows from 1 to {MAX_WINDOWS}, got {count!r}",
                           field="count", expected=f"1 to {MAX_WINDOWS}")
    if isinstance(width_s, bool) or not isinstance(width_s, int) or not MIN_WIDTH_S <= width_s <= MAX_WIDTH_S:
        raise InvalidInput(f"width_s must be whole seconds from {MIN_WIDTH_S} to {MAX_WIDTH_S}, got {width_s!r}",
                           field="width_s", expected=f"{MIN_WIDTH_S} to {MAX_WIDTH_S}")
    if deployment is not None and (not isinstance(deployment, str) or not _NAME.match(deployment)):
        raise InvalidInput(f"bad deployment name {deployment!r}", field="deployment",
                           expected="1-63 characters: lowercase letters, digits, '_' and '-'")
    if until is None:
        end = utcnow()
    elif isinstance(until, datetime):
        end = parse_time(until.isoformat(), "until")
    elif isinstance(until, str):
        end = parse_time(until, "until")
    else:
        raise InvalidInput(f"until must be a time, got {until!r}", field="until", expected="an ISO 8601 time")
    return count, width_s, end


def traffic_windows(select: Callable[[str], pa.Table], *, count: int = 12, width_s: int = 300,
                    until: datetime | str | None = None, deployment: str | None = None) -> list[TrafficWindow]:
    """The windows ending at ``until`` (now), oldest first, for every deployment (or
    ``deployment``): a ``TrafficWindow`` per deployment, slot (None: all slots together)
    and window that saw traffic; ``select`` runs SQL over the views ``predictions`` and
    ``errors``."""
    count, width_s, end = check_window_args(count, width_s, until, deployment)
    start = end - timedelta(seconds=count * width_s)
    index = (f"({count - 1} - CAST(floor((epoch(TIMESTAMPTZ '{end.isoformat()}') - epoch(\"at\")) / {width_s}) "
             "AS INTEGER))")
    within = f"\"at\" >= TIMESTAMPTZ '{start.isoformat()}' AND \"at\" < TIMESTAMPTZ '{end.isoformat()}'"
    only = f" AND deployment = '{deployment}'" if deployment is not None else ""
    sql = (
        "WITH req AS (SELECT deployment, coalesce(slot, 'primary') AS slot, request_id, min(\"at\") AS \"at\", "
        "max(latency_ms) AS latency_ms FROM predictions "
        f"WHERE date >= DATE '{start.date().isoformat()}' AND {within} "
        f"AND coalesce(slot, 'primary') <> 'shadow'{only} GROUP BY deployment, slot, request_id), "
        f"served AS (SELECT deployment, slot, {index} AS w, count(*) AS requests, "
        "quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.99) AS p99 "
        "FROM req GROUP BY GROUPING SETS ((deployment, w), (deployment, slot, w))), "
        "failed AS (SELECT deployment, slot, w, sum(count) AS errors FROM (SELECT deployment, "
        f"coalesce(slot, '') AS slot, {index} AS w, count FROM errors WHERE {within}{only}) "
        "GROUP BY GROUPING SETS ((deployment, w), (deployment, slot, w))) "
        "SELECT deployment, slot, w, coalesce(s.requests, 0)::BIGINT AS requests, "
        "coalesce(f.errors, 0)::BIGINT AS errors, s.p50, s.p99 "
        "FROM served s FULL OUTER JOIN failed f USING (deployment, slot, w)")
    merged: dict[tuple[str, str | None, int], dict[str, Any]] = {}
    for row in select(sql).to_pylist():
        w = row["w"]
        if w is None or not 0 <= w < count or row["slot"] == "":
            continue  # '': failures before a slot was picked, counted in the total alone
        # In the total (slot None) both sides' rows arrive apart (NULL never joins NULL).
        figures = merged.setdefault((row["deployment"], row["slot"], w),
                                    {"requests": 0, "errors": 0, "p50": None, "p99": None})
        figures["requests"] += int(row["requests"])
        figures["errors"] += int(row["errors"])
        if row["p50"] is not None:
            figures["p50"], figures["p99"] = float(row["p50"]), float(row["p99"])
    return [TrafficWindow(deployment=name, slot=slot, window=w, start=start + timedelta(seconds=w * width_s),
                          width_s=width_s, requests=f["requests"], errors=f["errors"], p50_ms=f["p50"],
                          p99_ms=f["p99"])
            for (name, slot, w), f in sorted(merged.items(), key=lambda item: (item[0][0], item[0][1] or "",
                                                                                 item[0][2]))]
