"""`python bench/train_set.py --engine postgres`: featurekit's train-set on PostgreSQL against
the point-in-time join people write by hand there, in the same run, with DuckDB's figures
beside them.

The same generated data as the DuckDB bench (train_set.py) for the one-view case, loaded into
a throwaway PostgreSQL cluster (tests/postgres_server.py: Debian's postgresql, durability off,
shared_buffers 128MB) through a small dbt project built with dbt-postgres. Then, each in a
fresh process, process start included, every run writing the same Parquet:
  featurekit          `python -m featurekit train-set` on the PostgreSQL target (labels checked
                      locally, keys and times up by COPY, the join, rows down by COPY): with
                      the index dbt made for it (featurekit's view_index.sql) as built and
                      vacuumed, then without any index (the sorted pass), then beside each
                      baseline with the baseline's index
The baselines stay as they were: LATERAL's plain index, the sorted form's covering one.
  LATERAL             the usual hand-written query: per label, the view's latest earlier row by
                      LATERAL (... ORDER BY feature_ts DESC LIMIT 1), with the index people
                      create for it, on (customer_id, feature_ts)
  LATERAL sorted+covering  the best hand-tuned form found: labels visited in (key, time)
                      order, a covering index (its features INCLUDEd, vacuumed: index-only
                      scans), the label order restored at the end
and on DuckDB (the bench project of train_set.py): featurekit and raw ASOF SQL.
The baselines run with featurekit's session settings (work_mem 256MB, jit off) and read
labels from a table already in the database (featurekit uploads its own). Wall and client
CPU are per process; server CPU is what the PostgreSQL backends used (the postmaster's
reaped children), so featurekit's total is client + server. Without any index the LATERAL
baseline scans the view once per label (hours at this scale): not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from _common import format_table, mib, run_measured, summarize, use_featurekit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))
import postgres_server  # noqa: E402  (the test suite's throwaway cluster)

SESSION = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET jit = off; SET work_mem = '256MB'"
VIEW, FEATURES = "activity", ["events_7d", "amount_7d", "score"]
TYPES = {"customer_id": "BIGINT", "label_ts": "TIMESTAMP", "churned": "BOOLEAN", "events_7d": "INTEGER",
         "amount_7d": "DOUBLE", "score": "DOUBLE", "activity_v1__feature_ts": "TIMESTAMP"}


def project_files(dsn: dict) -> dict[str, str]:
    view = (
        "select distinct on (customer_id, feature_ts) customer_id, feature_ts, "
        f"{', '.join(FEATURES)}, loaded_at\nfrom {{{{ source('raw', '{VIEW}') }}}}\n"
        "order by customer_id, feature_ts, loaded_at desc\n"
    )
    columns = "".join(f"      - name: {c}\n" for c in ["customer_id", "feature_ts", *FEATURES])
    return {
        "dbt_project.yml": "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\nmodels:\n  bench:\n    +materialized: table\n",
        "profiles.yml": "bench:\n  target: pg\n  outputs:\n    pg:\n" + "".join(f"      {k}: {json.dumps(v)}\n" for k, v in dsn.items()),
        "models/sources.yml": f"version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables: [{{name: {VIEW}}}]\n",
        f"models/{VIEW}_v1.sql": view,
        f"models/{VIEW}.yml": (
            f"version: 2\nmodels:\n  - name: {VIEW}\n    latest_version: 1\n"
            "    config:\n      meta:\n        featurekit: {entity: customer, keys: [customer_id], timestamp: feature_ts}\n"
            f"    columns:\n{columns}    versions:\n      - v: 1\n"
            "exposures:\n  - name: bench_one_view\n    type: ml\n    owner: {name: bench}\n"
            f"    depends_on: [\"ref('{VIEW}', v=1)\"]\n"
        ),
    }


def load(server, data_dir: Path, project: Path) -> None:
    """The raw view rows and the labels (with their row number) into PostgreSQL by COPY; the
    bench project built on them with dbt."""
    import psycopg2

    project.mkdir(parents=True)
    local = duckdb.connect()
    connection = psycopg2.connect(server.dsn())
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA raw")
        cursor.execute(f"CREATE TABLE raw.{VIEW} (customer_id bigint, feature_ts timestamp, events_7d integer, "
                       "amount_7d double precision, score double precision, loaded_at timestamp)")
        cursor.execute("CREATE TABLE raw.labels (customer_id bigint, label_ts timestamp, churned boolean, row_number bigint)")
        for table, query in ((VIEW, f"SELECT * FROM read_parquet('{data_dir / VIEW}.parquet')"),
                             ("labels", "SELECT customer_id, label_ts, churned, file_row_number + 1 "
                                        f"FROM read_parquet('{data_dir}/labels.parquet', file_row_number = true)")):
            csv = project / f"{table}.csv"
            local.execute(f"COPY ({query}) TO '{csv}' (FORMAT csv, HEADER false)")
            with open(csv) as f:
                cursor.copy_expert(f"COPY raw.{table} FROM STDIN WITH (FORMAT csv)", f, size=1 << 20)
            csv.unlink()
        cursor.execute("ANALYZE")
    connection.close()
    for relative, text in project_files({"type": "postgres", "host": server.host, "port": server.port, "user": server.user,
                                         "password": "", "dbname": "postgres", "schema": "bench", "threads": 1}).items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    use_featurekit(project)
    done = subprocess.run([sys.executable, "-m", "featurekit", "dbt", "build", "--project-dir", str(project)],
                            capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"dbt build of the PostgreSQL bench project failed:\n{done.stdout[-3000:]}")


def execute(server, *statements: str) -> None:
    import psycopg2

    connection = psycopg2.connect(server.dsn())
    connection.autocommit = True
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    connection.close()


def drop_indexes(server, table: str) -> None:
    """Every index of `table` (featurekit's, made when dbt built it): the sorted pass's case."""
    import psycopg2

    connection = psycopg2.connect(server.dsn())
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass", (table,))
        names = [name for (name,) in cursor.fetchall()]
    connection.close()
    execute(server, *(f"DROP INDEX {name}" for name in names), "ANALYZE")


def visible(server, table: str) -> None:
    """Prints the share of the table's pages its visibility map marks all-visible (an index-only
    scan reads the table for the others)."""
    import psycopg2

    connection = psycopg2.connect(server.dsn())
    with connection.cursor() as cursor:
        cursor.execute("SELECT relallvisible, relpages FROM pg_class WHERE oid = %s::regclass", (table,))
        all_visible, pages = cursor.fetchone()
    connection.close()
    print(f"  {table}: {all_visible:,} of {pages:,} pages all-visible", flush=True)


def server_cpu(server) -> float:
    """CPU seconds of the cluster's processes that have exited (the backends), as the
    postmaster accounts them: its children's user + system time."""
    pid = int((server.directory / "data" / "postmaster.pid").read_text().split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime


def baseline_case(server, results: Path, sorted_labels: bool) -> Path:
    view, label = f"bench.{VIEW}_v1", "raw.labels"
    pick = (f"LEFT JOIN LATERAL (SELECT {', '.join(FEATURES)}, feature_ts FROM {view} AS v "
            "WHERE v.customer_id = l.customer_id AND v.feature_ts < l.label_ts ORDER BY v.feature_ts DESC LIMIT 1) AS m ON true")
    select = f"l.customer_id, l.label_ts, l.churned, {', '.join('m.' + f for f in FEATURES)}, m.feature_ts"
    if sorted_labels:
        sql = (f"SELECT customer_id, label_ts, churned, {', '.join(FEATURES)}, feature_ts FROM ("
               f"SELECT l.row_number, {select} FROM (SELECT * FROM {label} ORDER BY customer_id, label_ts) AS l {pick}"
               ") AS j ORDER BY row_number")
    else:
        sql = f"SELECT {select} FROM {label} AS l {pick} ORDER BY l.row_number"
    path = results / f"postgres_{'sorted' if sorted_labels else 'lateral'}.json"
    path.write_text(json.dumps({"dsn": server.dsn(), "session": SESSION, "sql": sql, "types": TYPES}))
    return path


def measure(methods: dict, runs: int, server) -> dict:
    measured = {name: [] for name in methods}
    for round_ in range(runs):
        for name, (command, setup) in methods.items():
            if setup and round_ == 0:
                setup()
            print(f"  {name} run {round_ + 1}", flush=True)
            before = server_cpu(server)
            run = run_measured(command)
            time.sleep(0.3)  # the backend exits after its client
            measured[name].append((run, server_cpu(server) - before))
    return measured


def main(args, prepare, disagreements, scales) -> int:
    scale = scales[args.scale]
    runs = args.runs or scale["runs"]
    out = args.out.resolve() / f"train_set_{args.scale}"
    duck_project = prepare(out, args.scale, args.rebuild)  # the DuckDB bench project and the data
    data_dir, results = out / "data", out / "results_postgres"
    results.mkdir(exist_ok=True)
    server = postgres_server.start()
    try:
        project = out / "project_postgres"
        shutil.rmtree(project, ignore_errors=True)
        print(f"loading {scale['rows']:,} view rows and {scale['labels']:,} labels into PostgreSQL", flush=True)
        load(server, data_dir, project)
        baselines = str(BENCH / "train_set_baselines.py")
        outputs = {}

        def train_set(name, target_project):
            outputs[name] = results / f"{name.replace(' ', '_').replace('+', '_')}.parquet"
            return [sys.executable, "-m", "featurekit", "train-set", str(data_dir / "labels.parquet"), "--feature-set",
                    "bench_one_view", "-o", str(outputs[name]), "-q", "--project-dir", str(target_project)]

        def baseline(name, sorted_labels):
            outputs[name] = results / f"{name.replace(' ', '_').replace('+', '_')}.parquet"
            return [sys.executable, baselines, "postgres", str(baseline_case(server, results, sorted_labels)), str(outputs[name])]

        view = f"bench.{VIEW}_v1"
        index = f"CREATE INDEX activity_key_ts ON {view} (customer_id, feature_ts)"
        covering = (f"DROP INDEX bench.activity_key_ts",
                    f"CREATE INDEX activity_covering ON {view} (customer_id, feature_ts) INCLUDE ({', '.join(FEATURES)})",
                    f"VACUUM ANALYZE {view}")
        phases = [
            # the view as dbt built it: featurekit's index, the visibility map not yet set
            # (autovacuum held off, so every run sees the same table)
            ("featurekit's, as built", {"featurekit (PostgreSQL)": (train_set("featurekit built", project), lambda: (execute(
                server, f"ALTER TABLE {view} SET (autovacuum_enabled = false)", "ANALYZE"), visible(server, view)))}),
            ("featurekit's, vacuumed", {"featurekit (PostgreSQL)": (train_set("featurekit vacuumed", project), lambda: execute(
                server, f"VACUUM ANALYZE {view}", f"ALTER TABLE {view} RESET (autovacuum_enabled)"))}),
            ("none", {"featurekit (PostgreSQL)": (train_set("featurekit no index", project), lambda: drop_indexes(server, view))}),
            ("(customer_id, feature_ts)", {
                "featurekit (PostgreSQL)": (train_set("featurekit index", project), lambda: execute(server, index, "ANALYZE")),
                "LATERAL": (baseline("lateral", False), None)}),
            ("covering, vacuumed", {
                "featurekit (PostgreSQL)": (train_set("featurekit covering", project), lambda: execute(server, *covering)),
                "LATERAL sorted+covering": (baseline("lateral sorted", True), None)}),
            ("DuckDB", {
                "featurekit (DuckDB)": (train_set("featurekit duckdb", duck_project), None),
                "raw DuckDB ASOF": ([sys.executable, baselines, "duckdb", str(out / "results" / "one_view.json"),
                                     str(results / "raw_duckdb.parquet")], None)}),
        ]
        outputs["raw DuckDB"] = results / "raw_duckdb.parquet"
        (out / "results").mkdir(exist_ok=True)
        _case_file(duck_project, out)
        figures = []
        for phase, methods in phases:
            for name, pairs in measure(methods, runs, server).items():
                server_seconds = sorted(s for _, s in pairs)[len(pairs) // 2]
                figures.append((phase, name, len(pairs), summarize([r for r, _ in pairs]), server_seconds))
        lateral = next((run.seconds, run.cpu_seconds + s) for _, name, _, run, s in figures if name == "LATERAL")
        rows = [[phase, name, n, f"{run.seconds:.2f} s", f"{run.cpu_seconds:.2f} s", f"{server_seconds:.2f} s",
                 f"{run.cpu_seconds + server_seconds:.2f} s", mib(run.peak_rss), f"{lateral[0] / run.seconds:.2f}x",
                 f"{lateral[1] / (run.cpu_seconds + server_seconds):.2f}x"]
                for phase, name, n, run, server_seconds in figures]
        problems = disagreements({"featurekit": outputs.pop("featurekit built"), **outputs})
    finally:
        postgres_server.stop(server)
    print(f"\ntrain-set on PostgreSQL 15, scale {args.scale}, one view: {scale['labels']:,} labels, {scale['rows']:,} "
          f"view rows ({scale['keys']:,} keys); {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; median of "
          f"{runs} runs, each in a fresh process; peak RSS of the client process")
    print(format_table(["index on the view", "method", "runs", "wall", "client CPU", "server CPU", "total CPU",
                        "client peak RSS", "LATERAL wall / wall", "LATERAL CPU / CPU"], rows, left=2))
    for problem in problems:
        print(f"MISMATCH {problem}")
    print("values: " + ("every method equal to featurekit's, row for row" if not problems else "MISMATCHES above"))
    return 1 if problems else 0


def _case_file(duck_project: Path, out: Path) -> None:
    """The case file of the raw DuckDB baseline (as train_set.py writes it)."""
    (out / "results" / "one_view.json").write_text(json.dumps({
        "warehouse": str(duck_project / "warehouse.duckdb"), "labels": str(out / "data" / "labels.parquet"),
        "key": "customer_id", "timestamp_column": "label_ts", "label_columns": ["customer_id", "label_ts", "churned"],
        "views": [{"ref": f"{VIEW}_v1", "table": f"{VIEW}_v1", "parquet": "", "timestamp": "feature_ts", "features": FEATURES}],
    }))
