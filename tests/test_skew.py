"""`featurekit skew TRAIN --against SERVED`: a real train-set output against served vectors
from a correct path, a deliberately skewed one and one that drops returns
(tests/parity_paths.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import parity_paths as paths
from conftest import featurekit_cli
from online_helpers import copy_built_project

FEATURES = ["plan", "tenure_days", "orders_30d", "order_value_30d", "days_since_last_purchase", "tickets_90d",
            "avg_satisfaction_90d", "logins_7d"]


@pytest.fixture(scope="module")
def train(built_project, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("skew") / "train.parquet"
    featurekit_cli("train-set", "seeds/churn_labels.csv", "--feature-set", paths.FEATURE_SET, "-o", str(out), "-q",
                   cwd=built_project)
    return out


@pytest.fixture(scope="module")
def lookups(built_project) -> pd.DataFrame:
    """Other customers and times than training's: label rows drawn again, a few days later."""
    return paths.requests(built_project, 3000, seed=3)


def skew(train, against, *args, code=None):
    result = featurekit_cli("skew", str(train), "--against", str(against), "--json", *args, check=False)
    if code is not None:
        assert result.returncode == code, result.stdout + result.stderr
    return (json.loads(result.stdout) if result.stdout else None), result


def by_feature(report) -> dict[str, dict]:
    return {f["feature"]: f for f in report["features"]}


def test_correct_path_is_not_flagged(built_project, train, lookups, tmp_path):
    log = paths.write_log(paths.correct_vectors(built_project, lookups), tmp_path / "log", files=2)
    report, _ = skew(train, log, code=0)
    assert report["flagged"] == []
    assert [f["feature"] for f in report["features"]] == FEATURES
    assert report["rows"] == {"train": len(pd.read_parquet(train)), "served": len(lookups)}


def test_skewed_path_is_flagged(built_project, train, lookups, tmp_path):
    log = paths.write_log(paths.skewed_vectors(built_project, lookups), tmp_path / "log")
    report, result = skew(train, log, code=1)
    features = by_feature(report)
    assert sorted(report["flagged"]) == sorted(["orders_30d", "order_value_30d", "avg_satisfaction_90d", "days_since_last_purchase"])
    assert features["orders_30d"]["psi"] > report["thresholds"]["psi"]  # a 7-day window moves whole bins
    assert features["avg_satisfaction_90d"]["served"]["quantiles"]["p05"] == 0  # zeros where 3.5 was due
    assert "served unlike training: orders_30d" in result.stderr


# Returns left out move orders_30d by about 0.09 training std here (the exact 30-day window;
# lookups days after the label times also see the orders placed at a label instant, which
# offsets part of it): just under the default 0.1, so these tests set 0.07.
RETURNS_SHIFT = ["--mean-shift", "0.07"]


def test_returns_counted_on_one_side_only(built_project, train, lookups, tmp_path):
    log = paths.write_log(paths.returns_vectors(built_project, lookups), tmp_path / "log")
    report, _ = skew(train, log, *RETURNS_SHIFT, code=1)
    orders = by_feature(report)["orders_30d"]
    assert "orders_30d" in report["flagged"]
    assert orders["psi"] < report["thresholds"]["psi"]  # too small a shift for PSI alone ...
    assert orders["mean_shift"] > report["thresholds"]["mean_shift"]  # ... the mean catches it
    assert not set(report["flagged"]) - {"orders_30d", "order_value_30d"}


