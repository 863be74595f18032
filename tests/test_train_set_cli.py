"""`featurekit train-set`: every bad input gets one clear line and exit code 2 and leaves no
file behind (nor sidecar, nor temp file, nor a changed previous output); a good run writes a
sidecar that tells the truth about the run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

import featurekit
from featurekit.catalog import resolve
from featurekit.cli import main
from featurekit.project import Project
from conftest import featurekit_cli

GOOD = "customer_id,label_ts,churned\n1,2024-05-01 00:00:00,1\n2,2024-06-01 09:00:00,0\n"

# (label file, its content, the line train-set prints) for labels the join cannot use
BAD_LABELS = {
    "missing_key": (
        "nokey.csv",
        "user_id,label_ts,churned\n1,2024-05-01 00:00:00,1\n",
        "nokey.csv: no key column 'customer_id', which feature view customer_profile_v1 (entity customer) joins on; "
        "its columns are user_id, label_ts, churned",
    ),
    "missing_timestamp": (
        "nots.csv",
        "customer_id,ts,churned\n1,2024-05-01 00:00:00,1\n",
        "nots.csv: no timestamp column 'label_ts' (name another with --timestamp-column); its columns are customer_id, ts, churned",
    ),
    "unparsable_timestamp": (
        "badts.csv",
        "customer_id,label_ts,churned\n1,2024-05-01 00:00:00,1\n2,yesterday,0\n",
        "badts.csv row 2: label_ts 'yesterday' is not a timestamp; write e.g. 2024-05-01 09:00:00",
    ),
    "mixed_time_zones": (
        "mixed.csv",
        "customer_id,label_ts,churned\n1,2024-05-01 00:00:00,1\n2,2024-05-01T00:00:00+02:00,0\n",
        "mixed.csv: mixed time zones in label_ts: row 2 ('2024-05-01T00:00:00+02:00') has a UTC offset, "
        "row 1 ('2024-05-01 00:00:00') has none; write all label times in one form",
    ),
    "empty_timestamp": (
        "nots2.csv",
        "customer_id,label_ts,churned\n1,2024-05-01 00:00:00,1\n2,,0\n",
        "nots2.csv row 2: label_ts is empty; every label needs a time",
    ),
    "null_key": (
        "nullkey.csv",
        "customer_id,label_ts,churned\n1,2024-05-01 00:00:00,1\n,2024-05-01 00:00:00,0\n",
        "nullkey.csv row 2: key customer_id is empty; every label needs its key",
    ),
    "key_of_wrong_type": (
        "textkey.csv",
        "customer_id,label_ts,churned\n1,2024-05-01 00:00:00,1\nC-2,2024-05-01 00:00:00,0\n",
        "textkey.csv row 2: key customer_id 'C-2' is not a BIGINT like the feature views' customer_id",
    ),
    "empty_file": ("empty.csv", "", "empty.csv is empty; it needs a header and at least one label row"),
    "header_only": ("header.csv", "customer_id,label_ts,churned\n", "header.csv has no label rows"),
    "wrong_extension": ("labels.txt", GOOD, "labels.txt: unsupported label file type '.txt'; use .csv or .parquet"),
    "garbage_parquet": (
        "garbage.parquet",
        "customer_id,label_ts\n1,2024-05-01\n",
        "garbage.parquet: cannot read it as Parquet: Invalid Input Error: No magic bytes found at end of file 'garbage.parquet'",
    ),
    "label_column_named_like_a_feature": (
        "clash.csv",
        "customer_id,label_ts,plan\n1,2024-05-01 00:00:00,pro\n",
        "clash.csv: column 'plan' is also an output of feature view customer_profile_v1; rename or drop it",
    ),
    "label_column_named_like_a_feature_in_other_case": (
        "clash.csv",
        "customer_id,label_ts,Plan\n1,2024-05-01 00:00:00,pro\n",
        "clash.csv: column 'Plan' is also an output of feature view customer_profile_v1 (plan); rename or drop it",
    ),
    "fractional_key": (
        "frac.csv",
        "customer_id,label_ts\n1,2024-05-01 00:00:00\n1.5,2024-05-01 00:00:00\n",
        "frac.csv row 2: key customer_id '1.5' is not a BIGINT like the feature views' customer_id",
    ),
    "time_zone_name": (
        "zone.csv",
        "customer_id,label_ts\n1,2024-03-01 09:00:00 Europe/Berlin\n",
        "zone.csv row 1: label_ts '2024-03-01 09:00:00 Europe/Berlin' names a time zone (Europe/Berlin); featurekit reads "
        "UTC offsets only: write e.g. 2024-05-01 09:00:00+02:00 or 2024-05-01 07:00:00Z",
    ),
    "day_the_month_lacks": (
        "feb.csv",
        "customer_id,label_ts\n1,2024-02-29\n1,2023-02-29 09:00:00\n",
        "feb.csv row 2: label_ts '2023-02-29 09:00:00' is not a timestamp; write e.g. 2024-05-01 09:00:00",
    ),
    "label_time_before_year_1_in_utc": (
        "early.csv",
        "customer_id,label_ts\n1,2024-03-01T00:00:00Z\n1,0001-01-01T00:30:00+01:00\n",
        "early.csv row 2: label_ts '0001-01-01T00:30:00+01:00' is outside the years 1 to 9999 in UTC",
    ),
    "label_time_after_9999_in_utc": (
        "late.csv",
        "customer_id,label_ts\n1,9999-12-31T23:30:00-01:00\n",
        "late.csv row 1: label_ts '9999-12-31T23:30:00-01:00' is outside the years 1 to 9999 in UTC",
    ),
    "dates_with_datetimes_and_offsets": (
        "mixed2.csv",
        "customer_id,label_ts\n1,2024-03-01\n2,2024-03-01 09:00:00\n3,2024-03-01T09:00:00Z\n",
        "mixed2.csv: mixed time zones in label_ts: row 3 ('2024-03-01T09:00:00Z') has a UTC offset, "
        "row 1 ('2024-03-01') has none; write all label times in one form",
    ),
    "duplicate_column": (
        "dup.csv",
        "customer_id,label_ts,customer_id\n1,2024-05-01 00:00:00,2\n",
        "dup.csv: column 'customer_id' appears twice (columns 1 and 3); rename or drop one",
    ),
    "columns_differing_in_case": (
        "case.csv",
        "customer_id,label_ts,churned,Churned\n1,2024-05-01 00:00:00,1,0\n",
        "case.csv: columns 'churned' and 'Churned' differ only in case, which SQL ignores; rename one",
    ),
    "unnamed_column": (
        "unnamed.csv",
        "customer_id,label_ts,\n1,2024-05-01 00:00:00,1\n",
        "unnamed.csv: column 3 has no name in the header; name it or drop it",
    ),
    "row_with_more_values": (
        "ragged.csv",
        "customer_id,label_ts,churned\n1,2024-05-01,1\n2,2024-05-01,1,5\n",
        "ragged.csv row 2 has 4 values but the header has 3 columns; give every row one value per column",
    ),
    "row_with_fewer_values": (
        "ragged.csv",
        "customer_id,label_ts,churned\n1,2024-05-01,1\n2,2024-05-01,1\n3,2024-05-01\n",
        "ragged.csv row 3 has 2 values but the header has 3 columns; give every row one value per column",
    ),
    "column_named_like_featurekits_own": (
        "own.csv",
        "customer_id,label_ts,__fk_input_ts\n1,2024-05-01 00:00:00,1\n",
        "own.csv: column '__fk_input_ts' starts with __fk_, which featurekit reserves for its own columns; rename it",
    ),
    "column_named_like_featurekits_own_in_other_case": (
        "own.csv",
        "customer_id,label_ts,__FK_ROW\n1,2024-05-01 00:00:00,1\n",
        "own.csv: column '__FK_ROW' starts with __fk_, which featurekit reserves for its own columns; rename it",
    ),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current directory with out/ for outputs; messages name paths relative to it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "good.csv").write_text(GOOD)
    return tmp_path


def train_set(*args: str) -> tuple[int, str]:
    """Runs the real command in-process; (exit code, stderr)."""
    result = CliRunner().invoke(main, ["train-set", *args, "-q"])
    return result.exit_code, result.stderr


def assert_fails_cleanly(workdir: Path, args: list[str], message: str) -> None:
    before = sorted(os.listdir(workdir / "out"))
    assert train_set(*args) == (2, f"Error: {message}\n")
    assert sorted(os.listdir(workdir / "out")) == before  # nothing written, nothing left behind


@pytest.mark.parametrize("case", BAD_LABELS)
def test_bad_labels(built_project, workdir, case):
    name, content, message = BAD_LABELS[case]
    (workdir / name).write_text(content)
    args = [name, "--feature-set", "churn_model", "-o", "out/train.parquet", "--project-dir", str(built_project)]
    assert_fails_cleanly(workdir, args, message)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--feature-set", "nope"], "unknown feature set 'nope'; known feature sets: churn_model, churn_model_v2"),
        (
            ["--features", "orders_v1"],
            "--features: unknown feature view 'orders_v1'; known views: customer_orders_v1, customer_orders_v2, "
            "customer_profile_v1, last_purchase_v1, login_activity_v1, login_activity_v2, order_velocity_v1, "
            "support_tickets_v1, support_tickets_v2",
        ),
        (
            ["--features", "customer_orders_v9"],
            "--features: unknown feature view 'customer_orders_v9'; its versions are customer_orders_v1, customer_orders_v2",
        ),
        (
            ["--features", "customer_orders_v1.orders_7d"],
            "--features: feature view customer_orders_v1 has no feature 'orders_7d'; its features are orders_30d, order_value_30d",
        ),
        (
            ["--features", "customer_orders_v1,customer_orders_v2"],
            "--features: feature 'orders_30d' comes from both customer_orders_v1 and customer_orders_v2; select only one of them",
        ),
        (["--features", ","], "--features: no feature reference given; name at least one, e.g. customer_orders_v1.orders_30d"),
        ([], "give exactly one of --feature-set or --features"),
        (["--feature-set", "churn_model", "--features", "customer_orders_v1"], "give exactly one of --feature-set or --features"),
    ],
    ids=["unknown_set", "unknown_view", "unknown_version", "unknown_column", "same_feature_twice", "no_feature", "neither", "both"],
)
def test_bad_feature_selection(built_project, workdir, options, message):
    assert_fails_cleanly(workdir, ["good.csv", *options, "-o", "out/train.parquet", "--project-dir", str(built_project)], message)


def test_labels_of_another_entity(built_project, workdir):
    """Labels keyed by a store cannot take customer features: the message names the view."""
    (workdir / "stores.csv").write_text("store_id,label_ts,sales\n5,2024-05-01 00:00:00,100\n")
    args = ["stores.csv", "--features", "last_purchase_v1", "-o", "out/t.parquet", "--project-dir", str(built_project)]
    message = (
        "stores.csv: no key column 'customer_id', which feature view last_purchase_v1 (entity customer) joins on; "
        "its columns are store_id, label_ts, sales"
    )
    assert_fails_cleanly(workdir, args, message)


@pytest.mark.parametrize(
    "output, message",
    [
        ("out/missing/train.parquet", "-o out/missing/train.parquet: directory out/missing does not exist; create it first"),
        ("out/train.txt", "-o out/train.txt: unsupported output type '.txt'; use .parquet or .csv, or a directory (DIR/)"),
        ("out/..", "-o out/../: name the output, e.g. train/ or train.parquet"),
    ],
)
def test_bad_output(built_project, workdir, output, message):
    assert_fails_cleanly(workdir, ["good.csv", "--feature-set", "churn_model", "-o", output, "--project-dir", str(built_project)], message)


@pytest.mark.parametrize("how", ["same path", "another spelling", "hard link", "symbolic link"])
def test_output_is_the_label_file(built_project, workdir, how):
    labels = workdir / "out" / "labels.csv"
    labels.write_text(GOOD)
    output = {"same path": "out/labels.csv", "another spelling": "./out/../out/labels.csv"}.get(how, "out/link.csv")
    if how == "hard link":
        os.link(labels, workdir / output)
    elif how == "symbolic link":
        os.symlink("labels.csv", workdir / output)
    shown = str(Path(output))
    args = ["out/labels.csv", "--feature-set", "churn_model", "-o", output, "--project-dir", str(built_project)]
    assert_fails_cleanly(workdir, args, f"-o {shown} is the label file out/labels.csv; write the training set to another file")
    assert labels.read_text() == GOOD


def unwritable(directory: Path) -> list[str]:
    """A command prefix under which `directory` cannot be written: a read-only file system
    mounted over it in a mount namespace of its own (root writes anywhere else), or, for
    other users, its write permission taken away."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return []
    script = 'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, "sh", str(directory)]


