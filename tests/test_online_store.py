"""OnlineStore: call shapes, unknown keys, snapshot switching under load, and the
served-feature log."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta

import duckdb
import pyarrow.parquet as pq
import pytest

from featurekit import FeaturekitError, OnlineStore
from featurekit.online.publish import publish
from featurekit.monitor.served_log import ServedLog
from featurekit.online.snapshots import SnapshotDir
from conftest import featurekit_cli
from online_helpers import copy_built_project, dead_pid

AT = "2024-10-20T12:00:00Z"


@pytest.fixture
def project(built_project, tmp_path):
    return copy_built_project(built_project, tmp_path / "project")


@pytest.mark.slow
def test_call_shapes_and_unknown_keys(built_project):
    store = OnlineStore(built_project / "online")
    one = store.get("churn_model", {"customer_id": 5}, request_ts=AT)
    assert list(one) == store.columns("churn_model")
    assert store.get("churn_model", 5, request_ts=AT) == one
    assert store.get("churn_model", [5, {"customer_id": 6}], request_ts=AT)[0] == one
    # An unknown key gets each view's fill policy, never an exception.
    unknown = store.get("churn_model", 10**15, request_ts=AT)
    assert unknown["plan"] == "unknown" and unknown["orders_30d"] == 0.0 and unknown["days_since_last_purchase"] == 365
    assert unknown["avg_satisfaction_90d"] == 3.5 and unknown["customer_orders_v1__feature_ts"] is None
    assert unknown["customer_orders_v1__age_seconds"] is None
    frame = store.get_frame("churn_model", [5, 6], request_ts=AT)
    assert frame["customer_id"].tolist() == [5, 6] and list(frame.columns) == store.columns("churn_model")
    with pytest.raises(FeaturekitError, match="unknown feature set 'nope'; known feature sets: churn_model, churn_model_v2"):
        store.get("nope", 5)
    with pytest.raises(FeaturekitError, match="must have exactly the key columns customer_id"):
        store.get("churn_model", {"id": 5})
    with pytest.raises(FeaturekitError, match="request_ts 'soon' is not a timestamp"):
        store.get("churn_model", 5, request_ts="soon")


@pytest.mark.slow
def test_age_is_request_time_minus_feature_time(built_project):
    store = OnlineStore(built_project / "online")
    row = store.get("churn_model", 5, request_ts=datetime(2024, 11, 1))
    feature_ts = row["customer_profile_v1__feature_ts"]
    assert row["customer_profile_v1__age_seconds"] == (datetime(2024, 11, 1) - feature_ts).total_seconds()


@pytest.mark.slow
def test_lookups_during_20_publishes_never_fail_or_mix_snapshots(project):
    """Each publish carries its own marker m in two different views (plan = 'm<m>', and a last
    purchase m days before the request); every response must show one marker throughout, the
    one of the snapshot it names."""
    online = project / "online"
    warehouse = project / "warehouse.duckdb"
    keys = list(range(1, 30))
    store = OnlineStore(online, check_every=0)
    markers: dict[str, int] = {}
    responses, failures, done = [], [], threading.Event()

    def mark_and_publish(marker: int) -> None:
        with duckdb.connect(str(warehouse)) as con:
            con.execute(f"UPDATE online_customer_profile_v1 SET plan = 'm{marker}'")
            con.execute(f"UPDATE online_last_purchase_v1 SET last_purchase_ts = TIMESTAMP '2024-10-20 12:00:00' - INTERVAL {marker} DAYS")
        markers[publish(project, keep=25)["snapshot_id"]] = marker

    def read() -> None:
        while not done.is_set():
            try:
                responses.append(store.lookup("churn_model", keys, AT))
            except Exception as e:  # counted: the test fails on any
                failures.append(repr(e))

    mark_and_publish(100)
    store.reload()
    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for marker in range(101, 121):
            mark_and_publish(marker)
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert failures == []
    assert len({r.snapshot_id for r in responses}) >= 3, "the readers should have seen several snapshots"
    columns = responses[0].columns
    plan, signed_up, days, bought = (columns.index(c) for c in (
        "plan", "customer_profile_v1__feature_ts", "days_since_last_purchase", "last_purchase_v1__feature_ts"))
    for response in responses:
        marker = markers[response.snapshot_id]
        assert {row[plan] for row in response.rows if row[signed_up] is not None} == {f"m{marker}"}
        assert {row[days] for row in response.rows if row[bought] is not None} == {marker}


@pytest.mark.slow
def test_served_log_records_every_vector_in_the_train_set_columns(built_project, tmp_path):
    log_dir = tmp_path / "log"
    store = OnlineStore(built_project / "online", log_dir=log_dir)
    served = [store.lookup("churn_model", [k, k + 1], AT) for k in range(1, 40, 2)]
    store.get("churn_model_v2", 3, request_ts=AT)
    store.close()
    files = sorted((log_dir / "churn_model").glob("served-*.parquet"))
    assert len(files) == 1 and not list(log_dir.rglob("*.tmp"))
    assert len(list((log_dir / "churn_model_v2").glob("served-*.parquet"))) == 1
    table = pq.read_table(files[0])
    train_columns = [c for c in served[0].columns if not c.endswith("__age_seconds")]
    assert table.column_names == ["feature_set", "request_ts", "served_at", "snapshot_id", *train_columns]
    assert str(table.schema.field("request_ts").type) == "timestamp[us]"
    rows = table.to_pylist()
    assert len(rows) == 40
    expected = [dict(zip(s.columns, r)) for s in served for r in s.rows]
    for logged, vector in zip(rows, expected):
        assert logged["snapshot_id"] == store.snapshot_id and logged["feature_set"] == "churn_model"
        assert logged["request_ts"] == datetime(2024, 10, 20, 12)
        assert {c: logged[c] for c in train_columns} == {c: vector[c] for c in train_columns}


@pytest.mark.slow
def test_served_log_rotates_by_size(built_project, tmp_path):
    store = OnlineStore(built_project / "online", log_dir=tmp_path)
    store.log.max_bytes = 1  # every write completes a file
    for k in range(1, 6):
        store.get("churn_model", k, request_ts=AT)
        store.log.flush()
    store.close()
    files = sorted((tmp_path / "churn_model").glob("served-*.parquet"))
    assert len(files) == 5
    assert sum(pq.read_metadata(f).num_rows for f in files) == 5


@pytest.mark.slow
def test_served_log_drops_and_counts_instead_of_blocking(built_project, tmp_path):
    """With a queue of one, a burst outruns the writer: lookups never wait, and every vector
    is either written or counted as dropped."""
    store = OnlineStore(built_project / "online")
    store.log = ServedLog(tmp_path, queue_size=1)
    for k in range(1, 2001):
        store.get("churn_model", k, request_ts=AT)
    store.close()
    written = sum(pq.read_metadata(f).num_rows for f in (tmp_path / "churn_model").glob("served-*.parquet"))
    assert store.log.dropped > 0
    assert written + store.log.dropped == 2000 == store.log.written_rows + store.log.dropped


@pytest.mark.slow
def test_a_batch_equals_its_keys_looked_up_one_by_one(project):
    """From BATCH keys on, a lookup computes the keys together (numpy, views gathered by
    their row layout): the same values and types as one key at a time, known or not, with
    future rows held (snapshots as of June: every view has keys with several rows; as of
    mid-November: some views do, so a batch gathers views out of the served order), at and
    a microsecond around row instants."""
    from featurekit.online.store import BATCH

    keys = list(range(0, 1503))  # 0 and 1501-1502 are unknown
    assert len(keys) >= BATCH
    odd = [5.0, True, 10**20] + keys[:BATCH]  # not plain int64 keys: looked up as Python compares them
    for as_of in ("2024-06-01T00:00:00Z", "2024-11-15T00:00:00Z"):
        publish(project, as_of=as_of)
        store = OnlineStore(project / "online")
        with duckdb.connect(str(project / "online" / f"{store.snapshot_id}.duckdb"), read_only=True) as con:
            instants = [r[0] for r in con.sql(f"SELECT __fk_at FROM customer_orders_v1 WHERE __fk_at >= '{as_of[:10]}' ORDER BY __fk_at LIMIT 3").fetchall()]
        times = ["2024-05-01T00:00:00Z", as_of, "2024-07-15T08:30:00Z", "2024-11-30T00:00:00Z"]
        times += [t + timedelta(microseconds=d) for t in instants for d in (-1, 0, 1)]
        for batch_keys in (keys, odd):
            _assert_batch_is_one_by_one(store, batch_keys, times)


@pytest.mark.slow
@pytest.mark.parametrize("change, keys", [
    # spread over a range many times their number: numbered by binary search
    ("UPDATE {table} SET customer_id = customer_id * 1000003", [k * 1000003 for k in range(0, 1503)] + [7]),
    # not integers: numbered by a dict
    ("ALTER TABLE {table} ALTER customer_id TYPE VARCHAR", [str(k) for k in range(0, 1503)] + [5]),
], ids=["sparse integers", "text"])
def test_a_batch_equals_its_keys_looked_up_one_by_one_whatever_the_keys(project, change, keys):
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:
        tables = con.sql("SELECT table_name FROM information_schema.columns WHERE table_name LIKE 'online_%' AND column_name = 'customer_id'").fetchall()
        for (table,) in tables:
            con.execute(change.format(table=table))
    publish(project)
    _assert_batch_is_one_by_one(OnlineStore(project / "online"), keys, [AT, "2024-11-30T00:00:00Z"])


def _assert_batch_is_one_by_one(store, keys, times):
    for feature_set in store.feature_sets():
        for at in times:
            batch = store.get(feature_set, keys, request_ts=at)
            assert repr(batch) == repr([store.get(feature_set, key, request_ts=at) for key in keys]), (feature_set, at)


@pytest.mark.slow
def test_served_log_removes_the_temporary_files_of_a_killed_server(built_project, tmp_path):
    folder = tmp_path / "churn_model"
    folder.mkdir()
    stale = folder / f".served-20240101T000000-1.parquet.{dead_pid()}.tmp"
    live = folder / f".served-20240101T000000-2.parquet.{os.getppid()}.tmp"  # another server, still running
    for path in (stale, live):
        path.write_bytes(b"x" * 10_000)
    store = OnlineStore(built_project / "online", log_dir=tmp_path)
    store.get("churn_model", 1, request_ts=AT)
    store.close()
    assert not stale.exists() and live.exists()
    assert len(list(folder.glob("served-*.parquet"))) == 1


@pytest.mark.slow
def test_a_snapshot_mapped_by_a_reader_survives_publish_and_clean_up(project):
    online = project / "online"
    old = OnlineStore(online, snapshot=SnapshotDir(online).current_id())
    keys = list(range(1, 60))
    before = old.get("churn_model", keys, request_ts=AT)
    for _ in range(3):
        publish(project, keep=1)  # prunes the old snapshot: its files are unlinked
    assert not SnapshotDir(online).serving(old.snapshot_id).exists()
    assert old.get("churn_model", keys, request_ts=AT) == before
    assert old.get("churn_model", 7, request_ts=AT) == before[6]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_bad_serving_files_fail_in_one_line_naming_the_snapshot_and_the_previous_keeps_serving(project, damage):
    online = project / "online"
    snapshots = SnapshotDir(online)
    served = snapshots.current_id()
    store = OnlineStore(online, check_every=0)
    bad = publish(project)["snapshot_id"]
    snapshots.switch(served)
    assert store.get("churn_model", 3, request_ts=AT)["customer_id"] == 3 and store.snapshot_id == served
    rows = snapshots.serving(bad) / "customer_orders_v1.rows.arrow"
    size = rows.stat().st_size
    if damage == "truncated":
        with open(rows, "r+b") as f:
            f.truncate(size // 2)
        reason = f"serving file customer_orders_v1.rows.arrow is {size // 2:,} bytes, not {size:,}"
    else:
        rows.write_bytes(b"x" * size)
        reason = "serving file customer_orders_v1.rows.arrow cannot be read: "
    snapshots.switch(bad)  # as a publish that wrote bad files would have
    result = featurekit_cli("get", "--feature-set", "churn_model", "1", "--online-dir", str(online), check=False)
    assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: snapshot {bad} in {online} is damaged: {reason}"), result.stderr
    deadline = time.monotonic() + 10
    while store.reload_error is None and time.monotonic() < deadline:
        store.get("churn_model", 3, request_ts=AT)  # starts the background load
        time.sleep(0.01)
    assert store.failed_snapshot == bad and reason in store.reload_error
    assert store.snapshot_id == served and store.get("churn_model", 3, request_ts=AT)["customer_id"] == 3


@pytest.mark.parametrize("seed", range(4))
def test_integer_keys_are_numbered_as_sorting_all_views_keys_would(seed):
    """layout_writer._numbered marks keys over their range when they are close together; it must
    give what sorting every view's distinct keys together gives (the distinct keys, each
    row's number, the dense map or none), however the views' keys spread, overlap or are
    ordered (publish reads them in no particular order)."""
    import numpy as np
    from featurekit.online.layout_writer import DENSE, _numbered

    rng = np.random.default_rng(seed)
    for _ in range(500):
        views = {}
        for v in range(int(rng.integers(0, 4))):
            span, base = int(rng.choice([5, 40, 1000, 2**61])), int(rng.choice([0, -70, 2**62, -(2**62)]))
            views[f"v{v}"] = (rng.integers(-span // 2, span // 2, int(rng.integers(0, 25))) + base).astype(np.int64)
        distinct = np.unique(np.concatenate([*views.values(), np.zeros(0, np.int64)]))
        got, numbers, dense = _numbered(views)
        assert got.tolist() == distinct.tolist()
        assert {ref: n.tolist() for ref, n in numbers.items()} == {ref: np.searchsorted(distinct, v).tolist() for ref, v in views.items()}
        spread = len(distinct) and int(distinct[-1]) - int(distinct[0]) < DENSE * len(distinct)
        assert (dense is not None) == bool(spread)
        if spread:
            expected = np.full(int(distinct[-1]) - int(distinct[0]) + 1, -1)
            expected[distinct - distinct[0]] = np.arange(len(distinct))
            assert dense.tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(4))
def test_view_rows_are_put_in_key_number_then_time_order(seed):
    """layout_writer._by_number_and_time orders a view's rows read in any order: by key number, then
    __fk_at, as the lookups' binary search needs; by counting when every key has one row."""
    import numpy as np
    import pyarrow as pa
    from featurekit.online.layout_writer import _by_number_and_time

    rng = np.random.default_rng(seed)
    for _ in range(300):
        size, rows = int(rng.integers(1, 30)), int(rng.integers(0, 40))
        one_each = rng.random() < 0.5
        numbers = rng.permutation(size)[:rows] if one_each else rng.integers(0, size, rows)
        if rng.random() < 0.2:
            numbers = np.sort(numbers)
        at = rng.integers(-5, 5, len(numbers)) * 10**6
        counts = np.bincount(numbers, minlength=size)
        order = _by_number_and_time(numbers, counts, np.cumsum(counts), pa.array(at))
        order = np.arange(len(numbers)) if order is None else order
        assert sorted(order.tolist()) == list(range(len(numbers)))
        assert list(zip(numbers[order].tolist(), at[order].tolist())) == sorted(zip(numbers.tolist(), at.tolist()))