def test_statistics_against_a_plain_file(built_project, train, lookups, tmp_path):
    """A CSV of served vectors instead of a log; every figure recomputed here from the rows."""
    served = paths.correct_vectors(built_project, lookups)
    served.loc[served.index % 4 == 0, "logins_7d"] = np.nan  # fill policy not applied: nulls
    served.to_csv(tmp_path / "served.csv", index=False)
    report, _ = skew(train, tmp_path / "served.csv", code=1)
    features = by_feature(report)
    assert report["flagged"] == ["logins_7d"]
    assert "null rate" in features["logins_7d"]["flags"][0]
    training = pd.read_parquet(train)
    for name in ["orders_30d", "tickets_90d", "logins_7d"]:
        t, s = training[name].dropna(), served[name].dropna()
        assert features[name]["null_rate"] == {"train": training[name].isna().mean(), "served": served[name].isna().mean()}
        assert features[name]["train"]["mean"] == pytest.approx(t.mean())
        assert features[name]["served"]["std"] == pytest.approx(s.std())
        assert features[name]["served"]["quantiles"]["p95"] == pytest.approx(s.quantile(0.95))
        # Few distinct values: a bin per training value (served values in between go to the nearest).
        values = np.sort(t.unique())
        edges = (values[:-1] + values[1:]) / 2
        p = np.bincount(np.searchsorted(edges, t, side="right"), minlength=len(values)) / len(t)
        q = np.bincount(np.searchsorted(edges, s, side="right"), minlength=len(values)) / len(s)
        p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
        assert features[name]["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    plan = features["plan"]
    assert plan["kind"] == "categorical"
    shares = {c["category"]: (c["train"], c["served"]) for c in plan["categories"]}
    for category, (train_share, served_share) in shares.items():
        assert train_share == pytest.approx((training["plan"] == category).mean())
        assert served_share == pytest.approx((served["plan"] == category).mean())


def test_readable_table_and_thresholds(built_project, train, lookups, tmp_path):
    log = paths.write_log(paths.returns_vectors(built_project, lookups), tmp_path / "log")
    table = featurekit_cli("skew", str(train), "--against", str(log), *RETURNS_SHIFT, check=False)
    assert table.returncode == 1
    row = next(line for line in table.stdout.splitlines() if line.startswith("orders_30d "))
    assert "std)" in row
    skew(train, log, "--mean-shift", "0.5", code=0)


def test_columns_without_a_sidecar(built_project, train, lookups, tmp_path):
    plain = tmp_path / "train.parquet"
    plain.write_bytes(Path(train).read_bytes())
    served = paths.correct_vectors(built_project, lookups)
    served.to_parquet(tmp_path / "served.parquet")
    _, result = skew(plain, tmp_path / "served.parquet", code=2)
    assert "no train.parquet.featureset.json beside it" in result.stderr and "--columns" in result.stderr
    report, _ = skew(plain, tmp_path / "served.parquet", "--columns", "orders_30d,plan", code=0)
    assert [f["feature"] for f in report["features"]] == ["orders_30d", "plan"]
    _, result = skew(plain, tmp_path / "served.parquet", "--columns", "orders_7d", code=2)
    assert "has no column 'orders_7d'" in result.stderr


def test_against_the_online_store(built_project, tmp_path):
    """Training rows of one label time against the online store asked for the same customers
    at that time (a snapshot as of then): the same vectors, so identical distributions; asked
    now, two years after the data ends, everything has expired and is flagged."""
    project = copy_built_project(built_project, tmp_path / "project")
    at = "2024-09-01 09:00:00"
    labels = pd.read_csv(project / "seeds" / "churn_labels.csv")
    labels = labels[labels["label_ts"] == at].drop_duplicates("customer_id")  # the store answers each key once
    labels.to_csv(tmp_path / "labels.csv", index=False)
    featurekit_cli("train-set", str(tmp_path / "labels.csv"), "--feature-set", paths.FEATURE_SET,
                   "-o", str(tmp_path / "train.parquet"), "-q", "--project-dir", str(project))
    featurekit_cli("publish", "--as-of", at.replace(" ", "T") + "Z", "-q", "--project-dir", str(project))
    online = ["--online-dir", str(project / "online")]
    report, _ = skew(tmp_path / "train.parquet", "online", *online, "--request-ts", at.replace(" ", "T") + "Z", code=0)
    assert report["rows"]["served"] == report["rows"]["train"] == len(labels)
    for feature in report["features"]:
        assert feature["psi"] == pytest.approx(0, abs=1e-12), feature["feature"]
        if feature["kind"] == "numeric":
            assert feature["served"] == feature["train"]
    report, _ = skew(tmp_path / "train.parquet", "online", *online, "--sample", "100", code=1)
    assert report["rows"]["served"] == 100
    assert "orders_30d" in report["flagged"] and "now" in report["against"]
