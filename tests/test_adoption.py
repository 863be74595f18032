"""featurekit added to a dbt project it did not create, the way a user meets it.

The project is made from nothing here: its own project and profile names, a profile outside
the project (DBT_PROFILES_DIR) whose DuckDB path comes from env_var() and whose default
target is not the one used (DBT_TARGET), a non-default schema, models, seeds and macros in
folders of its own, text keys, and a packages.yml with an entry of its own. Then:
`featurekit init`, plain `dbt deps && dbt build` (dbt's own CLI), and train-set, publish,
get, serve + parity, refresh and the catalog commands, with values checked against a
brute-force oracle written from the README's semantics.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from urllib.request import Request, urlopen

import duckdb
import pandas as pd
import pytest
import yaml

from featurekit.dbt_package import PACKAGE_DIR, VENDOR_DIR
from online_helpers import history_read, running_server

DBT = str(Path(sys.executable).with_name("dbt"))
START = datetime(2024, 3, 1)
WINDOW = timedelta(days=7)
ACCOUNTS = [f"acc-{i:03d}" for i in range(1, 31)]

DBT_PROJECT = """\
name: acme_analytics
version: "2.3.0"
config-version: 2
profile: acme_warehouse
model-paths: ["transform"]
seed-paths: ["raw"]
macro-paths: ["dbt_macros"]
test-paths: ["dbt_tests"]

models:
  acme_analytics:
    feature_store:
      +materialized: incremental
      +incremental_strategy: featurekit_history
      +full_refresh: false
    serving:
      +materialized: featurekit_online
seeds:
  acme_analytics:
    +column_types: {payment_ts: timestamp, plan_ts: timestamp, loaded_at: timestamp, amount: double}
"""

PROFILES = """\
acme_warehouse:
  target: laptop
  outputs:
    laptop:
      type: duckdb
      path: "{{ env_var('ACME_DATA') }}/laptop.duckdb"
    ci:
      type: duckdb
      path: "{{ env_var('ACME_DATA') }}/acme_ci.duckdb"
      schema: analytics
      threads: 2
"""

PACKAGES = """\
# the team's shared macros
packages:
  - local: ../acme_shared   # kept by featurekit init
"""

PLAN_VIEW = """\
{{ config(unique_key=['account_id', 'feature_ts']) }}
select account_id, plan_ts as feature_ts, plan, seats, loaded_at
from {{ ref('plans') }}
{% if is_incremental() %}
where loaded_at > {{ featurekit.newest(this, 'loaded_at') }}
{% endif %}
"""

PAYMENT_VIEW = """\
{{ config(unique_key=['account_id', 'feature_ts']) }}
{{ featurekit.window_history(
    ref('payments'),
    keys=['account_id'],
    timestamp='payment_ts',
    loaded_at='loaded_at',
    aggregates=[
        {'name': 'payments_7d', 'function': 'count', 'window': '7 days'},
        {'name': 'amount_7d', 'function': 'sum', 'column': 'amount', 'window': '7 days'},
    ],
    existing=this if is_incremental() else none,
) }}
"""

VIEWS_YML = """\
version: 2
models:
  - name: account_plan
    latest_version: 1
    config:
      meta:
        featurekit:
          entity: account
          keys: [account_id]
          timestamp: feature_ts
          fill: {seats: 0}
    data_tests: [featurekit.unique_history]
    columns:
      - name: account_id
      - name: feature_ts
      - name: plan
      - name: seats
    versions:
      - v: 1
  - name: account_payments
    latest_version: 1
    config:
      meta:
        featurekit:
          entity: account
          keys: [account_id]
          timestamp: feature_ts
          fill: {payments_7d: 0, amount_7d: 0}
    data_tests: [featurekit.unique_history]
    columns:
      - name: account_id
      - name: feature_ts
      - name: payments_7d
      - name: amount_7d
    versions:
      - v: 1

