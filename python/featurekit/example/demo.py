"""`featurekit demo`: the training-serving skew story, measured live on the example shop.

A churn model is trained on a featurekit training set and evaluated on a later period
(AUC A). It then runs "in production" over that period three ways:
  1. features from featurekit's online store at each request time: AUC equal to A, and
     `featurekit parity` finds 0 mismatches;
  2. features from a hand-written serving path, as teams write them (a 7-day window where
     training used 30 days, nulls filled with 0, returns counted): lower AUC with no error
     anywhere, and `parity` and `skew` name the diverging features;
  3. features from a snapshot that stopped refreshing at the training cutoff: `freshness`
     fails and the AUC cost of staleness shows.
Nothing is hard-coded: every number comes from this run.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd

from . import shop_data
from ..dbt_package import PACKAGE_DIR
from ..dbt_runner import run_dbt
from ..errors import CheckFailed, FeaturekitError
from ..monitor.freshness import freshness_report
from ..online.store import OnlineStore
from ..monitor.parity import parity
from ..project import Project
from ..online.publish import publish
from ..monitor.skew import skew
from ..training import write_training_set

FEATURE_SET = "churn_model"
CUTOFF = datetime(2024, 7, 1, 9, 0)  # labels before: training; from it on: "production"
PROJECT_FILES = ["dbt_project.yml", "profiles.yml.example", "models", "macros", "seeds"]
STEPS = 8
MARKER = ".featurekit-demo"


def run_demo(workdir, scale: str = "small", source_project=None, progress: Callable[[str], None] = print) -> dict:
    """Runs the whole story in `workdir` (created; must be empty or absent) and returns the
    results (also written to workdir/results.json, the chart to workdir/demo.png)."""
    sklearn = _require_sklearn()
    workdir = Path(workdir).resolve()
    if (workdir / MARKER).is_file():
        shutil.rmtree(workdir)  # an earlier demo's output: safe to replace
    elif workdir.exists() and any(workdir.iterdir()):
        raise FeaturekitError(f"--workdir {workdir} is not empty; give a new or empty directory")
    if scale not in ("small", "medium"):
        raise FeaturekitError(f"--scale {scale}: choose small or medium")
    started = time.monotonic()
    step = _Steps(progress)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("written by featurekit demo; the next demo run replaces this directory\n")

    step("copying the example project and building its warehouse with dbt (seeds, feature views, tests)")
    project = _prepare_project(Path(source_project or ".").resolve(), workdir, scale)
    run_dbt(project, "deps", quiet=True)
    run_dbt(project, "build", quiet=True)

    step(f"building point-in-time training sets for labels before and after {CUTOFF:%Y-%m-%d}")
    labels = _labels(project)
    train_labels = labels[labels["label_ts"] < CUTOFF].reset_index(drop=True)
    eval_labels = labels[labels["label_ts"] >= CUTOFF].reset_index(drop=True)
    train_labels.to_csv(workdir / "train_labels.csv", index=False)
    train_path = workdir / "train.parquet"
    write_training_set(workdir / "train_labels.csv", train_path, feature_set=FEATURE_SET, project_dir=project.root)
    train = pd.read_parquet(train_path)
    eval_labels.to_csv(workdir / "eval_labels.csv", index=False)
    offline_path = workdir / "eval_offline.parquet"
    write_training_set(workdir / "eval_labels.csv", offline_path, feature_set=FEATURE_SET, project_dir=project.root)
    offline = pd.read_parquet(offline_path)

    step(f"training the churn model on {len(train):,} rows; scoring {len(offline):,} later rows offline")
    model = _fit(sklearn, train)
    auc = {"offline (training-set features)": _auc(sklearn, model, offline)}

    step("serving the later period from featurekit's online store (a snapshot published at each request time)")
    served_dir = workdir / "served"
    online = _serve_online(project, eval_labels, workdir / "online", served_dir / "featurekit")
    auc["featurekit online store"] = _auc(sklearn, model, online)
    featurekit_parity = _check(parity, served_dir / "featurekit", project_dir=project.root, online_dir=workdir / "online")
    # Skew against the offline values of the same requests: serving skew, not the drift
    # between the training months and the later ones.
    featurekit_skew = _check(skew, offline_path, served_dir / "featurekit")

    step("serving it from a hand-written path (7-day window, nulls as 0, returns counted)")
    handwritten = _serve_handwritten(project, eval_labels)
    auc["hand-written serving path"] = _auc(sklearn, model, handwritten)
    _write_log(handwritten, served_dir / "handwritten", eval_labels, "handwritten")
    handwritten_parity = _check(parity, served_dir / "handwritten", project_dir=project.root, online_dir=workdir / "online")
    handwritten_skew = _check(skew, offline_path, served_dir / "handwritten")

    step(f"serving it from a pipeline that stopped refreshing at {CUTOFF:%Y-%m-%d} (its own warehouse and snapshot)")
    stale_project = _stale_project(project, workdir / "project-stale")
    run_dbt(stale_project, "build", quiet=True)
    stale_dir = workdir / "online-stale"
    stale = _serve_stale(stale_project, eval_labels, stale_dir)
    auc["stale snapshot (no refresh)"] = _auc(sklearn, model, stale)
    stale_freshness = freshness_report(stale_project, now=eval_labels["label_ts"].max(), online_dir=stale_dir)

    step("comparing")
    results = {
        "scale": scale,
        "labels": {"train": len(train), "evaluate": len(offline)},
        "auc": auc,
        "featurekit_matches_offline": abs(auc["featurekit online store"] - auc["offline (training-set features)"]) <= 1e-9,
        "parity": {
            "featurekit": _parity_summary(featurekit_parity),
            "handwritten": _parity_summary(handwritten_parity),
        },
        "skew_flagged": {"featurekit": featurekit_skew["flagged"], "handwritten": handwritten_skew["flagged"]},
        "skew": {f["feature"]: f for f in handwritten_skew["features"]},
        "freshness_stale": stale_freshness,
        "seconds": round(time.monotonic() - started, 1),
    }
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")

    step("drawing the chart")
    _chart(results, workdir / "demo.png")
    return results


class _Steps:
    """Numbered progress lines with the time each step took."""

    def __init__(self, progress):
        self.progress = progress
        self.number = 0
        self.started = None

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if self.started is not None:
            self.progress(f"      done in {now - self.started:.1f} s")
        self.number += 1
        self.started = now
        self.progress(f"[{self.number}/{STEPS}] {message}")


def _require_sklearn():
    try:
        import sklearn.compose
        import sklearn.linear_model
        import sklearn.metrics
        import sklearn.pipeline
        import sklearn.preprocessing
    except ImportError:
        raise FeaturekitError("the demo trains a model with scikit-learn: pip install 'featurekit[demo]'") from None
    return sklearn


def _prepare_project(source: Path, workdir: Path, scale: str) -> Project:
    project_dir = workdir / "project"
    project_dir.mkdir()
    for name in PROJECT_FILES:
        path = source / name
        if not path.exists():
            raise FeaturekitError(f"{source} is not the featurekit example project (no {name}); pass --project-dir")
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, project_dir / name)
    # the copy consumes featurekit's dbt package as installed with this featurekit
    (project_dir / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE_DIR}\n")
    if scale == "medium":
        data = workdir / "data"
        shop_data.write_parquet(data, shop_data.SCALES["medium"])
        config = project_dir / "dbt_project.yml"
        config.write_text(config.read_text().replace('shop_data_dir: ""', f'shop_data_dir: "{data}"'))
    return Project(project_dir)


# Each raw table and the column saying when a row reached the warehouse.
LOAD_TIMES = {
    "raw_customers": "loaded_at",
    "raw_orders": "loaded_at",
    "raw_support_tickets": "loaded_at",
    "raw_logins": "loaded_at",
    "churn_labels": "label_ts",
}


def _stale_project(project: Project, destination: Path) -> Project:
    """A copy of the project whose raw data stops at the cutoff: what a pipeline that stopped
    refreshing then would have in its warehouse."""
    shutil.copytree(project.root, destination, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb*", ".featurekit"))
    data_dir = project.config.get("vars", {}).get("shop_data_dir")
    con = duckdb.connect()
    try:
        for table, loaded in LOAD_TIMES.items():
            if data_dir:
                source = Path(data_dir) / f"{table}.parquet"
                target = destination / "data-stale" / source.name
                reader, options = f"read_parquet('{source}')", "FORMAT parquet"
            else:
                source = project.root / "seeds" / f"{table}.csv"
                target = destination / "seeds" / source.name
                reader, options = f"read_csv('{source}', header = true, all_varchar = true)", "FORMAT csv, HEADER true"
            target.parent.mkdir(exist_ok=True)
            con.execute(
                f"COPY (SELECT * FROM {reader} WHERE CAST({loaded} AS TIMESTAMP) < TIMESTAMP '{CUTOFF}') TO '{target}' ({options})"
            )
    finally:
        con.close()
    if data_dir:
        config = destination / "dbt_project.yml"
        config.write_text(config.read_text().replace(f'shop_data_dir: "{data_dir}"', f'shop_data_dir: "{destination / "data-stale"}"'))
    return Project(destination)


def _labels(project: Project) -> pd.DataFrame:
    """The churn labels the warehouse was built from (seeds or generated Parquet)."""
    with project.connect_warehouse() as con:
        return con.execute(
            f"SELECT customer_id, label_ts, churned FROM {project.database_name}.main.stg_churn_labels"
        ).df()


def _fit(sklearn, train: pd.DataFrame):
    """A scaled logistic regression over every feature of the training set (not keys, labels
    or feature timestamps); it remembers its input columns, so serving paths must supply them."""
    features = [c for c in train.columns if c not in ("customer_id", "label_ts", "churned") and "__" not in c]
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(train[c])]
    numeric = [c for c in features if c not in categorical]
    model = sklearn.pipeline.make_pipeline(
        sklearn.compose.ColumnTransformer(
            [
                ("numeric", sklearn.preprocessing.StandardScaler(), numeric),
                ("categorical", sklearn.preprocessing.OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        sklearn.linear_model.LogisticRegression(max_iter=2000),
    )
    return model.fit(train[numeric + categorical], train["churned"])


def _auc(sklearn, model, frame: pd.DataFrame) -> float:
    scores = model.predict_proba(frame[list(model.feature_names_in_)])[:, 1]
    return float(sklearn.metrics.roc_auc_score(frame["churned"], scores))


def _serve_online(project: Project, labels: pd.DataFrame, online_dir: Path, log_dir: Path) -> pd.DataFrame:
    """Per request time t: publish what the warehouse knew before t, look every labelled
    customer up at t, logging what was served."""
    frames = []
    for t, group in labels.groupby("label_ts", sort=True):
        manifest = publish(project_dir=project.root, online_dir=online_dir, as_of=t.isoformat())
        store = OnlineStore(online_dir, log_dir=log_dir, snapshot=manifest["snapshot_id"])
        try:
            frames.append(_with_labels(group, store.get_frame(FEATURE_SET, _keys(group), request_ts=t.isoformat())))
        finally:
            store.close()
    return pd.concat(frames).loc[labels.index]


def _serve_stale(project: Project, labels: pd.DataFrame, online_dir: Path) -> pd.DataFrame:
    """Every request answered from the one snapshot the stopped pipeline published."""
    manifest = publish(project_dir=project.root, online_dir=online_dir, as_of=CUTOFF.isoformat())
    store = OnlineStore(online_dir, snapshot=manifest["snapshot_id"])
    frames = [
        _with_labels(group, store.get_frame(FEATURE_SET, _keys(group), request_ts=t.isoformat()))
        for t, group in labels.groupby("label_ts", sort=True)
    ]
    return pd.concat(frames).loc[labels.index]


def _keys(group: pd.DataFrame) -> list[dict]:
    return [{"customer_id": int(c)} for c in group["customer_id"]]


def _with_labels(group: pd.DataFrame, served: pd.DataFrame) -> pd.DataFrame:
    served.index = group.index
    return pd.concat([group, served.drop(columns=[c for c in served.columns if c in group.columns])], axis=1)


# The serving path a team writes by hand for the API, next to the dbt models rather than from
# them. Each mistake is one people make: the window was "tuned" to 7 days for latency, missing
# values become 0, and orders are counted whatever their status.
HANDWRITTEN_SQL = """
WITH requests AS (SELECT DISTINCT customer_id, label_ts FROM labels)
SELECT
    r.customer_id,
    r.label_ts,
    (SELECT plan FROM {db}.main.stg_customers c
      WHERE c.customer_id = r.customer_id AND c.valid_from < r.label_ts
      ORDER BY valid_from DESC LIMIT 1) AS plan,
    (SELECT (epoch_us(r.label_ts) - epoch_us(min(valid_from))) // 86400000000 FROM {db}.main.stg_customers c
      WHERE c.customer_id = r.customer_id AND c.valid_from < r.label_ts) AS tenure_days,
    (SELECT count(*) FROM {db}.main.stg_orders o
      WHERE o.customer_id = r.customer_id AND o.order_ts >= r.label_ts - INTERVAL 7 DAYS
        AND o.order_ts < r.label_ts) AS orders_30d,
    (SELECT coalesce(sum(order_value), 0) FROM {db}.main.stg_orders o
      WHERE o.customer_id = r.customer_id AND o.order_ts >= r.label_ts - INTERVAL 7 DAYS
        AND o.order_ts < r.label_ts) AS order_value_30d,
    coalesce((SELECT (epoch_us(r.label_ts) - epoch_us(max(order_ts))) // 86400000000 FROM {db}.main.stg_orders o
      WHERE o.customer_id = r.customer_id AND o.order_ts < r.label_ts), 0) AS days_since_last_purchase,
    (SELECT count(*) FROM {db}.main.stg_support_tickets s
      WHERE s.customer_id = r.customer_id AND s.opened_ts >= r.label_ts - INTERVAL 90 DAYS
        AND s.opened_ts < r.label_ts) AS tickets_90d,
    coalesce((SELECT avg(satisfaction) FROM {db}.main.stg_support_tickets s
      WHERE s.customer_id = r.customer_id AND s.opened_ts >= r.label_ts - INTERVAL 90 DAYS
        AND s.opened_ts < r.label_ts), 0) AS avg_satisfaction_90d,
    (SELECT count(*) FROM {db}.main.stg_logins g
      WHERE g.customer_id = r.customer_id AND g.login_ts >= r.label_ts - INTERVAL 7 DAYS
        AND g.login_ts < r.label_ts) AS logins_7d
