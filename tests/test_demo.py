"""`featurekit demo` end to end at its smallest scale: the story's numbers hold together."""

import json

import pytest

from conftest import REPO, featurekit_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo") / "out"
    result = featurekit_cli("demo", "--workdir", str(workdir), "--project-dir", str(REPO))
    return workdir, result, json.loads((workdir / "results.json").read_text())


def test_featurekit_serving_scores_exactly_the_offline_auc(demo):
    _, _, results = demo
    auc = results["auc"]
    assert abs(auc["featurekit online store"] - auc["offline (training-set features)"]) <= 1e-9
    assert results["parity"]["featurekit"]["mismatches"] == {}
    assert results["parity"]["featurekit"]["compared"] == results["labels"]["evaluate"]
    assert results["skew_flagged"]["featurekit"] == []


def test_hand_written_path_is_worse_and_the_checks_name_its_features(demo):
    _, _, results = demo
    auc = results["auc"]
    assert auc["hand-written serving path"] < auc["offline (training-set features)"] - 0.05
    diverging = results["parity"]["handwritten"]["mismatches"]
    # the three seeded mistakes: a 7-day window, zero-filled nulls, returns counted
    assert {"orders_30d", "order_value_30d", "avg_satisfaction_90d"} <= set(diverging)
    assert {"orders_30d", "avg_satisfaction_90d"} <= set(results["skew_flagged"]["handwritten"])


def test_stale_pipeline_fails_freshness_and_costs_auc(demo):
    _, _, results = demo
    assert results["freshness_stale"]["status"] == "error"
    assert results["auc"]["stale snapshot (no refresh)"] < results["auc"]["offline (training-set features)"]


def test_demo_prints_progress_a_summary_and_draws_the_chart(demo):
    workdir, result, _ = demo
    assert "[1/8]" in result.stderr and "[8/8]" in result.stderr
    assert "featurekit online store" in result.stdout and "diverging features" in result.stdout
    assert (workdir / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_refuses_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = featurekit_cli("demo", "--workdir", str(tmp_path), "--project-dir", str(REPO), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: --workdir {tmp_path} is not empty; give a new or empty directory"
    assert (tmp_path / "notes.txt").read_text() == "mine"
