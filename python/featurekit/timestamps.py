"""UTC instants as featurekit passes them around: naive UTC datetimes and integer microseconds
since the epoch (what the warehouse's timestamps are, and what request-time arithmetic uses).

The one definition of the text forms a timestamp may take, for label files (parsed by DuckDB in
labels.py with this same pattern) and for request times, --now and --as-of (parse_utc)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

from .errors import FeaturekitError

EPOCH = datetime(1970, 1, 1)

# A date, optionally a time (hh:mm, hh:mm:ss, up to 6 decimals), and after a time optionally
# its UTC offset (Z, " UTC", +hh, +hhmm or +hh:mm): NAIVE_PATTERN or ZONED_PATTERN. Written in
# the syntax Python's re and DuckDB's regular expressions (RE2) share, so that both read exactly
# the same strings. Zone names (Europe/Berlin) are not accepted: an offset says the same
# without a zone database.
_DATE = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_TIME = r"[T ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9])(?:[.]([0-9]{1,6}))?)?"
_OFFSET = r"(Z| UTC|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)"
NAIVE_PATTERN = rf"^ *{_DATE}(?:{_TIME})? *$"
ZONED_PATTERN = rf"^ *{_DATE}{_TIME}{_OFFSET} *$"
# A date and time followed by what looks like a zone name, to say so when it is rejected.
_ZONE_NAME = re.compile(r"^ *[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+ *([A-Za-z][A-Za-z0-9_/+-]*) *$")
_NAIVE, _ZONED = re.compile(NAIVE_PATTERN), re.compile(ZONED_PATTERN)
# The instants featurekit can represent (Python's datetime range), in UTC.
FIRST, LAST = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)


def parse_utc(value, what: str = "timestamp") -> datetime:
    """A datetime or a string of NAIVE_PATTERN or ZONED_PATTERN as a naive UTC datetime. Naive values are
    taken as UTC, values with an offset (or Z) are converted, as train-set does with label times;
    an instant outside the years 1 to 9999 in UTC is refused."""
    given = value
    if isinstance(value, str):
        value = _parse_text(value, what)
    elif not isinstance(value, datetime):
        raise FeaturekitError(f"{what} must be an ISO 8601 string or a datetime, not {type(value).__name__}")
    if value.tzinfo is not None:
        try:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise FeaturekitError(out_of_range(given, what)) from None
    return value


def _parse_text(text: str, what: str) -> datetime:
    match = _ZONED.fullmatch(text) or _NAIVE.fullmatch(text)
    if match is None:
        raise FeaturekitError(not_a_timestamp(text, what, "2024-05-01T09:00:00Z"))
    year, month, day, hour, minute, second, fraction, offset = (match.groups() + (None,))[:8]
    if year == "0000":
        raise FeaturekitError(out_of_range(text, what))
    try:
        clock = [int(part or 0) for part in (hour, minute, second, (fraction or "").ljust(6, "0"))]
        value = datetime(int(year), int(month), int(day), *clock)
    except ValueError:  # a day the month does not have
        raise FeaturekitError(not_a_timestamp(text, what, "2024-05-01T09:00:00Z")) from None
    if offset is None:
        return value
    if offset in ("Z", " UTC"):
        return value.replace(tzinfo=timezone.utc)
    hours, minutes = int(offset[1:3]), int(offset[-2:]) if len(offset) > 3 else 0
    sign = -1 if offset[0] == "-" else 1
    return value.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))


def not_a_timestamp(value, what: str, example: str) -> str:
    """Why `value` is not a timestamp, in one sentence starting with `what`."""
    zone = _ZONE_NAME.fullmatch(str(value))
    if zone:
        return (
            f"{what} '{value}' names a time zone ({zone.group(1)}); featurekit reads UTC offsets only: "
            f"write e.g. 2024-05-01 09:00:00+02:00 or 2024-05-01 07:00:00Z"
        )
    return f"{what} '{value}' is not a timestamp; write e.g. {example}"


def out_of_range(value, what: str) -> str:
    return f"{what} '{value}' is outside the years 1 to 9999 in UTC"


def to_micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def now_micros() -> int:
    return time.time_ns() // 1000


def iso(value: datetime | None) -> str | None:
    """A naive UTC datetime as ISO 8601 with an explicit UTC offset."""
    return None if value is None else value.replace(tzinfo=timezone.utc).isoformat()