FROM requests r
"""


def _serve_handwritten(project: Project, labels: pd.DataFrame) -> pd.DataFrame:
    with project.connect_warehouse() as con:
        con.register("labels", labels)
        served = con.execute(HANDWRITTEN_SQL.format(db=project.database_name)).df()
    return labels.merge(served, on=["customer_id", "label_ts"], how="left")


def _write_log(frame: pd.DataFrame, log_dir: Path, labels: pd.DataFrame, snapshot_id: str) -> None:
    """Writes served vectors in the served-feature log format, as an API that logs would."""
    target = log_dir / FEATURE_SET
    target.mkdir(parents=True)
    log = frame.drop(columns=["churned"]).rename(columns={"label_ts": "request_ts"})
    log.insert(0, "snapshot_id", snapshot_id)
    log.insert(0, "served_at", log["request_ts"])
    log.insert(0, "feature_set", FEATURE_SET)
    log.to_parquet(target / "served-handwritten-0.parquet", index=False)


def _check(function, *args, **kwargs) -> dict:
    """The report of a parity/skew check, whether or not it found problems."""
    try:
        return function(*args, **kwargs)
    except CheckFailed as failed:
        return failed.report


def _parity_summary(report: dict) -> dict:
    columns = [c for s in report["feature_sets"] for c in s["columns"] if not c["column"].endswith("__feature_ts")]
    return {
        "compared": max((c["compared"] for c in columns), default=0),
        "mismatches": {c["column"]: c["mismatches"] for c in columns if c["mismatches"]},
        "mismatch_rate": {c["column"]: c["mismatch_rate"] for c in columns},
    }


def _chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.3]})
    names = list(results["auc"])
    values = [results["auc"][n] for n in names]
    colors = ["#4c72b0", "#55a868", "#c44e52", "#dd8452"]
    bars = left.bar(range(len(names)), values, color=colors[: len(names)])
    left.set_xticks(range(len(names)), [n.replace(" (", "\n(").replace(" serving", "\nserving") for n in names], fontsize=8)
    left.set_ylim(0.5, 1.0)
    left.set_ylabel("AUC on the later period")
    left.set_title("Same model, same customers: AUC by serving path")
    for bar, value in zip(bars, values):
        left.text(bar.get_x() + bar.get_width() / 2, value + 0.005, f"{value:.3f}", ha="center", fontsize=9)
    rates = results["parity"]["handwritten"]["mismatch_rate"]
    features = sorted(rates, key=rates.get)
    right.barh(features, [100 * rates[f] for f in features], color="#c44e52")
    right.set_xlabel("% of served vectors that differ from the training-set value")
    right.set_title("Hand-written path: which features diverge (featurekit parity)")
    featurekit_rates = results["parity"]["featurekit"]["mismatch_rate"]
    right.text(
        0.98, 0.02, f"featurekit path: {sum(1 for r in featurekit_rates.values() if r)} mismatching features",
        transform=right.transAxes, ha="right", fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def summary(results: dict) -> tuple[list[dict], list[str]]:
    """What `featurekit demo` prints: a table of AUC by serving path, and what the checks said."""
    offline = results["auc"]["offline (training-set features)"]
    table = [
        {"serving path": name, "AUC": f"{value:.4f}", "vs offline": f"{value - offline:+.4f}"}
        for name, value in results["auc"].items()
    ]
    parity_fk, parity_hw = results["parity"]["featurekit"], results["parity"]["handwritten"]
    diverging = ", ".join(
        f"{name} ({100 * parity_hw['mismatch_rate'][name]:.0f}%)"
        for name in sorted(parity_hw["mismatches"], key=lambda n: -parity_hw["mismatch_rate"][n])
    )
    stale = results["freshness_stale"]
    failing = [r["view"] for r in stale["views"] if r["status"] == "error"]
    lines = [
        f"featurekit path: parity {sum(parity_fk['mismatches'].values())} mismatches over "
        f"{parity_fk['compared']:,} served vectors; skew flags {', '.join(results['skew_flagged']['featurekit']) or 'nothing'}",
        f"hand-written path: no error anywhere, yet parity finds {len(parity_hw['mismatches'])} diverging features: {diverging}",
        f"hand-written path: skew flags {', '.join(results['skew_flagged']['handwritten']) or 'nothing'}",
        f"stale snapshot: freshness status {stale['status']} at {stale['now']} ({len(failing)} of "
        f"{len(stale['views'])} views past error_after)",
    ]
    return table, lines
