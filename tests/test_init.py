"""`featurekit init`: adds featurekit's dbt package to a dbt project, exactly once, keeping what
the project had; refuses what it must not touch with one line and exit 2. And every command
names `featurekit init` when the project's package is missing or of another version."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import featurekit
from conftest import REPO
from featurekit.cli import main
from featurekit.dbt_package import PACKAGE_DIR, VENDOR_DIR

SHIM = "get_incremental_featurekit_history_sql.sql"


def make_project(root: Path, packages: str | None = None, name: str = "acme") -> Path:
    root.mkdir(parents=True)
    (root / "dbt_project.yml").write_text(f"name: {name}\nprofile: {name}\nversion: '1.0'\nconfig-version: 2\n")
    if packages is not None:
        (root / "packages.yml").write_text(packages)
    return root


def init(root: Path, *args: str):
    return CliRunner().invoke(main, ["init", "--project-dir", str(root), *args])


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and "dbt_packages" not in p.parts}


def test_init_twice_changes_nothing_the_second_time(tmp_path):
    root = make_project(tmp_path / "acme")
    first = init(root)
    assert first.exit_code == 0, first.output
    assert f"featurekit {featurekit.__version__} set up in {root}:" in first.output
    assert yaml.safe_load((root / "packages.yml").read_text()) == {"packages": [{"local": VENDOR_DIR}]}
    assert (root / "macros" / SHIM).is_file() and (root / "dbt_packages" / "featurekit" / "dbt_project.yml").is_file()
    # the example shop holds the very macros init writes (its Spark build relies on them)
    assert (root / "macros" / SHIM).read_text() == (REPO / "macros" / SHIM).read_text()
    assert snapshot(root / VENDOR_DIR) == snapshot(PACKAGE_DIR)
    before = snapshot(root)
    second = init(root)
    assert second.exit_code == 0
    assert second.output == f"featurekit {featurekit.__version__} is already set up in {root}; nothing changed.\n"
    assert snapshot(root) == before


def test_init_keeps_every_entry_and_comment_of_packages_yml(tmp_path):
    text = (
        "# pinned by the platform team\n"
        "packages:\n"
        "    - package: dbt-labs/dbt_utils   # hub\n"
        "      version: 1.3.0\n"
        "    - git: https://github.com/acme/macros.git\n"
        "      revision: v2\n"
    )
    root = make_project(tmp_path / "acme", text)
    # dbt deps cannot reach the hub or github here: init stops at `dbt deps`, after writing
    result = init(root)
    assert result.exit_code == 2 and f"Error: featurekit is added to {root}, but `dbt deps` failed (exit 2): " in result.output
    written = (root / "packages.yml").read_text()
    assert written.startswith("# pinned by the platform team\npackages:\n    # featurekit's dbt package")
    assert written.endswith(text.split("packages:\n")[1])
    assert yaml.safe_load(written)["packages"] == [
        {"local": VENDOR_DIR},
        {"package": "dbt-labs/dbt_utils", "version": "1.3.0"},
        {"git": "https://github.com/acme/macros.git", "revision": "v2"},
    ]


def test_init_uses_dependencies_yml_when_the_project_has_one(tmp_path):
    root = make_project(tmp_path / "acme")
    (root / "dependencies.yml").write_text("projects:\n  - name: core\npackages: []\n")
    assert init(root).exit_code == 0
    assert yaml.safe_load((root / "dependencies.yml").read_text()) == {"projects": [{"name": "core"}], "packages": [{"local": VENDOR_DIR}]}
    assert not (root / "packages.yml").exists()


def test_init_outside_a_dbt_project(tmp_path):
    result = init(tmp_path)
    assert result.exit_code == 2
    assert result.output == f"Error: {tmp_path} is not a dbt project (no dbt_project.yml): run `featurekit init` in your dbt project or pass --project-dir\n"
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_another_pinned_version_and_upgrade_replaces_the_vendored_copy(tmp_path):
    root = make_project(tmp_path / "acme")
    assert init(root).exit_code == 0
    config = root / VENDOR_DIR / "dbt_project.yml"
    config.write_text(config.read_text().replace(f'version: "{featurekit.__version__}"', 'version: "0.0.9"'))
    before = snapshot(root)
    refused = init(root)
    assert refused.exit_code == 2
    assert refused.output == (
        f"Error: packages.yml pins featurekit's dbt package 0.0.9 (local: {VENDOR_DIR}), but featurekit is {featurekit.__version__}: "
        f"run `featurekit init --upgrade` to move the project to {featurekit.__version__}, or install featurekit==0.0.9\n"
    )
    assert snapshot(root) == before
    upgraded = init(root, "--upgrade")
    assert upgraded.exit_code == 0 and f"{VENDOR_DIR}: replaced with featurekit {featurekit.__version__}'s dbt package" in upgraded.output
    assert snapshot(root / VENDOR_DIR) == snapshot(PACKAGE_DIR)


def test_init_refuses_an_edited_vendored_copy_and_a_git_pin(tmp_path):
    root = make_project(tmp_path / "acme")
    assert init(root).exit_code == 0
    (root / VENDOR_DIR / "macros" / "mine.sql").write_text("{% macro mine() %}1{% endmacro %}\n")
    refused = init(root)
    assert refused.exit_code == 2
    assert refused.output.startswith(f"Error: {VENDOR_DIR} holds featurekit's dbt package {featurekit.__version__}, not featurekit")
    assert (root / VENDOR_DIR / "macros" / "mine.sql").is_file()

    pinned = make_project(tmp_path / "pinned", "packages:\n  - git: https://github.com/acme/featurekit.git\n    revision: 0.0.7\n")
    result = init(pinned, "--upgrade")
    assert result.exit_code == 2
    assert result.output == (
        "Error: packages.yml pins featurekit's dbt package 0.0.7 (git: https://github.com/acme/featurekit.git): "
        f"`featurekit init --upgrade` replaces only the copy it vendored ({VENDOR_DIR}); change that entry by hand\n"
    )


@pytest.mark.slow
def test_every_command_names_init_when_the_package_is_missing_or_another_version(tmp_path):
    root = make_project(tmp_path / "acme")
    (root / "profiles.yml").write_text("acme:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: w.duckdb}\n")
    (root / "models").mkdir()
    (root / "models" / "m.sql").write_text("select 1 as x\n")
    dbt = str(Path(sys.executable).with_name("dbt"))
    subprocess.run([dbt, "parse"], cwd=root, check=True, capture_output=True)
    for command in (["features"], ["describe", "x"], ["train-set", "l.csv", "--features", "v_v1", "-o", "o.csv"], ["publish"]):
        result = CliRunner().invoke(main, [*command, "--project-dir", str(root)])
        assert result.exit_code == 2, command
        assert result.output == (
            "Error: featurekit's dbt package is not installed in this dbt project: run `featurekit init`, then `dbt deps` and `dbt build`\n"
        ), command

    assert init(root).exit_code == 0
    version = root / VENDOR_DIR / "macros" / "util" / "package_version.sql"
    version.write_text(version.read_text().replace(f"'{featurekit.__version__}'", "'0.0.9'"))
    subprocess.run([dbt, "parse"], cwd=root, check=True, capture_output=True)
    result = CliRunner().invoke(main, ["features", "--project-dir", str(root)])
    assert result.exit_code == 2
    assert result.output == (
        f"Error: this dbt project uses featurekit's dbt package 0.0.9, but featurekit is {featurekit.__version__}: "
        "run `featurekit init --upgrade`, then `dbt deps` and `dbt build`\n"
    )


def test_the_package_version_is_the_python_version():
    """One version, three places a user sees: the Python package, the dbt package's
    dbt_project.yml and the macro every command reads from the manifest."""
    config = yaml.safe_load((PACKAGE_DIR / "dbt_project.yml").read_text())
    macro = (PACKAGE_DIR / "macros" / "util" / "package_version.sql").read_text()
    assert config["name"] == "featurekit" and config["version"] == featurekit.__version__
    assert f"return('{featurekit.__version__}')" in macro


@pytest.mark.slow
def test_the_wheel_carries_the_dbt_package_and_init_works_from_it(tmp_path):
    """Built as a user installs it: a wheel, into a fresh venv; `featurekit init` and `dbt
    build` run from that install, not from this checkout."""
    repo = Path(__file__).resolve().parents[1]
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(repo)], check=True)
    [wheel] = wheels.glob("featurekit-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import featurekit; print(featurekit.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(str(venv))
    root = make_project(tmp_path / "acme")
    (root / "profiles.yml").write_text("acme:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: w.duckdb}\n")
    (root / "models").mkdir()
    (root / "models" / "plan_v1.sql").write_text(
        "{{ config(materialized='incremental', incremental_strategy='featurekit_history', unique_key=['k', 'feature_ts']) }}\n"
        "select 'a' as k, timestamp '2024-01-01' as feature_ts, 1 as x, timestamp '2024-01-01' as loaded_at\n"
        "{% if is_incremental() %}where loaded_at > {{ featurekit.newest(this, 'loaded_at') }}{% endif %}\n"
    )
    (root / "models" / "plan.yml").write_text(
        "version: 2\nmodels:\n  - name: plan\n    latest_version: 1\n"
        "    config: {meta: {featurekit: {entity: thing, keys: [k], timestamp: feature_ts}}}\n"
        "    data_tests: [featurekit.unique_history]\n"
        "    columns: [{name: k}, {name: feature_ts}, {name: x}]\n    versions: [{v: 1}]\n"
    )
    subprocess.run([str(venv / "bin" / "featurekit"), "init"], cwd=root, check=True, capture_output=True)
    assert snapshot(root / VENDOR_DIR) == snapshot(PACKAGE_DIR)
    for _ in range(2):  # a first and an incremental run
        built = subprocess.run([str(venv / "bin" / "dbt"), "build"], cwd=root, capture_output=True, text=True)
        assert built.returncode == 0, built.stdout[-3000:]
    features = subprocess.run([str(venv / "bin" / "featurekit"), "features"], cwd=root, capture_output=True, text=True)
    assert features.returncode == 0 and "plan_v1" in features.stdout, features.stderr
    shutil.rmtree(venv)