def test_output_directory_not_writable(built_project, workdir):
    """One line naming the directory, exit 2; the clean-up's own failure does not hide it."""
    (workdir / "ro").mkdir()
    prefix = unwritable(workdir / "ro")
    command = [sys.executable, "-m", "featurekit", "train-set", "good.csv", "--feature-set", "churn_model", "-o", "ro/t.parquet",
               "-q", "--project-dir", str(built_project)]
    result = subprocess.run(prefix + command, cwd=workdir, capture_output=True, text=True)
    reason = "Read-only file system" if prefix else "Permission denied"
    assert (result.returncode, result.stderr) == (2, f"Error: -o ro/t.parquet: cannot write in ro ({reason}); choose another directory\n")


def test_output_file_system_full(built_project, workdir):
    """A write that fails half-way (no space left) is one line, and leaves no temp file."""
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("mounting a small file system needs root")
    (workdir / "full").mkdir()
    labels = built_project / "seeds" / "churn_labels.csv"
    script = 'mount -t tmpfs -o size=4k tmpfs full && "$@"; code=$?; ls -A full; exit $code'
    command = [sys.executable, "-m", "featurekit", "train-set", str(labels), "--feature-set", "churn_model", "-o", "full/t.csv",
               "-q", "--project-dir", str(built_project)]
    result = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", *command], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("Error: -o full/t.csv: cannot write it: ") and result.stderr.count("\n") == 1
    assert "space" in result.stderr
    assert result.stdout == ""  # nothing left in the directory


