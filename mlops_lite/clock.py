"""One clock: timezone-aware UTC datetimes, as the stores keep them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mlops_lite.errors import InvalidInput


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive values are taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(value: str, field: str) -> datetime:
    """An ISO 8601 time from outside (naive: UTC) as a UTC datetime; InvalidInput naming
    ``field`` when it is not one, or when its instant in UTC falls outside years 1-9999
    (``0001-01-01T00:00+14:00`` parses, then overflows on conversion)."""
    try:
        return as_utc(datetime.fromisoformat(value.strip()))
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"bad time {value!r} for {field!r}", field=field,
                           expected="an ISO 8601 time, e.g. 2026-01-31T12:00:00+00:00, within years 1-9999 in UTC"
                           ) from exc


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, field: str, *, label: str | None = None) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d`` or a sum such as ``1h30m``, as a timedelta above
    zero; InvalidInput naming ``field`` (shown as ``label``, e.g. ``--for``) otherwise."""
    name = label or field
    spec = text.strip().lower() if isinstance(text, str) else ""
    parts = _DURATION.findall(spec)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != spec:
        raise InvalidInput(f"bad {name} {text!r}", field=field, expected="a duration like 90s, 30m, 2h, 1d or 1h30m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise InvalidInput(f"{name} {text!r} is no time at all", field=field, expected="a duration above zero")
    return timedelta(seconds=seconds)