exposures:
  - name: risk_model
    type: ml
    owner: {name: Risk, email: risk@example.com}
    depends_on:
      - ref('account_plan', v=1)
      - ref('account_payments', v=1)
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_data(rng: random.Random) -> tuple[list[dict], list[dict], list[dict]]:
    """Plan changes, payments (several at one instant, some exactly a week apart) and labels
    (before any row, at a row's instant, a week after a payment, duplicated, unknown accounts)."""
    def at(day: float) -> datetime:
        return START + timedelta(seconds=round(day * 86400))

    plans, payments = [], []
    for account in ACCOUNTS[:-3]:  # the last accounts have no rows at all
        days = sorted(rng.sample(range(0, 60), 3))
        for day in days:
            plans.append({"account_id": account, "plan_ts": at(day + 0.5), "plan": rng.choice(["free", "team", None]),
                          "seats": rng.choice([1, 5, None]), "loaded_at": at(day + 1)})
        for _ in range(rng.randint(0, 12)):
            t = at(rng.choice([rng.uniform(0, 60), rng.randint(0, 60)]))
            for _ in range(rng.choice([1, 1, 2])):
                payments.append({"account_id": account, "payment_ts": t, "amount": round(rng.uniform(1, 100), 2),
                                 "loaded_at": t + timedelta(hours=1)})
    labels = []
    for i in range(150):
        account = rng.choice(ACCOUNTS)
        own = [p["payment_ts"] for p in payments if p["account_id"] == account]
        t = rng.choice([at(rng.uniform(-5, 70)), *(own and [rng.choice(own), rng.choice(own) + WINDOW])])
        labels.append({"account_id": account, "label_ts": t, "defaulted": i % 3 == 0})
    labels += labels[:5]  # duplicates
    return plans, payments, labels


def oracle(plans, payments, labels) -> pd.DataFrame:
    rows = []
    for label in labels:
        t, account = label["label_ts"], label["account_id"]
        before = [p for p in plans if p["account_id"] == account and p["plan_ts"] < t]
        plan = max(before, key=lambda p: p["plan_ts"], default=None)
        window = [p for p in payments if p["account_id"] == account and t - WINDOW <= p["payment_ts"] < t]
        changes = [p["payment_ts"] for p in payments if p["account_id"] == account and p["payment_ts"] < t]
        changes += [p["payment_ts"] + WINDOW for p in payments if p["account_id"] == account and p["payment_ts"] + WINDOW < t]
        rows.append({
            **label,
            "plan": plan and plan["plan"],
            "seats": (plan and plan["seats"]) if plan and plan["seats"] is not None else 0,
            "account_plan_v1__feature_ts": plan and plan["plan_ts"],
            "payments_7d": len(window),
            "amount_7d": sum(p["amount"] for p in window),
            "account_payments_v1__feature_ts": max(changes, default=None),
        })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    """The user's dbt project (before featurekit) and the environment its dbt runs in."""
    base = tmp_path_factory.mktemp("acme")
    project, profiles, data = base / "acme_analytics", base / "profiles", base / "data"
    data.mkdir()
    write(project / "dbt_project.yml", DBT_PROJECT)
    write(profiles / "profiles.yml", PROFILES)
    write(project / "packages.yml", PACKAGES)
    write(project / ".gitignore", "target/\ndbt_packages/\nlogs/\n")  # as `dbt init` writes it
    write(base / "acme_shared" / "dbt_project.yml", "name: acme_shared\nversion: '1.0'\nconfig-version: 2\n")
    write(base / "acme_shared" / "macros" / "cents.sql", "{% macro cents(x) %}round({{ x }} * 100){% endmacro %}\n")
    plans, payments, labels = make_data(random.Random(7))
    (project / "raw").mkdir()
    pd.DataFrame(plans).to_csv(project / "raw" / "plans.csv", index=False)
    pd.DataFrame(payments).to_csv(project / "raw" / "payments.csv", index=False)
    pd.DataFrame(labels).to_csv(base / "labels.csv", index=False)
    write(project / "transform" / "feature_store" / "account_plan_v1.sql", PLAN_VIEW)
    write(project / "transform" / "feature_store" / "account_payments_v1.sql", PAYMENT_VIEW)
    write(project / "transform" / "feature_store" / "features.yml", VIEWS_YML)
    for view in ("account_plan_v1", "account_payments_v1"):
        name, version = view.rsplit("_v", 1)
        write(project / "transform" / "serving" / f"online_{view}.sql", f"{{{{ featurekit.online_table(ref('{name}', v={version})) }}}}\n")
    env = dict(os.environ, DBT_PROFILES_DIR=str(profiles), DBT_TARGET="ci", ACME_DATA=str(data))
    env.pop("FEATUREKIT_WAREHOUSE", None)
    return {"project": project, "base": base, "data": data, "env": env,
            "plans": plans, "payments": payments, "labels": labels}


