"""`featurekit describe REF` on the built example project, checked against its dbt manifest."""

from __future__ import annotations

import json

import pytest

from conftest import featurekit_cli
from featurekit.project import Project
from online_helpers import copy_built_project


def describe(project, *args, code=0):
    result = featurekit_cli("describe", *args, "--project-dir", str(project), check=False)
    assert result.returncode == code, result.stdout + result.stderr
    return result


def describe_json(project, ref):
    return json.loads(describe(project, ref, "--json").stdout)


def ancestors(tree) -> set[str]:
    return {tree["type"] + " " + tree["node"]} | set().union(*(ancestors(p) for p in tree["parents"]))


def test_view_version(built_project):
    manifest = Project(built_project).manifest
    node = manifest["nodes"]["model.shop.customer_orders.v1"]
    info = describe_json(built_project, "customer_orders_v1")
    assert info["kind"] == "feature_view" and info["ref"] == "customer_orders_v1"
    assert info["description"] == " ".join(node["description"].split())
    meta = node["config"]["meta"]["featurekit"]
    assert (info["owner"], info["entity"], info["keys"], info["ttl"]) == (meta["owner"], meta["entity"], meta["keys"], meta.get("ttl"))
    assert [c["name"] for c in info["columns"]] == list(node["columns"])
    for column in info["columns"]:
        assert column["description"] == node["columns"][column["name"]]["description"]
        assert column["fill"] == meta["fill"].get(column["name"])
    assert [c["role"] for c in info["columns"][:2]] == ["key", "feature timestamp"]
    versions = {v["ref"]: v for v in info["versions"]}
    assert sorted(versions) == ["customer_orders_v1", "customer_orders_v2"]
    assert versions["customer_orders_v2"]["latest"] and not versions["customer_orders_v1"]["latest"]
    pinning = sorted(
        e["name"] for e in manifest["exposures"].values() if "model.shop.customer_orders.v1" in e["depends_on"]["nodes"]
    )
    assert [c["name"] for c in info["consumers"]] == pinning == ["churn_model"]
    assert info["freshness"]["warn_after"] == meta["freshness"]["warn_after"]
    assert info["freshness"]["status"] == "error"  # the example data ends in 2024
    assert info["freshness"]["newest_feature_ts"].startswith("2024-")
    assert {"model stg_orders", "seed raw_orders"} <= ancestors(info["lineage"])
    assert not any(n.startswith("seed raw_customers") for n in ancestors(info["lineage"]))


def test_view_name_means_its_latest_version(built_project):
    assert describe_json(built_project, "customer_orders")["ref"] == "customer_orders_v2"


def test_request_time_features_and_availability(built_project):
    info = describe_json(built_project, "customer_profile_v1")
    roles = {c["name"]: c["role"] for c in info["columns"]}
    assert roles["available_at"] == "availability time"
    assert roles["tenure_days"] == "request-time feature: whole days since signup_ts"


def test_feature_set(built_project):
    info = describe_json(built_project, "churn_model")
    exposure = Project(built_project).manifest["exposures"]["exposure.shop.churn_model"]
    assert info["kind"] == "feature_set" and info["maturity"] == exposure["maturity"]
    assert info["owner"] == f"{exposure['owner']['name']} <{exposure['owner']['email']}>"
    listed = exposure["config"]["meta"]["featurekit"]["features"]
    assert [v["ref"] for v in info["views"]] == list(dict.fromkeys(f.split(".")[0] for f in listed))
    orders = next(v for v in info["views"] if v["ref"] == "customer_orders_v1")
    assert orders["features"] == ["orders_30d", "order_value_30d"]
    assert orders["version"]["latest"] is False


def test_readable_output(built_project):
    text = describe(built_project, "customer_orders_v1").stdout
    assert text.startswith("feature view customer_orders_v1 (models/features/customer_orders_v1.sql)")
    assert "customer_orders_v2 (latest): used by churn_model_v2" in text
    assert "      seed raw_orders" in text
    assert "freshness: warn after 1 day, error after 3 days; error" in text


def test_deprecated_version_and_missing_warehouse(built_project, tmp_path):
    project = copy_built_project(built_project, tmp_path / "project")
    yml = project / "models" / "features" / "customer_orders.yml"
    yml.write_text(yml.read_text().replace("      - v: 1\n", "      - v: 1\n        deprecation_date: 2024-06-01\n"))
    featurekit_cli("dbt", "parse", "--project-dir", str(project))
    (project / "warehouse.duckdb").unlink()
    info = describe_json(project, "customer_orders_v2")
    v1 = next(v for v in info["versions"] if v["ref"] == "customer_orders_v1")
    assert v1["deprecated"] and v1["deprecation_date"].startswith("2024-06-01")
    assert info["freshness"]["status"] == "unknown" and "not found" in info["freshness"]["reason"]
    assert "(deprecated 2024-06-01" in describe(project, "customer_orders_v1").stdout


@pytest.mark.parametrize("ref", ["nope", "customer_orders_v9"])
def test_unknown_ref(built_project, ref):
    result = describe(built_project, ref, code=2)
    assert f"'{ref}' is neither a feature view nor a feature set" in result.stderr
    assert "churn_model" in result.stderr
