"""UTC instants as featurekit passes them around: naive UTC datetimes and integer microseconds
since the epoch (what the warehouse's timestamps are, and what request-time arithmetic uses)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from .errors import FeaturekitError

EPOCH = datetime(1970, 1, 1)


def parse_utc(value, what: str = "timestamp") -> datetime:
    """A datetime or ISO 8601 string as a naive UTC datetime. Naive values are taken as UTC,
    values with an offset (or Z) are converted, as train-set does with label times."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise FeaturekitError(f"{what} '{value}' is not a timestamp; write e.g. 2024-05-01T09:00:00Z") from None
    elif not isinstance(value, datetime):
        raise FeaturekitError(f"{what} must be an ISO 8601 string or a datetime, not {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def to_micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def now_micros() -> int:
    return time.time_ns() // 1000


def iso(value: datetime | None) -> str | None:
    """A naive UTC datetime as ISO 8601 with an explicit UTC offset."""
    return None if value is None else value.replace(tzinfo=timezone.utc).isoformat()
