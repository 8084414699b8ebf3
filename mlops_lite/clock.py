"""One clock: timezone-aware UTC datetimes, as the stores keep them."""

from __future__ import annotations

from datetime import UTC, datetime

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