def test_temp_files_of_a_killed_run_are_removed_by_the_next(built_project, workdir):
    """kill -9 leaves the temp file of the output behind; the next train-set writing the same
    output removes it. Temp files of running processes and of other outputs stay."""
    command = [sys.executable, "-m", "featurekit", "train-set", "good.csv", "--feature-set", "churn_model", "-o", "out/t.parquet",
               "-q", "--project-dir", str(built_project)]
    killed = subprocess.Popen(command, cwd=workdir)
    leftover = workdir / "out" / f".t.parquet.{killed.pid}.tmp"
    deadline = time.monotonic() + 30
    while not leftover.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    killed.kill()
    killed.wait()
    assert leftover.exists()
    running = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        kept = [workdir / "out" / f".t.parquet.{running.pid}.tmp", workdir / "out" / f".other.parquet.{killed.pid}.tmp"]
        for path in kept:
            path.write_text("in use")
        (workdir / "out" / f".t.parquet.featureset.json.{killed.pid}.tmp").write_text("{}")

        assert train_set("good.csv", "--feature-set", "churn_model", "-o", "out/t.parquet", "--project-dir", str(built_project)) == (0, "")
        assert sorted(os.listdir(workdir / "out")) == sorted([p.name for p in kept] + ["t.parquet", "t.parquet.featureset.json"])
    finally:
        running.stdin.close()
        running.wait()