def run(acme, *command: str, code: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=acme["project"], env=acme["env"], capture_output=True, text=True)
    assert result.returncode == code, f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def featurekit(acme, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    return run(acme, sys.executable, "-m", "featurekit", *args, code=code)


@pytest.fixture(scope="module")
def built(acme):
    """featurekit init, then dbt's own `dbt deps && dbt build`, as the user's CI runs them."""
    project = acme["project"]
    out = featurekit(acme, "init").stdout
    assert f"{VENDOR_DIR}: featurekit" in out and "packages.yml: added" in out
    assert (project / ".gitignore").read_text() == "target/\ndbt_packages/\nlogs/\n# featurekit\n/.featurekit/\n/online/\n*.featurekit-lock\n"
    assert (project / "dbt_macros" / "get_incremental_featurekit_history_sql.sql").is_file()
    entries = yaml.safe_load((project / "packages.yml").read_text())["packages"]
    assert entries == [{"local": VENDOR_DIR}, {"local": "../acme_shared"}]
    assert "# the team's shared macros" in (project / "packages.yml").read_text()
    run(acme, DBT, "deps")
    build = run(acme, DBT, "build")
    assert "Completed successfully" in build.stdout
    assert (acme["data"] / "acme_ci.duckdb").is_file() and not (acme["data"] / "laptop.duckdb").exists()
    return acme


@pytest.mark.slow
def test_train_set_in_the_users_project_equals_the_oracle(built):
    out = built["base"] / "train.parquet"
    featurekit(built, "train-set", str(built["base"] / "labels.csv"), "--feature-set", "risk_model", "-o", str(out), "-q")
    got = pd.read_parquet(out)
    expected = oracle(built["plans"], built["payments"], built["labels"])
    assert list(got.columns) == list(expected.columns)
    for column in expected.columns:
        a, b = got[column].tolist(), expected[column].tolist()
        for i, (x, y) in enumerate(zip(a, b)):
            same = (pd.isna(x) and pd.isna(y)) or (isinstance(y, float) and abs(x - y) < 1e-9) or x == y
            assert same, f"row {i} column {column}: train-set {x!r}, oracle {y!r}"
    sidecar = json.loads(Path(str(out) + ".featureset.json").read_text())
    assert sidecar["views"][0]["relation"].endswith('"analytics"."account_plan_v1"')
    # a directory output, in the user's project too: the same rows in its part files
    folder = built["base"] / "train_parts"
    featurekit(built, "train-set", str(built["base"] / "labels.csv"), "--feature-set", "risk_model", "-o", f"{folder}/", "-q")
    parts = sorted(folder.glob("*.parquet"))
    assert parts and pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True).equals(got)
    assert json.loads(Path(str(folder) + ".featureset.json").read_text())["output"]["format"] == "parquet-directory"


