"""`featurekit features` against the manifest it reads, and the help of every command."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from featurekit.cli import main
from conftest import featurekit_cli


def feature_models(manifest: dict) -> dict[str, dict]:
    """Model nodes with config.meta.featurekit, by reference name (view_vN)."""
    models = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["config"].get("meta", {}).get("featurekit"):
            models[node["name"] + (f"_v{node['version']}" if node.get("version") is not None else "")] = node
    return models


def expected_features(node: dict) -> list[str]:
    meta = node["config"]["meta"]["featurekit"]
    settings = {*meta["keys"], meta.get("timestamp", "feature_ts"), meta.get("available_at")}
    return [c for c in node["columns"] if c not in settings] + list(meta.get("request_time") or {})


@pytest.fixture(scope="module")
def catalog(built_project) -> list[dict]:
    return json.loads(featurekit_cli("features", "--json", "--project-dir", str(built_project)).stdout)


@pytest.fixture(scope="module")
def manifest(built_project) -> dict:
    return json.loads((built_project / "target" / "manifest.json").read_text())


def test_json_catalog_matches_the_manifest(catalog, manifest):
    models = feature_models(manifest)
    consumers = {}
    for exposure in manifest["exposures"].values():
        for ref in exposure["refs"]:
            consumers.setdefault(f"{ref['name']}_v{ref['version']}", []).append(exposure["name"])

    assert [row["view"] for row in catalog] == sorted(models)
    for row in catalog:
        node = models[row["view"]]
        meta = node["config"]["meta"]["featurekit"]
        assert row["name"] == node["name"]
        assert row["version"] == node["version"]
        assert row["latest"] == (node["version"] == node["latest_version"])
        assert row["entity"] == meta["entity"]
        assert row["keys"] == meta["keys"]
        assert row["owner"] == meta["owner"]
        assert row["ttl"] == meta.get("ttl")
        assert row["features"] == expected_features(node)
        assert row["description"] == " ".join(node["description"].split())
        assert sorted(row["consumers"]) == sorted(consumers.get(row["view"], []))


def test_both_order_versions_are_listed(catalog):
    """The example's own case: v1 still serves churn_model while v2 is the latest."""
    by_view = {row["view"]: row for row in catalog}
    assert (by_view["customer_orders_v1"]["latest"], by_view["customer_orders_v1"]["consumers"]) == (False, ["churn_model"])
    assert (by_view["customer_orders_v2"]["latest"], by_view["customer_orders_v2"]["consumers"]) == (True, ["churn_model_v2"])


def test_table_shows_every_view(built_project, catalog):
    result = CliRunner().invoke(main, ["features", "--project-dir", str(built_project)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["view", "entity", "features", "owner", "ttl", "consumers"]
    assert set(lines[1]) == {"-", " "}
    rows = lines[2 : 2 + len(catalog)]
    for line, row in zip(rows, catalog):
        assert line.startswith(row["view"] + ("  " if row["latest"] else " *"))
        assert ", ".join(row["features"]) in line and ", ".join(row["consumers"]) in line
        assert (row["owner"] or "") in line and (row["ttl"] or "") in line
    assert lines[2 + len(catalog) :] == ["* not the latest version"]


def test_features_without_a_manifest(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: empty\nprofile: empty\n")
    result = CliRunner().invoke(main, ["features", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path}/target/manifest.json not found: run `featurekit refresh` (or `dbt build`) in {tmp_path} first\n"


def commands(group: click.Group, prefix: tuple[str, ...] = ()):
    """Every command of the click group, subcommands of nested groups included."""
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(commands(main)), ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    text = result.stdout.split("Example:", 1)
    assert len(text) == 2, f"featurekit {' '.join(path)} --help has no Example: block"
    example = [line.strip() for line in text[1].splitlines() if line.strip()]
    assert example and example[0].startswith(f"featurekit {' '.join(path)}"), example


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:", 1)[1]
    for name in main.commands:
        assert f"\n  {name} " in listed