def test_bad_memory_limit(built_project, workdir):
    args = ["good.csv", "--feature-set", "churn_model", "-o", "out/t.parquet", "--memory-limit", "lots", "--project-dir", str(built_project)]
    assert_fails_cleanly(workdir, args, "--memory-limit lots: not a memory size; write e.g. 2GB or 500MB")


def test_missing_label_file(built_project, workdir):
    args = ["nowhere.csv", "--feature-set", "churn_model", "-o", "out/t.parquet", "--project-dir", str(built_project)]
    assert_fails_cleanly(workdir, args, "nowhere.csv: no such file (nowhere.csv)")


def test_missing_warehouse(built_project, workdir):
    missing = workdir / "gone.duckdb"
    args = ["good.csv", "--feature-set", "churn_model", "-o", "out/t.parquet", "--project-dir", str(built_project), "--warehouse", str(missing)]
    assert_fails_cleanly(workdir, args, "warehouse gone.duckdb not found: run `featurekit refresh` (or `dbt build`) first")


def test_warehouse_locked_by_a_writer(built_project, workdir, monkeypatch):
    monkeypatch.setenv("FEATUREKIT_LOCK_TIMEOUT", "1")
    held = workdir / "held.duckdb"
    shutil.copyfile(built_project / "warehouse.duckdb", held)
    writer = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()", str(held)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline() == "open\n"
        args = ["good.csv", "--feature-set", "churn_model", "-o", "out/t.parquet", "--project-dir", str(built_project), "--warehouse", str(held)]
        message = (
            "warehouse held.duckdb is still in use after 1 s: a process outside featurekit writes it (a plain dbt build?); "
            "retry when it is done, or wait longer with FEATUREKIT_LOCK_TIMEOUT=SECONDS"
        )
        before = sorted(os.listdir(workdir / "out"))
        # -q silences progress, not the one line saying why the command waited
        waiting = "featurekit: waiting for held.duckdb: a process outside featurekit writes it (a plain dbt build?) (up to 1 s)"
        assert train_set(*args) == (2, f"{waiting}\nError: {message}\n")
        assert sorted(os.listdir(workdir / "out")) == before
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    # once the writer is gone the same command works
    assert train_set(*args) == (0, "")


