"""Deterministic generator for the example online shop.

Every customer has a latent churn propensity and a latent churn time. As the
churn time approaches, orders slow down, returns and unhappy support tickets
pile up and logins fade, so honest point-in-time features carry a learnable
churn signal (and sloppily computed ones lose part of it).

Labels are taken on the 1st of each month, March to September 2024, at
09:00:00 for every customer who signed up strictly before label_ts and whose
latent churn time lies after it (customers already gone are not scored).
The label itself is derived from the generated orders:

    churned = 1  <=>  no *completed* order with label_ts < order_ts <= label_ts + 30 days

so an order at exactly label_ts counts as known at label time. A few label
rows are exact duplicates, as in real label files.

Everything is vectorised numpy, built in fixed blocks of customers that each
have their own random stream, so `generate` and `write_parquet` produce the
same rows (Parquet stores them in load order) and Parquet output never needs more than one
block in memory (DuckDB sorts it into load order, spilling to disk if it must).

    PYTHONPATH=python python -m featurekit.example.shop_data seeds [--dir seeds]
    PYTHONPATH=python python -m featurekit.example.shop_data parquet --scale medium --dir DIR
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCALES = {"small": 1500, "medium": 100_000, "large": 1_000_000}

DAY = 86_400  # seconds
START = np.datetime64("2024-01-01T00:00:00", "s")
PERIOD_DAYS = 305  # 2024-01-01 .. 2024-10-31 inclusive
LABEL_TS = np.array(
    [f"2024-{m:02d}-01T09:00:00" for m in range(3, 10)], dtype="datetime64[s]"
)
CHURN_WINDOW_DAYS = 30

REGIONS = ["north", "south", "east", "west"]
PLANS = ["free", "basic", "pro"]
STATUSES = ["completed", "returned"]
PRIORITIES = ["low", "normal", "high"]
DEVICES = ["web", "ios", "android"]

BLOCK_SIZE = 100_000  # customers per random-stream block

TS = pa.timestamp("us")
SCHEMAS = {
    "raw_customers": pa.schema(
        [("customer_id", pa.int64()), ("valid_from", TS), ("region", pa.string()),
         ("plan", pa.string()), ("loaded_at", TS)]
    ),
    "raw_orders": pa.schema(
        [("order_id", pa.int64()), ("customer_id", pa.int64()), ("order_ts", TS),
         ("order_value", pa.float64()), ("status", pa.string()), ("loaded_at", TS)]
    ),
    "raw_support_tickets": pa.schema(
        [("ticket_id", pa.int64()), ("customer_id", pa.int64()), ("opened_ts", TS),
         ("priority", pa.string()), ("satisfaction", pa.int64()), ("loaded_at", TS)]
    ),
    "raw_logins": pa.schema(
        [("customer_id", pa.int64()), ("login_ts", TS), ("device", pa.string()), ("loaded_at", TS)]
    ),
    "churn_labels": pa.schema(
        [("customer_id", pa.int64()), ("label_ts", TS), ("churned", pa.int64())]
    ),
}
TABLES = list(SCHEMAS)
# Rows per Parquet row group: small enough that a filter on load time skips most of a table.
ROW_GROUP_SIZE = 122_880

# Model knobs, per plan in PLANS order.
PLAN_SHARE = [0.50, 0.33, 0.17]
PLAN_HAZARD = np.array([1.3, 1.0, 0.6])  # pro customers stay longer
PLAN_ORDER_RATE = np.array([0.058, 0.066, 0.076])  # orders/day when fully engaged
PLAN_ORDER_VALUE = np.array([35.0, 55.0, 90.0])
LAUNCH_SHARE = 0.6  # share of customers signing up in the January launch
SIGNUP_UNTIL_DAY = 240  # the rest sign up evenly until then
ORDER_RATE_SPREAD = 0.2  # log-sd of engagement between customers
ORDER_REGULARITY = 12.0  # gamma shape of the gaps between orders
BASE_HAZARD = 1 / 380  # churns/day for an average customer
RETURN_BASE, RETURN_PRONE, RETURN_NEAR_CHURN = 0.06, 0.10, 0.50
NON_BUYER_SHARE = 0.08  # sign up, browse, hardly ever buy
ORDER_RAMP_DAYS = 150.0  # ordering slows to a halt over this many days before churn
LOGIN_RAMP_DAYS = 90.0
TICKET_RAMP_DAYS = 90.0
TICKET_RATE = 1 / 250  # tickets/day far from churn
TICKET_SURGE = 20.0  # extra multiple of that rate right before churn
SATISFACTION_DROP = 0.6  # stars lost by tickets opened right before churn
PROMO_SHARE = 0.02  # orders placed the second the newsletter lands
DUPLICATE_LABEL_SHARE = 0.003


def _closeness(days_to_churn, ramp_days):
    """0 until `ramp_days` before churn, rising linearly to 1 at churn."""
    return np.clip(1 - days_to_churn / ramp_days, 0.0, 1.0)


def _clock(days_to_churn, ramp_days):
    """Full-rate days of activity left before churn when the rate ramps
    linearly down to zero over the last `ramp_days`."""
    d = np.maximum(days_to_churn, 0.0)
    return np.where(d >= ramp_days, d - ramp_days / 2, d * d / (2 * ramp_days))


def _unclock(active_days, ramp_days):
    """Inverse of `_clock`: days to churn for given full-rate days left."""
    c = active_days
    return np.where(c >= ramp_days / 2, c + ramp_days / 2, np.sqrt(2 * ramp_days * c))


def _activity(rng, rate, signup, churn, ramp_days, shape):
    """Event times per customer from signup to churn (or the end of the data).

    Gaps are gamma(shape) with mean 1/rate on a clock that slows to a halt
    over the last `ramp_days` before churn: shape 1 is a Poisson process,
    larger shapes are more regular (shoppers restock on a rhythm). Slowing the
    clock, rather than dropping events at random, makes the fade before churn
    show up reliably in recency and frequency.
    """
    hi = rate * _clock(churn - signup, ramp_days)  # events expected after signup
    lo = rate * _clock(churn - np.minimum(churn, PERIOD_DAYS), ramp_days)
    expected = hi - lo
    n = np.ceil(expected + 4 * np.sqrt(expected) + 4).astype(np.int64)  # enough gaps
    owner = np.repeat(np.arange(rate.size), n)
    gaps = rng.gamma(shape, 1 / shape, owner.size)
    first = np.cumsum(n) - n
    gaps[first] *= rng.random(first.size)  # random phase at signup
    total = np.cumsum(gaps)
    left = hi[owner] - (total - np.repeat(total[first] - gaps[first], n))
    keep = left > lo[owner]
    owner = owner[keep]
    return owner, churn[owner] - _unclock(left[keep] / rate[owner], ramp_days)


def _poisson_events(rng, rate, start, stop):
    """Homogeneous Poisson candidates per customer; callers thin them."""
    span = np.maximum(stop - start, 0.0)
    owner = np.repeat(np.arange(rate.size), rng.poisson(rate * span))
    return owner, start[owner] + rng.random(owner.size) * span[owner]


def _seconds(days: np.ndarray) -> np.ndarray:
    return np.floor(days * DAY).astype(np.int64)


def _latent(rng, n):
    """Per-customer latent state (days since START)."""
    z = rng.standard_normal(n)  # churn propensity
    plan = rng.choice(3, n, p=PLAN_SHARE)
    # A January launch cohort, then a steady trickle of signups.
    launch = rng.random(n) < LAUNCH_SHARE
    signup = np.where(launch, rng.random(n) * 31, rng.random(n) * SIGNUP_UNTIL_DAY)
    hazard = BASE_HAZARD * PLAN_HAZARD[plan] * np.exp(0.9 * z)
    churn = signup + rng.exponential(1 / hazard)  # may fall after the period
    order_rate = PLAN_ORDER_RATE[plan] * np.exp(ORDER_RATE_SPREAD * rng.standard_normal(n) - 0.2 * z)
    order_rate[rng.random(n) < NON_BUYER_SHARE] *= 0.03
    return dict(z=z, plan=plan, signup=signup, churn=churn, order_rate=order_rate,
                region=rng.choice(4, n, p=[0.3, 0.25, 0.25, 0.2]))


def _customers(rng, lat, ids):
    """Profile change log: the signup row plus 0-2 later changes."""
    n = ids.size
    owner = np.repeat(np.arange(n), rng.choice(3, n, p=[0.55, 0.30, 0.15]))
    s = lat["signup"][owner]
    t = s + rng.random(owner.size) * (PERIOD_DAYS - s)
    order = np.lexsort((t, owner))
    owner, t = owner[order], t[order]
    first = np.r_[True, owner[1:] != owner[:-1]]
    rank = np.arange(owner.size) - np.maximum.accumulate(np.where(first, np.arange(owner.size), 0))

    plan, region = lat["plan"].copy(), lat["region"].copy()
    ch_plan, ch_region = np.empty_like(owner), np.empty_like(owner)
    for r in (0, 1):  # apply changes in order so each row carries the full profile
        m = rank == r
        o = owner[m]
        near_churn = _closeness(lat["churn"][o] - t[m], 45.0) > 0
        upgrade = ~near_churn & (rng.random(o.size) < 0.5) & (plan[o] < 2)
        downgrade = near_churn & (plan[o] > 0)  # unhappy customers step down first
        move = ~upgrade & ~downgrade
        plan[o] = plan[o] + upgrade - downgrade
        region[o] = np.where(move, (region[o] + rng.integers(1, 4, o.size)) % 4, region[o])
        ch_plan[m], ch_region[m] = plan[o], region[o]

    idx = np.r_[np.arange(n), owner]
    valid_from = _seconds(np.r_[lat["signup"], t])
    cols = dict(
        customer_id=ids[idx],
        valid_from=valid_from,
        region=np.r_[lat["region"], ch_region],
        plan=np.r_[lat["plan"], ch_plan],
        loaded_at=valid_from + rng.integers(300, 30 * 3600, idx.size),
    )
    return _sorted(cols, "customer_id", "valid_from")


def _orders(rng, lat, ids):
    churn, signup = lat["churn"], lat["signup"]
    owner, t = _activity(rng, lat["order_rate"], signup, churn, ORDER_RAMP_DAYS, ORDER_REGULARITY)
    f = _closeness(churn[owner] - t, ORDER_RAMP_DAYS)

    # The monthly newsletter goes out at 09:00:00 on the 1st and some orders
    # land on exactly that second: identical timestamps across customers that
    # also coincide with label times (a point-in-time boundary on purpose).
    ts = _seconds(t)
    promo = _month_promo(ts)
    snap = (rng.random(ts.size) < PROMO_SHARE) & (promo >= _seconds(signup[owner])) & (
        promo < _seconds(np.minimum(churn[owner], PERIOD_DAYS)))
    ts = np.where(snap, promo, ts)

    z = lat["z"][owner]
    p_return = RETURN_BASE + RETURN_PRONE * (z > 1) + RETURN_NEAR_CHURN * f
    value = PLAN_ORDER_VALUE[lat["plan"][owner]] * np.exp(0.5 * rng.standard_normal(ts.size))
    cols = dict(
        customer_id=ids[owner],
        order_ts=ts,
        order_value=np.maximum(np.rint(value * 100), 100) / 100,  # whole cents, parses back exactly
        status=(rng.random(ts.size) < p_return).astype(np.int8),
        loaded_at=ts + _load_delay(rng, ts.size),
    )
    return _sorted(cols, "order_ts", "customer_id")


def _tickets(rng, lat, ids):
    churn, signup, z = lat["churn"], lat["signup"], lat["z"]
    base = TICKET_RATE * np.exp(0.3 * z)
    peak = 1 + TICKET_SURGE
    owner, t = _poisson_events(rng, base * peak, signup, np.minimum(churn, PERIOD_DAYS))
    f = _closeness(churn[owner] - t, TICKET_RAMP_DAYS)
    keep = rng.random(owner.size) < (1 + TICKET_SURGE * f) / peak  # complaints pile up before churn
    owner, t, f = owner[keep], t[keep], f[keep]

    mood = 4.3 - 0.4 * z[owner] - SATISFACTION_DROP * f + 0.8 * rng.standard_normal(t.size)
    satisfaction = np.clip(np.round(mood), 1, 5).astype(np.int64)
    rated = rng.random(t.size) >= 0.2  # about a fifth never answer the survey
    u = rng.random(t.size)
    priority = (u > 0.45 - 0.2 * f).astype(np.int8) + (u > 0.85 - 0.3 * f)
    ts = _seconds(t)
    cols = dict(
        customer_id=ids[owner],
        opened_ts=ts,
        priority=priority,
        satisfaction=np.where(rated, satisfaction, -1),  # -1: not rated (NULL)
        loaded_at=ts + _load_delay(rng, ts.size),
    )
    return _sorted(cols, "opened_ts", "customer_id")


def _logins(rng, lat, ids):
    churn, signup = lat["churn"], lat["signup"]
    rate = 0.04 + 0.5 * lat["order_rate"]  # everyone browses; buyers come back more
    owner, t = _activity(rng, rate, signup, churn, LOGIN_RAMP_DAYS, 1.0)
    favourite = rng.choice(3, ids.size, p=[0.5, 0.3, 0.2])
    device = np.where(rng.random(t.size) < 0.8, favourite[owner], rng.integers(0, 3, t.size))
    cols = dict(customer_id=ids[owner], login_ts=_seconds(t), device=device)
    return _sorted(cols, "login_ts", "customer_id")


def _labels(rng, lat, ids, orders):
    """Monthly churn labels consistent with the generated completed orders."""
    label = (LABEL_TS - START).astype(np.int64)
    done = orders["status"] == STATUSES.index("completed")
    ts = orders["order_ts"][done]
    owner = orders["customer_id"][done] - ids[0]  # ids are consecutive
    k = np.searchsorted(label, ts, side="left") - 1  # last label strictly before ts
    in_window = (k >= 0) & (ts <= label[np.maximum(k, 0)] + CHURN_WINDOW_DAYS * DAY)
    bought = np.zeros((ids.size, label.size), dtype=bool)
    bought[owner[in_window], k[in_window]] = True

    signed_up = _seconds(lat["signup"])[:, None] < label[None, :]
    still_here = _seconds(lat["churn"])[:, None] > label[None, :]
    cust, k = np.nonzero(signed_up & still_here)
    # Real label files carry a few exact duplicate rows.
    dup = rng.random(cust.size) < DUPLICATE_LABEL_SHARE
    cust, k = np.r_[cust, cust[dup]], np.r_[k, k[dup]]
    cols = dict(customer_id=ids[cust], label_ts=label[k], churned=(~bought[cust, k]).astype(np.int64))
    return _sorted(cols, "label_ts", "customer_id")


def _month_promo(ts: np.ndarray) -> np.ndarray:
    """Newsletter instant (1st of the month, 09:00) of the month containing ts."""
    month = (START + ts.astype("timedelta64[s]")).astype("datetime64[M]")
    return (month.astype("datetime64[s]") + np.timedelta64(9, "h") - START).astype(np.int64)


def _load_delay(rng, n):
    """Ingestion lag: typically a quarter of an hour, sometimes many hours."""
    return np.clip(np.exp(np.log(900) + 1.3 * rng.standard_normal(n)), 60, 18 * 3600).astype(np.int64)


def _sorted(cols: dict, *keys: str) -> dict:
    order = np.lexsort(tuple(cols[k] for k in reversed(keys)))
    return {k: v[order] for k, v in cols.items()}


def _block(rng, first_id: int, n: int) -> dict[str, dict]:
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    lat = _latent(rng, n)
    orders = _orders(rng, lat, ids)
    block = {
        "raw_customers": _customers(rng, lat, ids),
        "raw_orders": orders,
        "raw_support_tickets": _tickets(rng, lat, ids),
        "raw_logins": _logins(rng, lat, ids),
        "churn_labels": _labels(rng, lat, ids, orders),
    }
    # Drawn last, so that adding login load times left every other table as it was.
    logins = block["raw_logins"]
    logins["loaded_at"] = logins["login_ts"] + _load_delay(rng, logins["login_ts"].size)
    return block


def _arrow(name: str, cols: dict) -> pa.Table:
    """Numpy columns (seconds since START, category codes) -> typed Arrow table."""
    cats = {"region": REGIONS, "plan": PLANS, "status": STATUSES,
            "priority": PRIORITIES, "device": DEVICES}
    arrays = []
    for field in SCHEMAS[name]:
        v = cols[field.name]
        if field.name in cats:
            arr = pa.DictionaryArray.from_arrays(v.astype(np.int8), cats[field.name]).cast(pa.string())
        elif field.type == TS:
            arr = pa.array((START + v.astype("timedelta64[s]")).astype("datetime64[us]"))
        elif field.name == "satisfaction":
            arr = pa.array(v, mask=v < 0)
        else:
            arr = pa.array(v, type=field.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=SCHEMAS[name])


def _blocks(n_customers: int, seed: int) -> Iterator[dict[str, pa.Table]]:
    """Blocks of Arrow tables; ids stay unique across blocks."""
    next_order, next_ticket = 1, 1
    for b, first in enumerate(range(0, n_customers, BLOCK_SIZE)):
        rng = np.random.default_rng([seed, b])
        block = _block(rng, first + 1, min(BLOCK_SIZE, n_customers - first))
        orders, tickets = block["raw_orders"], block["raw_support_tickets"]
        orders["order_id"] = np.arange(next_order, next_order + orders["order_ts"].size)
        tickets["ticket_id"] = np.arange(next_ticket, next_ticket + tickets["opened_ts"].size)
        next_order += orders["order_ts"].size
        next_ticket += tickets["opened_ts"].size
        yield {name: _arrow(name, cols) for name, cols in block.items()}


def _pandas(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    if "satisfaction" in df:
        df["satisfaction"] = df["satisfaction"].astype("Int64")
    return df


def generate(n_customers: int, seed: int = 7) -> dict[str, pd.DataFrame]:
    """All five tables as DataFrames; deterministic for (n_customers, seed)."""
    blocks = list(_blocks(n_customers, seed))
    return {name: _pandas(pa.concat_tables([b[name] for b in blocks])) for name in TABLES}


def write_seeds(seeds_dir="seeds") -> None:
    """The committed small-scale CSV seeds."""
    seeds_dir = Path(seeds_dir)
    seeds_dir.mkdir(parents=True, exist_ok=True)
    for name, df in generate(SCALES["small"]).items():
        df.to_csv(seeds_dir / f"{name}.csv", index=False,
                  date_format="%Y-%m-%d %H:%M:%S", float_format="%.2f")


def write_parquet(out_dir, n_customers: int, seed: int = 7) -> None:
    """Same rows as `generate`, streamed block by block, then each table with a load time
    stored in load order (stable), as a landing table that loads append to is: the
    incremental builds' filters on load time then skip the row groups loaded before."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unsorted = {name: out_dir / f".{name}.unsorted.parquet" for name in TABLES}
    writers = {name: pq.ParquetWriter(unsorted[name], SCHEMAS[name]) for name in TABLES}
    try:
        for block in _blocks(n_customers, seed):
            for name, table in block.items():
                writers[name].write_table(table)
    finally:
        for w in writers.values():
            w.close()
    try:
        for name, path in unsorted.items():
            if "loaded_at" in SCHEMAS[name].names:
                _write_in_load_order(path, out_dir / f"{name}.parquet", SCHEMAS[name])
            else:
                path.replace(out_dir / f"{name}.parquet")
    finally:
        for path in unsorted.values():
            path.unlink(missing_ok=True)


def _write_in_load_order(source: Path, target: Path, schema: pa.Schema) -> None:
    con = duckdb.connect()  # it sorts (and spills): the whole table never sits in memory
    try:
        reader = con.sql(
            f"SELECT * EXCLUDE (file_row_number) FROM read_parquet('{source}', file_row_number = true) "
            "ORDER BY loaded_at, file_row_number"
        ).to_arrow_reader(ROW_GROUP_SIZE)
        with pq.ParquetWriter(target, schema) as writer:
            for batch in reader:
                writer.write_table(pa.Table.from_batches([batch]).cast(schema), row_group_size=ROW_GROUP_SIZE)
    finally:
        con.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m featurekit.example.shop_data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    seeds = sub.add_parser("seeds", help="write the small CSV seeds")
    seeds.add_argument("--dir", default="seeds")
    parquet = sub.add_parser("parquet", help="write Parquet tables at a given scale")
    parquet.add_argument("--scale", choices=list(SCALES), default="medium")
    parquet.add_argument("--dir", required=True)
    parquet.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.cmd == "seeds":
        write_seeds(args.dir)
    else:
        write_parquet(args.dir, SCALES[args.scale], args.seed)


if __name__ == "__main__":
    main()