@pytest.mark.slow
def test_publish_get_serve_and_parity_in_the_users_project(built):
    featurekit(built, "publish", "-q")
    t = START + timedelta(days=75)
    got = json.loads(featurekit(built, "get", "--feature-set", "risk_model", "account_id=acc-001", "account_id=acc-030",
                                "--request-ts", t.isoformat() + "Z").stdout)
    labels = [{"account_id": "acc-001", "label_ts": t}, {"account_id": "acc-030", "label_ts": t}]
    expected = oracle(built["plans"], built["payments"], labels)
    for result, (_, row) in zip(got["results"], expected.iterrows()):
        assert result["account_id"] == row["account_id"]
        assert result["seats"] == row["seats"] and result["payments_7d"] == row["payments_7d"]
        assert result["plan"] == (None if pd.isna(row["plan"]) else row["plan"])
    log = built["base"] / "served"
    with running_server("--log-dir", str(log), cwd=built["project"]) as (url, _):
        for account in ACCOUNTS:
            body = json.dumps({"keys": [{"account_id": account}], "request_ts": t.isoformat() + "Z"}).encode()
            with urlopen(Request(f"{url}/v1/features/risk_model", data=body, method="POST")) as response:
                assert response.status == 200
    report = json.loads(featurekit(built, "parity", str(log / "risk_model"), "--json").stdout)
    [served] = report["feature_sets"]
    assert served["rows"] == len(ACCOUNTS)
    assert {c["column"]: c["mismatches"] for c in served["columns"]} == {
        c: 0 for c in ["plan", "seats", "account_plan_v1__feature_ts", "payments_7d", "amount_7d", "account_payments_v1__feature_ts"]
    }


@pytest.mark.slow
def test_the_other_commands_work_in_the_users_project(built):
    features = json.loads(featurekit(built, "features", "--json").stdout)
    assert {row["view"] for row in features} == {"account_plan_v1", "account_payments_v1"}
    assert "risk_model" in featurekit(built, "describe", "risk_model").stdout
    featurekit(built, "freshness", "--json")
    assert "released" in featurekit(built, "lock").stdout
    featurekit(built, "check")
    refreshed = featurekit(built, "refresh")
    assert "published snapshot" in refreshed.stderr
    assert "online_account_payments_v1" in (built["project"] / "target" / "run_results.json").read_text()
    # the refresh's incremental view builds marked the views with featurekit_history's generation
    # (in the user's database and schema), which the next refresh's online tables go by,
    # reading none of the views' history up to their watermark
    log = built["project"] / "logs" / "dbt.log"
    log.unlink()
    featurekit(built, "refresh")
    views = ("account_plan_v1", "account_payments_v1")
    assert not [v for v in views if history_read(log.read_text(), f'"acme_ci"."analytics"."{v}"')]
    with duckdb.connect(str(built["data"] / "acme_ci.duckdb"), read_only=True) as con:
        for view in views:
            comment = con.sql(f"SELECT comment FROM duckdb_tables() WHERE schema_name = 'analytics' AND table_name = '{view}'").fetchall()[0][0]
            state = con.sql(f"SELECT history_generation FROM analytics.online_{view}__fk_state").fetchall()[0][0]
            assert comment == f"featurekit_history generation {state}", (view, comment, state)


@pytest.mark.slow
def test_plain_dbt_works_in_a_fresh_clone_with_nothing_machine_specific(built, tmp_path):
    """What the user commits (their project with vendor/featurekit) builds with plain dbt on
    another machine: no absolute path, no site-packages path in any committed file."""
    def git(*args, cwd=built["project"]):
        return subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@x", *args], cwd=cwd,
                              capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "acme analytics with featurekit")
    committed = git("ls-files").split()
    assert f"{VENDOR_DIR}/dbt_project.yml" in committed and "packages.yml" in committed
    assert not [f for f in committed if f.startswith(("online/", ".featurekit/", "target/", "dbt_packages/"))]
    for name in committed:
        text = (built["project"] / name).read_text(errors="replace")
        assert str(built["base"]) not in text and str(PACKAGE_DIR) not in text and "site-packages" not in text, name
    clone = tmp_path / "clone"
    git("clone", "-q", str(built["project"]), str(clone), cwd=tmp_path)
    (tmp_path / "acme_shared").symlink_to(built["base"] / "acme_shared")
    env = dict(built["env"], ACME_DATA=str(tmp_path))
    for command in (["deps"], ["build"]):
        result = subprocess.run([DBT, *command], cwd=clone, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:]
