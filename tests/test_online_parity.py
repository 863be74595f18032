"""Parity, the point of the product: what the online store serves at request time t equals
what train-set gives for the same (key, t), in every column.

For many sampled times t, a snapshot of the data known before t is published (`publish
--as-of t`: the macro online_rows at t), every customer (and unknown ones) is looked
up at t, at t + 1 µs and at both sides of each view's ttl edge, and the result is compared with
featurekit.training_set over the same (key, time) rows. Python applies ttl, request-time
features and fill on the fast path; this test is what proves it matches the macros.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import featurekit
from featurekit.online.store import OnlineStore
from featurekit.online.publish import publish
from conftest import featurekit_cli
from online_helpers import copy_built_project, mismatches

US = timedelta(microseconds=1)
FEATURE_SETS = ["churn_model", "churn_model_v2"]


def sampled_times() -> list[datetime]:
    """Label instants (orders land exactly on them), the edges of the data, and random times."""
    rng = random.Random(3)
    fixed = [datetime(2024, 1, 2), datetime(2024, 3, 1, 9), datetime(2024, 7, 1, 9), datetime(2024, 12, 20)]
    start = datetime(2024, 1, 5)
    randoms = [start + timedelta(seconds=rng.randrange(300 * 86400), microseconds=rng.randrange(10**6)) for _ in range(8)]
    return fixed + randoms


@pytest.fixture(scope="module")
def project(built_project, tmp_path_factory):
    return copy_built_project(built_project, tmp_path_factory.mktemp("parity") / "project")


def requests_at(store: OnlineStore, feature_set: str, t: datetime) -> pd.DataFrame:
    """(customer_id, request_ts) rows: every customer and two unknown ones at t and t + 1 µs,
    then each view's ttl edge (feature_ts + ttl, the last alive instant) and 1 µs past it."""
    customers = list(range(0, 1503)) + [10**12]
    rows = [(c, t) for c in customers] + [(c, t + US) for c in customers[::7]]
    at_t = store.get_frame(feature_set, customers, request_ts=t)
    for view in store.feature_sets()[feature_set]["views"]:
        if not view["ttl_seconds"]:
            continue
        alive = at_t[at_t[f"{view['ref']}__feature_ts"].notna()]
        for customer, feature_ts in zip(alive["customer_id"], alive[f"{view['ref']}__feature_ts"]):
            edge = feature_ts.to_pydatetime() + timedelta(seconds=view["ttl_seconds"])
            rows += [(customer, edge), (customer, edge + US)]
    return pd.DataFrame(rows, columns=["customer_id", "label_ts"])


def serve(store: OnlineStore, feature_set: str, requests: pd.DataFrame) -> pd.DataFrame:
    """One lookup per request row, as a frame typed like get_frame's."""
    rows, schema = [], None
    for customer, ts in zip(requests["customer_id"].tolist(), requests["label_ts"].tolist()):
        served = store.lookup(feature_set, [customer], ts.to_pydatetime())
        rows += served.rows
        schema = served.schema
    return pa.Table.from_pylist([dict(zip(schema.names, row)) for row in rows], schema=schema).to_pandas()


@pytest.mark.slow
def test_served_equals_train_set_at_many_times(project, tmp_path):
    online_dir = tmp_path / "online"
    compared = expired_at_edge = future_rows = 0
    for t in sampled_times():
        manifest = publish(project, online_dir=online_dir, as_of=t, keep=2)
        future_rows += sum(v["future_rows"] for v in manifest["views"].values())
        store = OnlineStore(online_dir, snapshot=manifest["snapshot_id"])
        for feature_set in FEATURE_SETS:
            requests = requests_at(store, feature_set, t)
            served = serve(store, feature_set, requests)
            offline = featurekit.training_set(requests, feature_set=feature_set, project_dir=project)
            columns = [c for c in offline.columns if c not in ("customer_id", "label_ts")]
            assert columns == [c for c in served.columns if not c.endswith("__age_seconds")][1:]
            bad = mismatches(served, offline, columns)
            assert not bad, f"t={t} {feature_set}: " + "; ".join(f"{c}: {len(v)} rows, e.g. {v[:3]}" for c, v in bad.items())
            compared += len(requests)
            edges = requests["label_ts"] > t + US
            ts_columns = [c for c in columns if c.endswith("__feature_ts")]
            expired_at_edge += int(served.loc[edges, ts_columns].isna().sum().sum())
    # The comparison was not vacuous: many rows, expiries at the ttl edge, future-dated rows.
    assert compared > 40_000
    assert expired_at_edge > 100
    assert future_rows > 0


@pytest.mark.slow
def test_served_frame_has_the_train_set_file_types(project, tmp_path):
    """The Parquet file `featurekit train-set` writes and get_frame agree on types and values."""
    t = datetime(2024, 6, 15, 12, 30)
    online_dir = tmp_path / "online"
    publish(project, online_dir=online_dir, as_of=t)
    store = OnlineStore(online_dir)
    customers = list(range(1, 400))
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"customer_id": customers, "label_ts": t}).to_csv(labels, index=False)
    out = tmp_path / "train.parquet"
    featurekit_cli("train-set", str(labels), "--feature-set", "churn_model", "-o", str(out), "--project-dir", str(project))
    train_schema = pq.read_schema(out)
    served_schema = store.schema("churn_model")
    for field in served_schema:
        if not field.name.endswith("__age_seconds"):
            assert train_schema.field(field.name).type == field.type, field.name
    train = pd.read_parquet(out).drop(columns=["label_ts"])
    served = store.get_frame("churn_model", customers, request_ts=t)[train.columns]
    pd.testing.assert_frame_equal(served, train, check_dtype=True)


@pytest.mark.slow
def test_dbt_built_online_tables_equal_the_rendered_macro(project, tmp_path):
    """`publish` copies what dbt built (as of the build); `publish --as-of` renders the same
    macro. At the build's own as-of time both give the same snapshot."""
    online_dir = tmp_path / "online"
    built = publish(project, online_dir=online_dir)
    rendered = publish(project, online_dir=online_dir, as_of=built["as_of"])
    assert rendered["as_of"] == built["as_of"]
    a = OnlineStore(online_dir, snapshot=built["snapshot_id"])
    b = OnlineStore(online_dir, snapshot=rendered["snapshot_id"])
    for ref, record in built["views"].items():
        assert {k: v for k, v in record.items() if k != "relation"} == {
            k: v for k, v in rendered["views"][ref].items() if k != "relation"
        }
    keys = list(range(1, 1501))
    for ts in [built["as_of"], "2030-01-01T00:00:00Z"]:
        assert a.get("churn_model", keys, request_ts=ts) == b.get("churn_model", keys, request_ts=ts)
