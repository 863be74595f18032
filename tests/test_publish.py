"""`featurekit publish`, `rollback` and `refresh`: snapshots are immutable, switched atomically,
pruned, and a publish that fails or is killed midway leaves the previous snapshot serving."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from featurekit.online.store import OnlineStore
from featurekit.online.publish import publish
from featurekit.online.snapshots import SnapshotDir
from conftest import featurekit_cli
from online_helpers import copy_built_project, dead_pid


@pytest.fixture
def project(built_project, tmp_path):
    return copy_built_project(built_project, tmp_path / "project")


def leftovers(online_dir) -> list[str]:
    return sorted(p.name for p in online_dir.iterdir() if p.name.endswith((".tmp", ".wal")))


@pytest.mark.slow
def test_refresh_publishes_a_snapshot_with_its_manifest(built_project):
    """The session's project was built with `featurekit refresh`, which must have published."""
    snapshots = SnapshotDir(built_project / "online")
    manifest = snapshots.manifest(snapshots.require_current())
    assert set(manifest["feature_sets"]) == {"churn_model", "churn_model_v2"}
    assert set(manifest["views"]) == {
        "customer_profile_v1", "customer_orders_v1", "customer_orders_v2",
        "last_purchase_v1", "support_tickets_v1", "login_activity_v1",
        "support_tickets_v2", "login_activity_v2", "order_velocity_v1",
    }
    profile = manifest["views"]["customer_profile_v1"]
    assert profile["rows"] == 1500 and profile["future_rows"] == 0
    with duckdb.connect(str(snapshots.database(manifest["snapshot_id"])), read_only=True) as con:
        assert con.sql("SELECT count(DISTINCT customer_id) FROM customer_profile_v1").fetchall() == [(1500,)]
    with duckdb.connect(str(built_project / "warehouse.duckdb"), read_only=True) as con:
        # the newest order, not the rows where orders leave the window 30 days later
        newest = con.sql("SELECT max(feature_ts) FROM customer_orders_v1 WHERE loaded_at IS NOT NULL").fetchall()[0][0]
        assert con.sql("SELECT max(feature_ts) FROM customer_orders_v1").fetchall()[0][0] > newest
        # recorded by the online table's build, which reads the history anyway
        assert con.sql("SELECT newest_data FROM online_customer_orders_v1__fk_state").fetchall() == [(newest,)]
    assert manifest["views"]["customer_orders_v1"]["max_feature_ts"] == newest.isoformat() + "+00:00"
    assert len(manifest["dbt_manifest_sha256"]) == 64
    assert manifest["feature_sets"]["churn_model"]["columns"][:3] == ["customer_id", "plan", "tenure_days"]


@pytest.mark.slow
def test_keep_prunes_old_snapshots_and_rollback_steps_back(project):
    online = project / "online"
    ids = [publish(project, keep=2, as_of=f"2024-0{m}-01T00:00:00Z")["snapshot_id"] for m in (3, 4, 5)]
    snapshots = SnapshotDir(online)
    assert snapshots.ids() == ids[1:] and snapshots.current_id() == ids[2]
    result = featurekit_cli("rollback", "--project-dir", str(project))
    assert snapshots.current_id() == ids[1] and ids[1] in result.stderr
    assert OnlineStore(online).snapshot_id == ids[1]
    again = featurekit_cli("rollback", "--project-dir", str(project), check=False)
    assert again.returncode == 2 and "no snapshot older than the current one" in again.stderr
    featurekit_cli("rollback", "--project-dir", str(project), "--to", ids[2])
    assert snapshots.current_id() == ids[2]
    unknown = featurekit_cli("rollback", "--project-dir", str(project), "--to", "nope", check=False)
    assert unknown.returncode == 2 and "snapshot nope is not in" in unknown.stderr


