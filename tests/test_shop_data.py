"""The example-shop generator: determinism, the committed seeds, schema, invariants, signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from featurekit.example import shop_data

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
DAY = pd.Timedelta(days=1)

COLUMNS = {
    "raw_customers": ["customer_id", "valid_from", "region", "plan", "loaded_at"],
    "raw_orders": ["order_id", "customer_id", "order_ts", "order_value", "status", "loaded_at"],
    "raw_support_tickets": ["ticket_id", "customer_id", "opened_ts", "priority", "satisfaction", "loaded_at"],
    "raw_logins": ["customer_id", "login_ts", "device", "loaded_at"],
    "churn_labels": ["customer_id", "label_ts", "churned"],
}
TIMESTAMPS = {"valid_from", "loaded_at", "order_ts", "opened_ts", "login_ts", "label_ts"}
CATEGORIES = {
    "region": {"north", "south", "east", "west"},
    "plan": {"free", "basic", "pro"},
    "status": {"completed", "returned"},
    "priority": {"low", "normal", "high"},
    "device": {"web", "ios", "android"},
}


@pytest.fixture(scope="module")
def shop() -> dict[str, pd.DataFrame]:
    return shop_data.generate(shop_data.SCALES["small"])


def read_seed(name: str) -> pd.DataFrame:
    df = pd.read_csv(SEEDS / f"{name}.csv", parse_dates=[c for c in COLUMNS[name] if c in TIMESTAMPS])
    if "satisfaction" in df:
        df["satisfaction"] = df["satisfaction"].astype("Int64")
    return df


def test_generate_is_deterministic():
    first, second = shop_data.generate(400, seed=3), shop_data.generate(400, seed=3)
    for name in COLUMNS:
        pd.testing.assert_frame_equal(first[name], second[name])
    other = shop_data.generate(400, seed=4)
    assert not first["raw_orders"].equals(other["raw_orders"])


def test_committed_seeds_are_what_generate_produces(shop):
    for name in COLUMNS:
        pd.testing.assert_frame_equal(read_seed(name), shop[name])


def test_seed_command_rewrites_identical_files(tmp_path):
    shop_data.main(["seeds", "--dir", str(tmp_path)])
    for name in COLUMNS:
        assert (tmp_path / f"{name}.csv").read_bytes() == (SEEDS / f"{name}.csv").read_bytes(), name


def test_seed_sizes_suit_dbt_seed(shop):
    assert len(shop["raw_customers"].customer_id.unique()) == 1500
    assert len(shop["raw_orders"]) <= 15_000
    assert len(shop["raw_support_tickets"]) <= 4_000
    assert len(shop["raw_logins"]) <= 20_000
    assert 6_000 <= len(shop["churn_labels"]) <= 8_000
    for name in COLUMNS:
        assert (SEEDS / f"{name}.csv").stat().st_size < 1_500_000


def test_schema(shop):
    assert list(shop) == list(COLUMNS)
    for name, df in shop.items():
        assert list(df.columns) == COLUMNS[name]
        for column in df.columns:
            dtype = df[column].dtype
            if column in TIMESTAMPS:
                assert dtype == "datetime64[us]", (name, column)
            elif column in CATEGORIES:
                assert pd.api.types.is_string_dtype(dtype), (name, column)
                assert set(df[column]) <= CATEGORIES[column], (name, column)
            elif column == "order_value":
                assert dtype == "float64"
            elif column == "satisfaction":
                assert dtype == "Int64"
            else:
                assert dtype == "int64", (name, column)


def test_parquet_holds_the_same_rows_as_generate_in_load_order(tmp_path):
    shop_data.write_parquet(tmp_path, 300, seed=11)
    expected = shop_data.generate(300, seed=11)
    for name in COLUMNS:
        table = pq.read_table(tmp_path / f"{name}.parquet")
        assert table.schema.equals(shop_data.SCHEMAS[name]), name
        actual = table.to_pandas()
        if name == "raw_support_tickets":
            actual["satisfaction"] = actual["satisfaction"].astype("Int64")
        want = expected[name]
        if "loaded_at" in want:  # stored in load order, as loads append to a landing table
            want = want.sort_values("loaded_at", kind="stable", ignore_index=True)
        pd.testing.assert_frame_equal(actual, want)


def test_ids_stay_unique_across_blocks(tmp_path):
    n = shop_data.BLOCK_SIZE + 50
    shop_data.write_parquet(tmp_path, n)
    customers = pq.read_table(tmp_path / "raw_customers.parquet", columns=["customer_id"])
    assert set(customers.column(0).to_numpy()) == set(range(1, n + 1))
    for name, column in [("raw_orders", "order_id"), ("raw_support_tickets", "ticket_id")]:
        ids = pq.read_table(tmp_path / f"{name}.parquet", columns=[column]).column(0).to_numpy()
        assert (np.sort(ids) == np.arange(1, ids.size + 1)).all(), name


def test_customers_are_a_change_log(shop):
    customers = shop["raw_customers"]
    rows = customers.groupby("customer_id").size()
    assert rows.between(1, 3).all() and (rows > 1).any()
    assert (customers.loaded_at >= customers.valid_from).all()
    assert (customers.loaded_at - customers.valid_from).max() <= 2 * DAY
    assert customers.valid_from.between("2024-01-01", "2024-11-01").all()


def test_event_invariants(shop):
    orders, tickets, logins = shop["raw_orders"], shop["raw_support_tickets"], shop["raw_logins"]
    assert orders.order_id.is_unique and tickets.ticket_id.is_unique
    assert (orders.loaded_at >= orders.order_ts).all()
    assert (tickets.loaded_at >= tickets.opened_ts).all()
    assert (logins.loaded_at >= logins.login_ts).all()
    assert (orders.order_value > 0).all()
    assert (orders.order_value.round(2) == orders.order_value).all()
    assert 0.08 <= (orders.status == "returned").mean() <= 0.15
    rated = tickets.satisfaction.dropna()
    assert rated.between(1, 5).all()
    assert 0.15 <= tickets.satisfaction.isna().mean() <= 0.25
    signup = shop["raw_customers"].groupby("customer_id").valid_from.min()
    for df, ts in [(orders, "order_ts"), (tickets, "opened_ts"), (logins, "login_ts")]:
        assert (df[ts] >= df.customer_id.map(signup)).all(), ts
        assert df[ts].between("2024-01-01", "2024-11-01").all(), ts
        assert (df[ts].dt.microsecond == 0).all(), ts


def test_edge_cases_are_present(shop):
    orders, labels = shop["raw_orders"], shop["churn_labels"]
    # Identical timestamps across customers, some exactly at a label time.
    shared = orders.groupby("order_ts").customer_id.nunique()
    assert (shared > 1).any()
    assert orders.order_ts.isin(labels.label_ts).any()
    # Customers without any ticket, and labels with no earlier order.
    assert shop["raw_support_tickets"].customer_id.nunique() < shop["raw_customers"].customer_id.nunique()
    first_order = orders.groupby("customer_id").order_ts.min()
    no_history = ~(labels.customer_id.map(first_order) <= labels.label_ts)
    assert no_history.sum() > 50


def test_labels(shop):
    labels, orders = shop["churn_labels"], shop["raw_orders"]
    expected_times = pd.date_range("2024-03-01", periods=7, freq="MS") + pd.Timedelta(hours=9)
    assert set(labels.label_ts) == set(expected_times)
    signup = shop["raw_customers"].groupby("customer_id").valid_from.min()
    assert (labels.customer_id.map(signup) < labels.label_ts).all()
    assert 1 <= labels.duplicated().sum() <= 60
    assert not labels.drop_duplicates().duplicated(["customer_id", "label_ts"]).any()

    # churned == no completed order in (label_ts, label_ts + 30 days].
    completed = orders[orders.status == "completed"][["customer_id", "order_ts"]]
    pairs = labels.drop_duplicates().merge(completed, on="customer_id", how="left")
    in_window = (pairs.order_ts > pairs.label_ts) & (pairs.order_ts <= pairs.label_ts + 30 * DAY)
    bought = in_window.groupby([pairs.customer_id, pairs.label_ts]).any()
    churned = labels.drop_duplicates().set_index(["customer_id", "label_ts"]).churned
    assert (churned == (~bought.reindex(churned.index)).astype(int)).all()
    assert 0.15 <= churned.mean() <= 0.35


def test_churn_signal(shop):
    labels = shop["churn_labels"].drop_duplicates()
    orders = shop["raw_orders"]
    pairs = labels.merge(orders, on="customer_id", how="left")
    recent = (pairs.order_ts <= pairs.label_ts) & (pairs.order_ts > pairs.label_ts - 30 * DAY)
    pairs["recent"] = recent
    pairs["recent_return"] = recent & (pairs.status == "returned")
    per_label = pairs.groupby(["customer_id", "label_ts", "churned"])[["recent", "recent_return"]].sum()
    by_class = per_label.groupby("churned").mean()
    assert by_class.recent[1] < 0.6 * by_class.recent[0]
    return_share = by_class.recent_return / by_class.recent
    assert return_share[1] > return_share[0]

    tickets = shop["raw_support_tickets"]
    pairs = labels.merge(tickets, on="customer_id")
    recent = pairs[(pairs.opened_ts <= pairs.label_ts) & (pairs.opened_ts > pairs.label_ts - 90 * DAY)]
    satisfaction = recent.groupby("churned").satisfaction.mean()
    assert satisfaction[1] < satisfaction[0]
