"""featurekit finds and renders the dbt profile the way dbt does (profiles.py), pinned to dbt's
own renderer on the same files."""

from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path

import pytest

from featurekit.errors import FeaturekitError
from featurekit.profiles import load_target
from featurekit.project import Project

PROFILES = """\
acme:
  target: "{{ env_var('ACME_TARGET', 'dev') }}"
  outputs:
    dev:
      type: duckdb
      path: "{{ env_var('ACME_DIR', 'data') }}/dev.duckdb"
      threads: "{{ env_var('ACME_THREADS', '4') | as_number }}"
    ci:
      type: duckdb
      path: ci.duckdb
      schema: "analytics_{{ env_var('ACME_SUFFIX', 'x') }}"
      settings: {memory_limit: "{{ env_var('ACME_MEM', '1GB') }}"}
    memory:
      type: duckdb
      path: ":memory:"
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A project dir and an empty home (~/.dbt), with no dbt variables set."""
    for name in ("DBT_PROFILES_DIR", "DBT_TARGET", "FEATUREKIT_WAREHOUSE", "ACME_TARGET", "ACME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: acme\nprofile: acme\nconfig-version: 2\nversion: '1'\n")
    return project


def write_profiles(directory: Path, text: str = PROFILES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "profiles.yml").write_text(text)
    return directory


def dbt_renders(directory: Path, target: str | None):
    """(target name, rendered target) as dbt itself renders profiles.yml in `directory`."""
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    set_invocation_context(os.environ)
    set_from_args(Namespace(), {})
    raw = read_profile(str(directory))["acme"]
    return Profile.render_profile(raw, "acme", target, ProfileRenderer({}))


@pytest.mark.parametrize("target", [None, "dev", "ci"])
@pytest.mark.parametrize("env", [{}, {"ACME_TARGET": "ci", "ACME_SUFFIX": "prod", "ACME_MEM": "3GB"}, {"ACME_DIR": "/srv", "ACME_THREADS": "8"}])
def test_rendered_as_dbt_renders_it(home, monkeypatch, target, env):
    directory = write_profiles(home)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if target:
        monkeypatch.setenv("DBT_TARGET", target)
    found = load_target(home, "acme")
    name, config = dbt_renders(directory, target)
    assert (found.name, found.config) == (name, config)
    assert found.profiles_dir == home


def test_profiles_dir_order_is_dbts(home, tmp_path, monkeypatch):
    write_profiles(Path(os.environ["HOME"]) / ".dbt", PROFILES.replace("dev.duckdb", "home.duckdb"))
    assert load_target(home, "acme").config["path"] == "data/home.duckdb"  # ~/.dbt
    write_profiles(home, PROFILES.replace("dev.duckdb", "project.duckdb"))
    assert load_target(home, "acme").config["path"] == "data/project.duckdb"  # the project before ~/.dbt
    elsewhere = write_profiles(tmp_path / "ci-profiles", PROFILES.replace("dev.duckdb", "explicit.duckdb"))
    monkeypatch.setenv("DBT_PROFILES_DIR", str(elsewhere))
    assert load_target(home, "acme").config["path"] == "data/explicit.duckdb"  # --profiles-dir first


def test_project_reads_the_duckdb_file_the_target_names(home, monkeypatch):
    write_profiles(home)
    monkeypatch.setenv("ACME_DIR", "/srv/warehouses")
    assert Project(home).warehouse == Path("/srv/warehouses/dev.duckdb")
    monkeypatch.setenv("DBT_TARGET", "ci")
    assert Project(home).warehouse == home / "ci.duckdb"  # relative to the project, where dbt runs
    monkeypatch.setenv("FEATUREKIT_WAREHOUSE", "other.duckdb")
    assert Project(home).warehouse == home / "other.duckdb"


@pytest.mark.parametrize(
    "profiles, env, message",
    [
        (None, {}, "no dbt profile 'acme' in {project}/profiles.yml or {home}/.dbt/profiles.yml: create it as for dbt, or pass --profiles-dir"),
        (PROFILES, {"DBT_TARGET": "prod"}, "{project}/profiles.yml: profile 'acme' has no target 'prod'; its targets are ci, dev, memory"),
        (PROFILES.replace("'data'", "none"), {}, "the dbt profile needs environment variable ACME_DIR (env_var('ACME_DIR')), which is not set"),
        (PROFILES, {"DBT_TARGET": "memory"}, "target memory of profile acme ({project}/profiles.yml) is an in-memory DuckDB: give it a path: to a file, which dbt builds and featurekit reads"),
        ("other: {outputs: {}}\n", {}, "no dbt profile 'acme' in {project}/profiles.yml or {home}/.dbt/profiles.yml: create it as for dbt, or pass --profiles-dir"),
    ],
)
def test_profile_problems_are_one_line(home, monkeypatch, profiles, env, message):
    if profiles is not None:
        write_profiles(home, profiles)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(FeaturekitError) as raised:
        Project(home).warehouse
    assert str(raised.value) == message.format(project=home, home=os.environ["HOME"])
