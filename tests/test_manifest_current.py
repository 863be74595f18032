"""The guard of the commands that read target/manifest.json (train-set, publish, features ...):
the project's files must be those dbt last parsed, judged by content where the manifest
records it (a model's checksum, a macro's text), by modification time elsewhere."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from featurekit.cli import main
from online_helpers import copy_built_project


@pytest.fixture
def project(built_project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return copy_built_project(built_project, tmp_path / "project")


def features(project):
    return CliRunner().invoke(main, ["features", "--project-dir", project.name])


def stale(relative: str) -> str:
    return (
        f"Error: project/{relative} changed after dbt last ran, so project/target/manifest.json and the warehouse "
        "may not match it: run `featurekit refresh` (or `dbt build`)\n"
    )


@pytest.mark.parametrize(
    "relative, old, new",
    [
        ("models/features/customer_orders_v1.sql", "'30 days'", "'7 days'"),
        ("dbt_packages/featurekit/macros/util/newest.sql", "desc limit 1", "desc nulls last limit 1"),
        ("macros/shop_table.sql", "return(ref(name))", "return(ref(name ~ ''))"),
    ],
)
def test_an_edit_carrying_an_old_modification_time_is_found(project, relative, old, new):
    """Files restored or copied with their times (cp -p, rsync -t, tar) look older than the manifest."""
    path = project / relative
    text, mtime = path.read_text(), path.stat().st_mtime
    assert old in text
    path.write_text(text.replace(old, new))
    os.utime(path, (mtime, mtime))
    result = features(project)
    assert (result.exit_code, result.stderr) == (2, stale(relative))

    path.write_text(text)
    os.utime(path, (mtime, mtime))
    assert features(project).exit_code == 0


def test_a_model_saved_unchanged_is_current_and_a_removed_one_is_not(project):
    model = project / "models" / "features" / "customer_orders_v1.sql"
    model.write_text(model.read_text())  # a newer modification time, the same content
    assert features(project).exit_code == 0

    model.unlink()
    result = features(project)
    assert (result.exit_code, result.stderr) == (2, stale("models/features/customer_orders_v1.sql"))
