"""The serving rules, where the online store applies them in Python: steps 1 and 3-5 of the
point-in-time contract for the stored row of a key, seen at request time t.

Everything here is the SQL of featurekit.feature_columns (and featurekit.elapsed) restated
once, in integer microseconds; tests/test_online_rules.py pins it to those macros on
generated rows. Each function works alike on Python numbers (one key) and on numpy arrays
(a batch), so the single-key and the batch lookups share it. What can be computed when
the snapshot is published is computed there, in SQL by the macros: a row's visibility
instant (__fk_at, featurekit.view_timeline) and the last instant its ttl keeps it alive
(__fk_expires_at, featurekit.add_seconds).
"""

from __future__ import annotations

import numpy as np


def visible(at_us, request_us):
    """Step 1: a row is the answer only strictly after its visibility instant (a label at
    the very instant an event lands does not see it)."""
    return at_us < request_us


def latest_visible(at_us_sorted, request_us) -> int:
    """Steps 1-2 among one key's rows in __fk_at order: the index of the last one visible
    at t, -1 when none is."""
    return int(np.searchsorted(at_us_sorted, request_us, side="left")) - 1


def latest_visible_many(at_us: np.ndarray, first: np.ndarray, count: np.ndarray, request_us) -> np.ndarray:
    """latest_visible for a batch: per key, its rows at_us[first:first + count] (each run in
    __fk_at order); the position of the last one visible at t, -1 when none is. A binary
    search of all runs at once."""
    low, high = first.copy(), first + count
    for _ in range(int(count.max(initial=0)).bit_length()):
        middle = (low + high) // 2
        inside = middle < high
        before = inside & visible(at_us[np.where(inside, middle, 0)], request_us)
        low = np.where(before, middle + 1, low)
        high = np.where(before | ~inside, high, middle)
    return np.where(low > first, low - 1, -1)


def alive(expires_us, request_us):
    """Step 3: a row older than the ttl counts as missing; at the ttl edge itself it lives
    (t <= feature_ts + ttl)."""
    return request_us <= expires_us


def elapsed(start_us, request_us, unit_us: int):
    """Step 4: whole units from start to t, the floor (negative when start is after t)."""
    return (request_us - start_us) // unit_us


def age_seconds(feature_us, request_us):
    """<view>__age_seconds: t minus the row's feature timestamp, in seconds."""
    return (request_us - feature_us) / 1_000_000


def fill(value, default):
    """Step 5: the view's fill policy replaces a missing or null value (one value)."""
    return default if value is None else value


def fill_at(values: list, missing, default) -> list:
    """Step 5 for a batch: `values` (Python values) with `default` at the positions `missing`
    (the keys without a row alive at t, or whose value is null). Patched in place: a batch
    usually misses few keys, and a numpy object array costs more than the loop."""
    for i in missing:
        values[i] = default
    return values
