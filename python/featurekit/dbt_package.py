"""featurekit's dbt package: the dbt project shipped inside this Python package (dbt/), and
`featurekit init`, which adds it to a user's dbt project.

A project uses the package through an entry of its packages.yml (or dependencies.yml), like
any dbt package. `init` vendors a copy into vendor/featurekit/ (committed with the project)
and adds `- local: vendor/featurekit`: nothing machine-specific lands in the project, plain
`dbt deps && dbt build` works on any machine, and the Python package and the macros are
always the same version (every command checks, see require_package).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import yaml

from . import __version__
from .errors import FeaturekitError

# The dbt package as installed with this Python package (a wheel carries it too).
PACKAGE_DIR = Path(__file__).parent / "dbt"
NAME = "featurekit"
VENDOR_DIR = "vendor/featurekit"
# dbt looks up an incremental strategy's macro in the root project only, so the project
# needs this one-line macro to reach the package's history strategy (and, for dbt-spark, whose
# incremental materialization knows only its own strategies, two more).
STRATEGY_MACRO = "get_incremental_featurekit_history_sql"
STRATEGY_SHIM = f"""{{#- Written by `featurekit init`: dbt looks up an incremental strategy's macro in the
    root project only, so this makes featurekit's history strategy (incremental_strategy:
    featurekit_history, for feature views) available to the project's models. -#}}
{{% macro {STRATEGY_MACRO}(arg_dict) %}}
  {{{{ return(featurekit.{STRATEGY_MACRO}(arg_dict)) }}}}
{{% endmacro %}}

{{#- dbt-spark checks and builds incremental strategies in these two macros of its own: the
    project's versions let featurekit_history through (featurekit's spark_history.sql). -#}}
{{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}}
  {{{{ return(featurekit.spark_validate_incremental_strategy(raw_strategy, file_format)) }}}}
{{% endmacro %}}

{{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}}
  {{{{ return(featurekit.spark_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}}}
{{% endmacro %}}

{{#- dbt-postgres makes a new table's indexes in this macro: the project's version adds the
    one featurekit's point-in-time join descends to feature views (featurekit's view_index.sql). -#}}
{{% macro postgres__create_indexes(relation) %}}
  {{{{ return(featurekit.create_view_indexes(relation)) }}}}
{{% endmacro %}}
"""
_VERSION_MACRO = "macro.featurekit.package_version"

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def require_package(manifest: dict) -> None:
    """Raises unless the manifest was parsed with featurekit's dbt package of this version."""
    macro = manifest.get("macros", {}).get(_VERSION_MACRO)
    if macro is None:
        raise FeaturekitError(
            "featurekit's dbt package is not installed in this dbt project: run `featurekit init`, then `dbt deps` and `dbt build`"
        )
    found = re.search(r"return\('([^']+)'\)", macro["macro_sql"])
    version = found.group(1) if found else "unknown"
    if version != __version__:
        raise FeaturekitError(
            f"this dbt project uses featurekit's dbt package {version}, but featurekit is {__version__}: "
            "run `featurekit init --upgrade`, then `dbt deps` and `dbt build`"
        )


def init(project_dir=None, upgrade: bool = False, progress: Progress = _quiet) -> list[str]:
    """Adds featurekit's dbt package to the dbt project and installs it (dbt deps). Returns
    what it changed, one line each (nothing when the project was already set up)."""
    root = Path(project_dir or ".").resolve()
    if not (root / "dbt_project.yml").is_file():
        raise FeaturekitError(
            f"{root} is not a dbt project (no dbt_project.yml): run `featurekit init` in your dbt project or pass --project-dir"
        )
    config = yaml.safe_load((root / "dbt_project.yml").read_text()) or {}
    if config.get("name") == NAME:
        raise FeaturekitError(f"{root} is featurekit's own dbt package, not a project that uses it")
    deps_path = root / ("dependencies.yml" if (root / "dependencies.yml").is_file() else "packages.yml")
    deps_text = deps_path.read_text() if deps_path.is_file() else ""
    entries = _entries(deps_path, deps_text)
    changes = []
    pinned = _pinned(root, entries)
    if pinned is None:
        changes += _vendor(root, upgrade)
        deps_path.write_text(_with_entry(deps_path, deps_text, entries))
        changes.append(f"{deps_path.name}: added `- local: {VENDOR_DIR}`")
    else:
        where, version = pinned
        if version != __version__:
            if not upgrade:
                raise FeaturekitError(
                    f"{deps_path.name} pins featurekit's dbt package {version} ({where}), but featurekit is {__version__}: "
                    f"run `featurekit init --upgrade` to move the project to {__version__}, or install featurekit=={version}"
                )
            if where != f"local: {VENDOR_DIR}":
                raise FeaturekitError(
                    f"{deps_path.name} pins featurekit's dbt package {version} ({where}): `featurekit init --upgrade` replaces "
                    f"only the copy it vendored ({VENDOR_DIR}); change that entry by hand"
                )
        if where == f"local: {VENDOR_DIR}":
            changes += _vendor(root, upgrade)
    changes += _strategy_shim(root, config)
    changes += _gitignore(root)
    if changes or not _installed(root):
        progress("dbt deps")
        _dbt_deps(root)
        changes.append(f"dbt deps: installed featurekit's dbt package {__version__} in dbt_packages/")
    return changes


def _entries(path: Path, text: str) -> list:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as e:
        raise FeaturekitError(f"{path.name} is not valid YAML ({str(e).splitlines()[0]}); fix it, then run `featurekit init` again") from None
    entries = (data or {}).get("packages") or []
    if not isinstance(data or {}, dict) or not isinstance(entries, list):
        raise FeaturekitError(f"{path.name}: 'packages' must be a list of packages; fix it, then run `featurekit init` again")
    return entries


def _pinned(root: Path, entries: list) -> tuple[str, str] | None:
    """(how the project names featurekit's package, its version), or None when it does not."""
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if "local" in entry:
            version = _local_version(root / str(entry["local"]))
            if version is not None:
                return f"local: {entry['local']}", version
        elif "git" in entry and re.search(r"featurekit(\.git)?/?$", str(entry["git"])):
            return f"git: {entry['git']}", str(entry.get("revision", "unpinned"))
        elif str(entry.get("package", "")).split("/")[-1] == NAME:
            return f"package: {entry['package']}", str(entry.get("version", "unpinned"))
    return None


def _local_version(path: Path) -> str | None:
    """The version of the featurekit dbt package at `path`, or None when it is not one."""
    try:
        config = yaml.safe_load((path / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    return str(config.get("version")) if config.get("name") == NAME else None


def _vendor(root: Path, upgrade: bool) -> list[str]:
    """Copies the package to vendor/featurekit unless the same files are there already."""
    target = root / VENDOR_DIR
    if target.exists():
        if _same_files(PACKAGE_DIR, target):
            return []
        version = _local_version(target)
        if not upgrade:
            what = f"featurekit's dbt package {version}" if version else "other files"
            raise FeaturekitError(
                f"{VENDOR_DIR} holds {what}, not featurekit {__version__}'s package: run `featurekit init --upgrade` "
                "to replace it (edits made there are lost; keep your own macros in your project's macros/)"
            )
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(PACKAGE_DIR, tmp, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old)
        return [f"{VENDOR_DIR}: replaced with featurekit {__version__}'s dbt package"]
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return [f"{VENDOR_DIR}: featurekit {__version__}'s dbt package (commit it with the project)"]


def _same_files(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    return files(a) == files(b)


def _with_entry(path: Path, text: str, entries: list) -> str:
    """The packages file with `- local: vendor/featurekit` added, every other line kept (its
    comments too). Checked by parsing the result."""
    comment = "# featurekit's dbt package, vendored by `featurekit init` (`featurekit init --upgrade` replaces it)"
    lines = text.splitlines()
    head = next((i for i, line in enumerate(lines) if re.match(r"packages\s*:", line)), None)
    if head is None:
        new = "\n".join([*lines, "packages:", f"  {comment}", f"  - local: {VENDOR_DIR}"]) + "\n"
    elif re.fullmatch(r"packages\s*:\s*(\[\s*\])?\s*(#.*)?", lines[head]):
        item = next((re.match(r"(\s*)-", line) for line in lines[head + 1:] if line.strip() and not line.strip().startswith("#")), None)
        indent = item.group(1) if item else "  "
        lines[head] = "packages:"
        new = "\n".join([*lines[: head + 1], f"{indent}{comment}", f"{indent}- local: {VENDOR_DIR}", *lines[head + 1:]]) + "\n"
    else:
        new = None
    expected = [{"local": VENDOR_DIR}, *entries]
    if new is None or sorted(map(str, _entries(path, new))) != sorted(map(str, expected)):
        raise FeaturekitError(f"cannot add featurekit to {path.name} automatically: add `- local: {VENDOR_DIR}` under packages: by hand")
    return new


def _strategy_shim(root: Path, config: dict) -> list[str]:
    """The root-project macro that makes the history strategy reachable, unless the project
    defines one already."""
    folders = config.get("macro-paths") or ["macros"]
    for folder in folders:
        for path in (root / folder).rglob("*.sql") if (root / folder).is_dir() else []:
            if re.search(r"macro\s+" + STRATEGY_MACRO + r"\s*\(", path.read_text()):
                return []
    target = root / folders[0] / f"{STRATEGY_MACRO}.sql"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(STRATEGY_SHIM)
    return [f"{target.relative_to(root)}: makes featurekit's history strategy (featurekit_history) available to your models"]


# What featurekit writes into a project that must not be committed: its private files (a
# profile copy, dbt parses for `check`) and the default online snapshot directory.
IGNORED = ["/.featurekit/", "/online/", "*.featurekit-lock"]  # the last: beside a DuckDB warehouse (warehouse_lock.py)


def _gitignore(root: Path) -> list[str]:
    """Adds featurekit's outputs to the project's .gitignore, when it has one."""
    path = root / ".gitignore"
    if not path.is_file():
        return []
    text = path.read_text()
    present = {line.strip().strip("/") for line in text.splitlines()}
    missing = [entry for entry in IGNORED if entry.strip("/") not in present]
    if not missing:
        return []
    path.write_text(text + ("" if text.endswith("\n") or not text else "\n") + "# featurekit\n" + "".join(f"{e}\n" for e in missing))
    return [f".gitignore: added {', '.join(missing)} (featurekit's private files and online snapshots)"]


def _installed(root: Path) -> bool:
    return _local_version(root / "dbt_packages" / NAME) == __version__


def _dbt_deps(root: Path) -> None:
    from .dbt_runner import DBT_COMMAND

    result = subprocess.run([*DBT_COMMAND, "deps"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        raise FeaturekitError(
            f"featurekit is added to {root}, but `dbt deps` failed (exit {result.returncode}): "
            f"{lines[-1] if lines else 'no output'}; fix that, then run `dbt deps`"
        )