def test_manifest_missing_or_stale(built_project, workdir):
    project = workdir / "project"
    shutil.copytree(built_project, project, ignore=shutil.ignore_patterns("target"))
    args = ["good.csv", "--feature-set", "churn_model", "-o", "out/t.parquet", "--project-dir", "project"]
    assert_fails_cleanly(
        workdir, args, f"project/target/manifest.json not found: run `featurekit refresh` (or `dbt build`) in {project} first"
    )

    shutil.copytree(built_project / "target", project / "target")
    assert train_set(*args) == (0, "")
    os.remove(workdir / "out" / "t.parquet")
    os.remove(workdir / "out" / "t.parquet.featureset.json")
    edited = project / "models" / "features" / "customer_orders.yml"
    later = time.time() + 5
    os.utime(edited, (later, later))
    assert_fails_cleanly(
        workdir,
        args,
        "project/models/features/customer_orders.yml changed after dbt last ran, so project/target/manifest.json "
        "and the warehouse may not match it: run `featurekit refresh` (or `dbt build`)",
    )


def test_failed_run_leaves_previous_output_untouched(built_project, workdir):
    (workdir / "out" / "train.parquet").write_bytes(b"last week's training set")
    (workdir / "out" / "train.parquet.featureset.json").write_text('{"last": "week"}')
    (workdir / "bad.csv").write_text("customer_id,label_ts\n1,not a time\n")
    args = ["bad.csv", "--feature-set", "churn_model", "-o", "out/train.parquet", "--project-dir", str(built_project)]
    assert_fails_cleanly(workdir, args, "bad.csv row 1: label_ts 'not a time' is not a timestamp; write e.g. 2024-05-01 09:00:00")
    assert (workdir / "out" / "train.parquet").read_bytes() == b"last week's training set"
    assert (workdir / "out" / "train.parquet.featureset.json").read_text() == '{"last": "week"}'


