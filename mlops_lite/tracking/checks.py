"""Input checks of a run's records (keys, metric values, steps, timestamps), shared by the
local run handle (runs.py) and the HTTP client's (mlops_lite/client/tracking.py), so both
refuse the same input with the same words. No store here: the client imports it."""

from __future__ import annotations

import math
import operator
from datetime import UTC, datetime
from typing import Any

from mlops_lite.clock import as_utc
from mlops_lite.errors import InvalidInput

STEPS = (-(2**31), 2**31 - 1)  # metrics.step is a 32-bit INTEGER column
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_key(key: Any, what: str = "metric") -> str:
    if type(key) is not str or not key:
        raise InvalidInput(f"bad {what} key {key!r}", field=f"{what}s", expected="a non-empty string")
    return key


def finite(key: Any, value: Any) -> float:
    check_key(key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"metric {key!r} is not a number: {value!r}", field=f"metrics.{key}",
                           expected="a finite number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"metric {key!r} is {number} (NaN and infinities are refused)", field=f"metrics.{key}",
                           expected="a finite number")
    return number


def check_step(step: Any, key: str) -> int:
    try:
        if isinstance(step, bool):
            raise TypeError
        number = operator.index(step)
    except TypeError:
        raise InvalidInput(f"metric {key!r}: bad step {step!r}", field=f"metrics.{key}.step",
                           expected="an integer") from None
    if not STEPS[0] <= number <= STEPS[1]:
        raise InvalidInput(f"metric {key!r}: step {step} is out of range", field=f"metrics.{key}.step",
                           expected=f"an integer from {STEPS[0]} to {STEPS[1]}")
    return number


def micros(timestamp: Any, key: str) -> int:
    """Microseconds since the epoch (UTC) of a datetime (naive = UTC) or of epoch seconds."""
    if isinstance(timestamp, datetime):
        delta = as_utc(timestamp) - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool) and math.isfinite(timestamp):
        return round(timestamp * 1_000_000)
    raise InvalidInput(f"metric {key!r}: bad timestamp {timestamp!r}", field=f"metrics.{key}.timestamp",
                       expected="a datetime or seconds since the epoch")