@pytest.mark.slow
def test_publish_failing_midway_leaves_the_previous_snapshot(project):
    """A real failure partway through (one view's online table is gone from the warehouse):
    exit 2 naming the view, nothing new in the snapshot directory, the old one still serves."""
    online = project / "online"
    before = sorted(p.name for p in online.iterdir())
    current = SnapshotDir(online).current_id()
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:
        con.execute("DROP TABLE online_support_tickets_v1")
    result = featurekit_cli("publish", "--project-dir", str(project), check=False)
    assert result.returncode == 2
    assert "online rows of support_tickets_v1" in result.stderr and "featurekit refresh" in result.stderr
    assert len(result.stderr.strip().splitlines()[-1]) < 400 and "Traceback" not in result.stderr
    assert sorted(p.name for p in online.iterdir()) == before
    assert SnapshotDir(online).current_id() == current
    assert OnlineStore(online).get("churn_model", 1)["customer_id"] == 1


@pytest.mark.slow
def test_publish_killed_midway_leaves_the_previous_snapshot(project):
    online = project / "online"
    current = SnapshotDir(online).current_id()
    process = subprocess.Popen(
        [sys.executable, "-m", "featurekit", "publish", "--project-dir", str(project)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".duckdb.tmp") for p in online.iterdir()):
        assert process.poll() is None and time.monotonic() < deadline, "publish ended before it could be killed"
        time.sleep(0.001)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert SnapshotDir(online).current_id() == current
    assert leftovers(online), "the killed publish left its temporary file"
    store = OnlineStore(online)
    assert store.snapshot_id == current and store.get("churn_model", 7)["customer_id"] == 7
    # The next publish succeeds and clears what the killed one left.
    manifest = publish(project)
    assert SnapshotDir(online).current_id() == manifest["snapshot_id"] != current
    assert leftovers(online) == []


@pytest.mark.slow
def test_refresh_with_a_failing_dbt_build_keeps_serving_the_current_snapshot(project):
    online = project / "online"
    current = SnapshotDir(online).current_id()
    model = project / "models" / "features" / "login_activity_v1.sql"
    model.write_text("select no_such_column from {{ ref('stg_logins') }}\n")  # a model dbt cannot build
    result = featurekit_cli("refresh", "--project-dir", str(project), "--select", "login_activity_v1+", check=False)
    assert result.returncode == 1 and "dbt build" in result.stderr  # dbt exits 1 when a model fails
    assert SnapshotDir(online).current_id() == current
    assert "published snapshot" not in result.stderr


@pytest.mark.slow
def test_refresh_of_a_project_dbt_cannot_parse_says_so_in_one_line_and_keeps_serving(project):
    online = project / "online"
    current = SnapshotDir(online).current_id()
    (project / "models" / "online" / "online.yml").write_text("version: 2\nmodels: [\n")  # not YAML
    result = featurekit_cli("refresh", "--project-dir", str(project), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if not line.startswith("featurekit: ")]
    assert len(error) == 1 and error[0] == "Error: `dbt parse` failed (Parsing Error); see dbt's output above", result.stderr
    assert SnapshotDir(online).current_id() == current


def test_publish_needs_a_positive_keep(project):
    result = featurekit_cli("publish", "--project-dir", str(project), "--keep", "0", check=False)
    assert result.returncode == 2 and "keep at least 1" in result.stderr


