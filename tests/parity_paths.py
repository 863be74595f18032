"""Served vectors for the parity and skew tests (and bench/parity.py), written as a served-
feature log in its fixed format:

    LOG/<feature_set>/served-*.parquet: feature_set, request_ts, served_at, snapshot_id,
    the key columns, then the feature columns as train-set names them.

- correct: the library itself (featurekit.training_set at the logged request times);
- skewed: a hand-written DuckDB computation with two classic mistakes: orders over a 7-day
  window instead of 30, and missing values filled with 0 instead of the view's fill policy;
- returns: order counts that exclude returns (customer_orders v2 logic) served for a feature
  set trained on v1, which counts them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import featurekit

FEATURE_SET = "churn_model"
KEYS = ["customer_id"]


def requests(project: Path, n: int, seed: int, start=None, days: float = 3.0) -> pd.DataFrame:
    """n lookups (customer_id, request_ts): by default label rows of the example shop, each a
    random 0-`days` days later; with `start`, random customers at random times in
    [start, start + days)."""
    rng = np.random.default_rng(seed)
    labels = pd.read_csv(project / "seeds" / "churn_labels.csv", parse_dates=["label_ts"])
    if start is None:
        picked = labels.iloc[rng.integers(0, len(labels), n)]
        customers, base = picked["customer_id"].to_numpy(), picked["label_ts"].to_numpy()
    else:
        customers = rng.choice(labels["customer_id"].unique(), n)
        base = np.full(n, np.datetime64(pd.Timestamp(start), "us"))
    offsets = rng.integers(0, int(days * 86_400_000_000), n).astype("timedelta64[us]")
    return pd.DataFrame({"customer_id": customers, "request_ts": (base + offsets).astype("datetime64[us]")})


def correct_vectors(project: Path, lookups: pd.DataFrame, feature_set: str = FEATURE_SET) -> pd.DataFrame:
    return featurekit.training_set(lookups, feature_set=feature_set, project_dir=project, timestamp_column="request_ts")


def returns_vectors(project: Path, lookups: pd.DataFrame) -> pd.DataFrame:
    """churn_model's vectors with customer_orders computed without returns (v2's logic)."""
    served = correct_vectors(project, lookups)
    v2 = correct_vectors(project, lookups, "churn_model_v2")
    for column in ["orders_30d", "order_value_30d"]:
        served[column] = v2[column]
    return served


def skewed_vectors(project: Path, lookups: pd.DataFrame) -> pd.DataFrame:
    """churn_model's vectors with orders over 7 days instead of 30 and missing satisfaction
    and days since the last purchase filled with 0 (the policy says 3.5 and 365)."""
    served = correct_vectors(project, lookups)
    con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    try:
        con.register("lookups", served[["customer_id", "request_ts", "support_tickets_v1__feature_ts"]])
        by_hand = con.execute(
            """
            with requests as (
                select row_number() over () as i, * from lookups
            ),
            last_order as (  -- the latest order instant before the request, if within 30 days
                select r.i, max(o.order_ts) as at
                from requests r join stg_orders o on o.customer_id = r.customer_id and o.order_ts < r.request_ts
                group by r.i
            ),
            orders as (  -- the mistake: a 7-day window
                select l.i, count(*) as orders, sum(o.order_value) as order_value
                from last_order l join requests r using (i)
                join stg_orders o on o.customer_id = r.customer_id
                 and o.order_ts between l.at - interval 7 days and l.at
                where r.request_ts <= l.at + interval 30 days
                group by l.i
            ),
            last_purchase as (
                select r.i, max(o.order_ts) as at
                from requests r join stg_orders o
                  on o.customer_id = r.customer_id and o.order_ts < r.request_ts and not o.is_return
                group by r.i
            )
            select
                r.i,
                coalesce(orders.orders, 0) as orders_30d,
                coalesce(orders.order_value, 0) as order_value_30d,
                coalesce(t.avg_satisfaction_90d, 0) as avg_satisfaction_90d,       -- the mistake: 0
                coalesce(floor(epoch(r.request_ts - p.at) / 86400), 0) as days_since_last_purchase  -- and 0
            from requests r
            left join orders using (i)
            left join last_purchase p using (i)
            left join support_tickets_v1 t
              on t.customer_id = r.customer_id and t.feature_ts = r.support_tickets_v1__feature_ts
            order by r.i
            """
        ).df()
    finally:
        con.close()
    for column in ["orders_30d", "order_value_30d", "avg_satisfaction_90d", "days_since_last_purchase"]:
        served[column] = by_hand[column].astype(served[column].dtype).to_numpy()
    return served


def write_log(
    vectors: pd.DataFrame,
    log_dir: Path,
    feature_set: str = FEATURE_SET,
    snapshot_id: str = "test-snapshot",
    served_at=None,
    files: int = 1,
) -> Path:
    """Writes `vectors` (keys, request_ts, then features as train-set names them) as served-
    log files; served_at defaults to each request time."""
    folder = Path(log_dir) / feature_set
    folder.mkdir(parents=True, exist_ok=True)
    frame = vectors.drop(columns=[c for c in vectors.columns if c in ("label_ts", "churned")])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    features = [c for c in table.column_names if c not in (*KEYS, "request_ts")]
    request_ts = table["request_ts"].cast(pa.timestamp("us"))
    if served_at is None:
        served = request_ts
    else:
        served = pa.array(np.full(len(frame), np.datetime64(pd.Timestamp(served_at), "us")))
    table = pa.table(
        {
            "feature_set": pa.array([feature_set] * len(frame), pa.string()),
            "request_ts": request_ts,
            "served_at": served,
            "snapshot_id": pa.array([snapshot_id] * len(frame), pa.string()),
            **{k: table[k] for k in KEYS},
            **{c: table[c] for c in features},
        }
    )
    bounds = np.linspace(0, len(frame), files + 1).astype(int)
    for number, (start, end) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        pq.write_table(table.slice(start, end - start), folder / f"served-20240101T000000-{number}.parquet")
    return Path(log_dir)
