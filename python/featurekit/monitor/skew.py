"""`featurekit skew TRAIN --against SERVED`: do the served features look like the ones the
model was trained on? SERVED is a served-feature log, a file of vectors, or the online store
itself asked for the training set's keys.

Per feature, on each side: null rate, mean, std and quantiles for numbers, category shares
for text; and between the sides the population stability index (PSI). Numbers with few
distinct training values (counts, codes) are binned per value, others by training deciles;
categories are binned per category. A feature is flagged when
  - its PSI is above `psi` (a 30-day window served as 7 days moves whole bins),
  - its mean moved by more than `mean_shift` training standard deviations (returns counted
    on one side only shifts counts by a few percent, too little for PSI alone), or
  - its null rate differs by more than `null_rate` (nulls filled with 0, or not filled).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import CheckFailed, FeaturekitError
from ..online.store import OnlineStore
from .parity import LOG_COLUMNS, log_files
from ..project import _sql_string

DEFAULT_THRESHOLDS = {"psi": 0.1, "mean_shift": 0.1, "null_rate": 0.05}
DEFAULT_SAMPLE = 10_000  # keys asked of the online store
ONLINE = "online"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
PER_VALUE_BINS = 20  # numbers with at most this many distinct training values: a bin per value
DECILES = 10
TOP_CATEGORIES = 10
EPSILON = 1e-4  # share given to an empty bin, so that PSI stays finite


def skew(
    train,
    against,
    columns: list[str] | None = None,
    thresholds: dict | None = None,
    online_dir=None,
    request_ts=None,
    sample: int = DEFAULT_SAMPLE,
) -> dict:
    """Compares the feature columns of training set `train` (train-set output) with `against`:
    a served-feature log directory, a Parquet/CSV file with the same columns, or 'online' for
    the online store in `online_dir` asked for (a sample of) the training set's keys at
    `request_ts` (default now). Raises CheckFailed (carrying the report as .report) when any
    feature is flagged."""
    thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    features, feature_set, keys = _features(Path(train), columns)
    train_table = _read(Path(train), "training set")
    if against == ONLINE:
        served_table, against = _online_vectors(online_dir, feature_set, keys, train_table, request_ts, sample)
    else:
        served_table = _read(Path(against), "served vectors", feature_set)
    for name, table in (("training set " + str(train), train_table), ("served vectors " + str(against), served_table)):
        missing = [c for c in features if c not in table.column_names]
        if missing:
            raise FeaturekitError(f"{name} has no column '{missing[0]}'; both sides need every feature column")
        if table.num_rows == 0:
            raise FeaturekitError(f"{name} has no rows")
    report = {
        "train": str(train),
        "against": str(against),
        "rows": {"train": train_table.num_rows, "served": served_table.num_rows},
        "thresholds": thresholds,
        "features": [_compare(name, train_table[name], served_table[name], thresholds) for name in features],
    }
    report["flagged"] = [f["feature"] for f in report["features"] if f["flags"]]
    if report["flagged"]:
        error = CheckFailed(f"{len(report['flagged'])} feature(s) served unlike training: {', '.join(report['flagged'])}")
        error.report = report
        raise error
    return report


def _features(train: Path, columns: list[str] | None) -> tuple[list[str], str | None, list[str]]:
    """The feature columns (from --columns, else the training set's sidecar), its feature set
    and its key columns."""
    sidecar = train.with_name(train.name + ".featureset.json")
    recorded = json.loads(sidecar.read_text()) if sidecar.is_file() else None
    feature_set = recorded.get("feature_set") if recorded else None
    keys = list(dict.fromkeys(k for view in recorded["views"] for k in view["keys"])) if recorded else []
    if columns:
        return columns, feature_set, keys
    if recorded is None:
        raise FeaturekitError(
            f"{train.name}: no {sidecar.name} beside it to say which columns are features; "
            "pass --columns or use a file written by `featurekit train-set`"
        )
    return [f["name"] for view in recorded["views"] for f in view["features"]], feature_set, keys


def _online_vectors(online_dir, feature_set, keys, train: pa.Table, request_ts, sample: int) -> tuple[pa.Table, str]:
    """The online store's vectors for up to `sample` distinct keys of the training set."""
    if not feature_set:
        raise FeaturekitError("--against online needs a training set written by `train-set --feature-set`")
    distinct = train.select(keys).group_by(keys).aggregate([])
    if distinct.num_rows > sample:
        distinct = distinct.take(np.random.default_rng(0).choice(distinct.num_rows, sample, replace=False))
    store = OnlineStore(online_dir)
    try:
        vectors = store.get_frame(feature_set, distinct.to_pylist(), request_ts=request_ts)
        where = f"online store {online_dir} (snapshot {store.snapshot_id}), {distinct.num_rows:,} keys"
    finally:
        store.close()
    return pa.Table.from_pandas(vectors, preserve_index=False), where + (f" at {request_ts}" if request_ts else " now")


def _read(path: Path, what: str, feature_set: str | None = None) -> pa.Table:
    if not path.exists():
        raise FeaturekitError(f"{what} {path} does not exist")
    if path.is_dir():
        files = log_files(path)
        source = "read_parquet([" + ", ".join(_sql_string(f) for f in files) + "], union_by_name = true)"
    elif path.suffix.lower() in (".parquet", ".pq"):
        source = f"read_parquet({_sql_string(path)})"
    elif path.suffix.lower() in (".csv", ".tsv"):
        source = f"read_csv({_sql_string(path)}, header = true)"
    else:
        raise FeaturekitError(f"{what} {path}: use a .parquet or .csv file, or a served-feature log directory")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # DuckDB prints it to stdout, even into a pipe
    try:
        table = con.sql(f"SELECT * FROM {source}").to_arrow_table()
    except duckdb.Error as e:
        raise FeaturekitError(f"{what} {path}: cannot read it: {str(e).strip().splitlines()[0]}") from None
    finally:
        con.close()
    if feature_set and all(c in table.column_names for c in LOG_COLUMNS):
        table = table.filter(pc.equal(table["feature_set"], feature_set))  # a log holds every feature set
    return table


def _compare(name: str, train: pa.ChunkedArray, served: pa.ChunkedArray, thresholds: dict) -> dict:
    numeric = all(_is_number(c.type) for c in (train, served))
    result = {"feature": name, "kind": "numeric" if numeric else "categorical"}
    train_null, served_null = _null_rate(train), _null_rate(served)
    result["null_rate"] = {"train": train_null, "served": served_null}
    flags = []
    if abs(served_null - train_null) > thresholds["null_rate"]:
        flags.append(f"null rate {train_null:.1%} in training, {served_null:.1%} served")
    if numeric:
        t = _numbers(train)
        s = _numbers(served)
        result["train"], result["served"] = _summary(t), _summary(s)
        result["psi"] = _psi(*_numeric_bins(t, s))
        std = result["train"]["std"]
        shift = None
        if len(t) and len(s):
            delta = result["served"]["mean"] - result["train"]["mean"]
            shift = abs(delta) / std if std else (0.0 if delta == 0 else math.inf)
        result["mean_shift"] = shift
        if shift is not None and shift > thresholds["mean_shift"]:
            flags.append(
                f"mean {result['train']['mean']:.4g} in training, {result['served']['mean']:.4g} served "
                f"({shift:.2f} std)"
            )
    else:
        t_counts, s_counts = _categories(train), _categories(served)
        names = sorted(set(t_counts) | set(s_counts), key=lambda c: (-t_counts.get(c, 0), c))
        t_total, s_total = sum(t_counts.values()), sum(s_counts.values())
        shares = [
            {"category": c, "train": t_counts.get(c, 0) / t_total if t_total else 0.0,
             "served": s_counts.get(c, 0) / s_total if s_total else 0.0}
            for c in names
        ]
        result["categories"] = shares[:TOP_CATEGORIES]
        result["unseen_in_training"] = [c for c in names if c not in t_counts]
        result["psi"] = _psi(np.array([x["train"] for x in shares]), np.array([x["served"] for x in shares]))
    if result["psi"] is not None and result["psi"] > thresholds["psi"]:
        flags.append(f"PSI {result['psi']:.3f}")
    result["flags"] = flags
    return result


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _null_rate(column: pa.ChunkedArray) -> float:
    return column.null_count / len(column) if len(column) else 0.0


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    values = column.cast(pa.float64()).drop_null().to_numpy()
    return values[~np.isnan(values)]


def _summary(values: np.ndarray) -> dict:
    if not len(values):
        return {"count": 0, "mean": None, "std": None, "quantiles": {}}
    return {
        "count": int(len(values)),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "quantiles": {f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES))},
    }


def _numeric_bins(train: np.ndarray, served: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin shares of both sides: a bin per training value when there are few, else deciles of
    training (values outside the training range fall in the outer bins)."""
    if not len(train) or not len(served):
        return np.array([]), np.array([])
    distinct = np.unique(train)
    if len(distinct) <= PER_VALUE_BINS:
        edges = (distinct[:-1] + distinct[1:]) / 2
    else:
        edges = np.unique(np.quantile(train, np.linspace(0, 1, DECILES + 1)[1:-1]))
    t = np.bincount(np.searchsorted(edges, train, side="right"), minlength=len(edges) + 1)
    s = np.bincount(np.searchsorted(edges, served, side="right"), minlength=len(edges) + 1)
    return t / t.sum(), s / s.sum()


def _psi(train: np.ndarray, served: np.ndarray) -> float | None:
    if not len(train) or not train.sum() or not served.sum():
        return None
    t = np.maximum(train, EPSILON)
    s = np.maximum(served, EPSILON)
    return float(np.sum((s - t) * np.log(s / t)))


def _categories(column: pa.ChunkedArray) -> dict:
    counts = pc.value_counts(column.cast(pa.string()).drop_null())
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))