def test_get_without_a_snapshot_says_what_to_run(tmp_path):
    result = featurekit_cli("get", "--feature-set", "churn_model", "1", "--online-dir", str(tmp_path), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: no published snapshot in {tmp_path}: run `featurekit publish` (or `featurekit refresh`) first"


def test_snapshot_manifest_is_plain_json(built_project):
    snapshots = SnapshotDir(built_project / "online")
    text = snapshots.manifest_path(snapshots.require_current()).read_text()
    assert json.loads(text)["snapshot_id"] == snapshots.current_id()


def damage(path) -> None:
    """Cuts a file to half its size, as a full disk or a bad copy would leave it."""
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


@pytest.mark.slow
def test_rollback_to_a_damaged_snapshot_fails_and_changes_nothing(project):
    online = project / "online"
    snapshots = SnapshotDir(online)
    first = snapshots.current_id()
    second = publish(project)["snapshot_id"]
    damage(snapshots.database(first))
    for args in (["--to", first], []):
        result = featurekit_cli("rollback", *args, "--project-dir", str(project), check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        error = result.stderr.strip()
        assert error.startswith(f"Error: snapshot {first} in {online} is damaged: ") and error.count("\n") == 0, error
        assert error.endswith(f"cannot roll back to it; {second} stays current"), error
        assert snapshots.current_id() == second
    assert OnlineStore(online).get("churn_model", 1)["customer_id"] == 1


@pytest.mark.slow
def test_rollback_follows_the_history_of_what_was_current(project):
    """publish B, rollback, publish C, rollback: back to what was current before C, never
    to B, the snapshot deliberately rolled back from."""
    snapshots = SnapshotDir(project / "online")
    first = snapshots.current_id()
    second = publish(project)["snapshot_id"]
    assert featurekit_cli("rollback", "--project-dir", str(project)).returncode == 0
    assert snapshots.current_id() == first
    third = publish(project)["snapshot_id"]
    assert second < third and second in snapshots.ids()
    featurekit_cli("rollback", "--project-dir", str(project))
    assert snapshots.current_id() == first
    again = featurekit_cli("rollback", "--project-dir", str(project), check=False)
    assert again.returncode == 2 and "no snapshot older than the current one" in again.stderr
    featurekit_cli("rollback", "--to", third, "--project-dir", str(project))
    featurekit_cli("rollback", "--project-dir", str(project))  # steps back from the explicit one
    assert snapshots.current_id() == first


@pytest.mark.slow
def test_publish_first_clears_what_dead_writers_left_and_half_snapshots(project):
    """Temporary files of processes that are gone (a publish killed with -9) and snapshots
    missing their manifest or database: removed by the next publish before it writes, so
    even a publish that then fails (here: a view's online table is gone) frees the disk."""
    online = project / "online"
    snapshots = SnapshotDir(online)
    current = snapshots.current_id()
    pid = dead_pid()
    stale = [online / f".20240101T000000000000Z.{pid}.duckdb.tmp", online / f".20240101T000000000000Z.{pid}.duckdb.tmp.wal",
             online / f".CURRENT.{pid}.tmp"]
    orphans = [snapshots.database("20240102T000000000000Z"), snapshots.manifest_path("20240103T000000000000Z")]
    live = online / f".20240104T000000000000Z.{os.getppid()}.duckdb.tmp"  # a writer still running
    for path in [*stale, *orphans, live]:
        path.write_bytes(b"x" * 100_000)
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:
        con.execute("DROP TABLE online_support_tickets_v1")
    result = featurekit_cli("publish", "--project-dir", str(project), check=False)
    assert result.returncode == 2 and "online rows of support_tickets_v1" in result.stderr
    assert [p.name for p in [*stale, *orphans] if p.exists()] == [] and live.exists()
    assert snapshots.current_id() == current and snapshots.ids() == [current]


@pytest.mark.slow
def test_publish_without_a_feature_view_table_says_which_in_one_line(project):
    with duckdb.connect(str(project / "warehouse.duckdb")) as con:
        con.execute("DROP TABLE customer_orders_v1")
    result = featurekit_cli("publish", "-q", "--project-dir", str(project), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "Error: cannot read the feature views of feature set churn_model: Catalog Error: Table with name "
        "customer_orders_v1 does not exist!; run `featurekit refresh` (or `dbt build`)\n"
    )


@pytest.mark.slow
def test_publish_on_a_full_disk_says_so_in_one_line_and_keeps_the_current_snapshot(project, tmp_path):
    """A real full disk: a 4 MiB tmpfs holding one 2.6 MB snapshot (as root), else, where
    mounting is not allowed, a 1 MiB file size limit on the publishing process."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode == 0
    limit = None if mounted else (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)))
    online = disk / "online"
    try:
        first = publish(project, online_dir=online)["snapshot_id"]
        result = subprocess.run([sys.executable, "-m", "featurekit", "publish", "-q", "--project-dir", str(project),
                                 "--online-dir", str(online)], capture_output=True, text=True, preexec_fn=limit)
        reason = "no space left on the device" if mounted else "over the file size limit"
        assert result.returncode == 2 and result.stderr == (
            f"Error: cannot write the snapshot in {online}: {reason}; free space there (or publish with a lower --keep) "
            f"and publish again; snapshot {first} stays current\n"
        ), result.stderr
        assert SnapshotDir(online).current_id() == first and leftovers(online) == []
        assert OnlineStore(online).get("churn_model", 1)["customer_id"] == 1
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)
