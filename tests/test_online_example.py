"""The inference example (examples/churn_inference): trained on a train-set file, served from
the online store, it scores a customer exactly as it scores the train-set row of the same
(customer, time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import featurekit
from conftest import REPO, featurekit_cli

pytest.importorskip("sklearn")
EXAMPLE = REPO / "examples" / "churn_inference" / "churn.py"
AT = "2030-01-01T00:00:00Z"


def run_example(*args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_served_predictions_equal_predictions_on_train_set_rows(built_project, tmp_path):
    train = tmp_path / "train.parquet"
    featurekit_cli("train-set", str(built_project / "seeds" / "churn_labels.csv"), "--feature-set", "churn_model",
                   "-o", str(train), "--project-dir", str(built_project))
    model = tmp_path / "model.pkl"
    run_example("train", str(train), "-o", str(model))
    customers = [3, 42, 777, 10**9]
    out = run_example("predict", str(model), *map(str, customers), "--request-ts", AT, "--online-dir", str(built_project / "online"))
    served = [json.loads(line) for line in out.splitlines()]
    assert [row["customer_id"] for row in served] == customers

    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import churn
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    trained = churn.load(str(model))
    labels = pd.DataFrame({"customer_id": customers, "label_ts": pd.Timestamp("2030-01-01")})
    offline = featurekit.training_set(labels, feature_set="churn_model", project_dir=built_project)
    expected = trained["model"].predict_proba(churn.model_input(offline, trained["features"]))[:, 1]
    assert [row["churn_probability"] for row in served] == pytest.approx(list(expected), abs=1e-12)
    assert len({round(row["churn_probability"], 6) for row in served}) > 1