def test_one_line_and_no_traceback_from_the_real_process(built_project, tmp_path):
    (tmp_path / "nokey.csv").write_text("user_id,label_ts\n1,2024-05-01\n")
    result = featurekit_cli(
        "train-set", "nokey.csv", "--feature-set", "churn_model", "-o", "t.parquet", "-q", "--project-dir", str(built_project),
        cwd=tmp_path, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: nokey.csv: no key column 'customer_id'")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["nokey.csv"]


def test_a_label_column_named_rowid(built_project, workdir):
    """DuckDB numbers rows with a column it calls rowid: a label column of that name must
    neither reorder the rows nor give one customer's features to another."""
    rows = "1,2024-03-01 09:00:00,5\n3,2024-03-01 09:00:00,5\n6,2024-03-01 09:00:00,1\n8,2024-06-01 09:00:00,0\n"
    (workdir / "r.csv").write_text("customer_id,label_ts,rowid\n" + rows)
    (workdir / "n.csv").write_text("customer_id,label_ts,n\n" + rows)
    for name in ("r", "n"):
        assert train_set(f"{name}.csv", "--feature-set", "churn_model", "-o", f"out/{name}.csv", "--project-dir", str(built_project)) == (0, "")
    with_rowid = (workdir / "out" / "r.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in with_rowid[1:]] == ["1", "3", "6", "8"]
    assert with_rowid[0].startswith("customer_id,label_ts,rowid,")
    assert with_rowid[1:] == (workdir / "out" / "n.csv").read_text().splitlines()[1:]


# ---------------------------------------------------------------------------------------------
# The sidecar


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("output", ["train.parquet", "train.csv"])
def test_sidecar_tells_the_truth(built_project, tmp_path, output):
    labels = tmp_path / "labels.csv"
    lines = (built_project / "seeds" / "churn_labels.csv").read_text().splitlines()
    labels.write_text("\n".join(lines[:300] + lines[1:40] + ["999999,2024-05-01 00:00:00,1"]) + "\n")  # duplicates, unknown key
    out = tmp_path / output
    featurekit_cli("train-set", str(labels), "--feature-set", "churn_model", "-o", str(out), "--project-dir", str(built_project))

    sidecar = json.loads((tmp_path / f"{output}.featureset.json").read_text())
    manifest_path = built_project / "target" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    spec = resolve(Project(built_project), feature_set="churn_model")
    reader = "read_parquet" if output.endswith(".parquet") else "read_csv"
    frame = duckdb.connect().execute(f"SELECT * FROM {reader}('{out}')")
    columns = [d[0] for d in frame.description]
    rows = frame.fetchall()

    assert sidecar["featurekit_version"] == featurekit.__version__
    assert sidecar["feature_set"] == "churn_model" and sidecar["features"] is None
    assert sidecar["dbt_manifest_sha256"] == sha256(manifest_path)
    label_rows = len(labels.read_text().splitlines()) - 1
    assert sidecar["labels"] == {
        "path": str(labels),
        "sha256": sha256(labels),
        "rows": label_rows,
        "columns": ["customer_id", "label_ts", "churned"],
        "timestamp_column": "label_ts",
    }
    assert sidecar["output"] == {"path": str(out), "rows": len(rows), "format": output.split(".")[1]}
    assert len(rows) == label_rows
    # The versions the exposure pins, in its order, each with the rules the join applied.
    pinned = [f"{r['name']}_v{r['version']}" for r in manifest["exposures"]["exposure.shop.churn_model"]["refs"]]
    assert [v["view"] for v in sidecar["views"]] == pinned
    for record, view in zip(sidecar["views"], spec["views"]):
        for field in ["name", "version", "relation", "entity", "keys", "timestamp", "available_at", "ttl", "features"]:
            assert record[field] == view[field], (view["ref"], field)
        matched = sum(row[columns.index(view["ref"] + "__feature_ts")] is not None for row in rows)
        assert (record["rows_matched"], record["rows_missing_or_expired"]) == (matched, len(rows) - matched)
        assert 0 < matched < len(rows)
    assert "strictly before" in sidecar["join"]["rule"]
