"""Released feature view versions are immutable: featurekit.lock records a checksum of each
one's definition, and check() fails when a locked version changed or was removed while a
feature set still pins it.

Released means: listed in featurekit.lock. `featurekit lock` adds every version that is not
listed yet and never rewrites a listed one (unless told to accept a change on purpose).

What the checksum covers, and why not dbt's compiled SQL: compiled_code names the database
(the warehouse file's stem, so it differs between machines and targets), differs between a
first and an incremental build (is_incremental()), and is absent after `dbt parse`. The
checksum is instead a SHA-256 over
  - the model's raw SQL (the Jinja source, refs as written) with whitespace runs collapsed,
    so line endings and indentation do not count;
  - the source of each macro of the model's package and of featurekit's that the model
    reaches, read from the Jinja source of the model and of each macro, every branch
    included, with every adapter implementation (`duckdb__x`, `default__x`) of a macro `x`
    that dispatches: an edit to the DuckDB join changes DuckDB's numbers. The rule is
    featurekit.reached_macros, which the online tables' view_definition uses too; not dbt's
    depends_on, which records only the calls of one run (a parse takes no
    `{% if is_incremental() %}` branch, an incremental build does). dbt's own macros are left
    out: they change with the dbt version, not with the feature;
  - the settings that change its values: entity, keys, timestamp and availability columns,
    ttl in seconds, and each feature's name, kind, source, unit and fill.
Descriptions, owner and freshness are documentation and may change freely. Upstream models
are not covered: a view that must not move with its inputs should select from versioned or
locked inputs.

The project is read from a manifest that `dbt parse` writes into .featurekit/parse/ on every
check, never from target/: what dbt last did there (a parse, a first or an incremental build)
must not change the result, and dbt's partial parsing re-reads a file by its content, not
its modification time (a schema YAML file whose modification time is exactly the one dbt
recorded is trusted, as dbt's own builds trust it; CI's fresh clone has no saved parse).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

from .catalog import feature_sets, feature_views
from .dbt_runner import run_dbt
from .errors import CheckFailed, FeaturekitError
from .project import Project

LOCK_FILE = "featurekit.lock"
FORMAT = 1
_VALUE_SETTINGS = ("entity", "keys", "timestamp", "available_at", "ttl_seconds")
_FEATURE_SETTINGS = ("name", "kind", "source", "unit_seconds", "fill")
# dbt's message when a model or exposure refs a version that no longer exists.
_MISSING_VERSION = re.compile(
    r"(Model|Exposure) '[^']+\.([^'.]+)' \(([^)]+)\) depends on a node named '([^']+)' with version '([^']+)' which was not found"
)


def _quiet(message: str) -> None:
    pass


def lock_path(project: Project) -> Path:
    return project.root / LOCK_FILE


def read_lock(project: Project) -> dict[str, dict]:
    """The locked versions: {ref: {'sha256', 'model'}}; empty when there is no lock file."""
    path = lock_path(project)
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text())
        if content.get("format") != FORMAT or not isinstance(content.get("views"), dict):
            raise ValueError(f"expected format {FORMAT} with a 'views' mapping")
    except ValueError as e:
        raise FeaturekitError(f"{LOCK_FILE} is not a featurekit lock file ({e}); restore it from version control") from None
    return content["views"]


def view_checksums(project: Project) -> dict[str, dict]:
    """Every feature view version's checksum, as the lock file records it."""
    nodes = project.manifest["nodes"]
    sources: dict[str, dict] = {}  # by the model's package
    checksums = {}
    for ref, view in feature_views(project).items():
        node = nodes[view["unique_id"]]
        package = node["package_name"]
        if package not in sources:
            sources[package] = _macro_sources(project, [package, "featurekit"])
        reached = project.macros.call("reached_macros", node["raw_code"], package, sources[package])
        definition = {
            "sql": _collapse(node["raw_code"]),
            "macros": {uid: _collapse(_source(sources[package], uid)) for uid in reached},
            "settings": {k: view[k] for k in _VALUE_SETTINGS},
            "features": [{k: f.get(k) for k in _FEATURE_SETTINGS} for f in view["features"]],
        }
        digest = hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()
        checksums[ref] = {"sha256": digest, "model": node["original_file_path"]}
    return checksums


def _macro_sources(project: Project, packages: list[str]) -> dict[str, dict[str, str]]:
    """{package: {macro name: source}}, as featurekit.reached_macros takes them."""
    sources: dict[str, dict[str, str]] = {package: {} for package in packages}
    for macro in project.manifest["macros"].values():
        if macro["package_name"] in sources:
            sources[macro["package_name"]][macro["name"]] = macro["macro_sql"]
    return sources


def _source(sources: dict[str, dict[str, str]], uid: str) -> str:
    _, package, name = uid.split(".")
    return sources[package][name]


def check(project_dir=None, progress: Callable[[str], None] = _quiet) -> dict:
    """Compares the project with featurekit.lock. Raises CheckFailed naming each locked version
    whose definition changed, or that was removed while a model or feature set still pins it
    (and when a feature set does not resolve); otherwise returns {'unchanged': [...], 'new': [...], 'removed': [...]}."""
    project = _parsed_project(project_dir, progress)
    found = _compare(project, read_lock(project), view_checksums(project))
    if found["changed"]:
        raise CheckFailed("\n".join(found["changed"].values()))
    try:  # a feature set naming a removed version in its features list still parses in dbt
        feature_sets(project)
    except FeaturekitError as e:
        raise CheckFailed(str(e)) from None
    del found["changed"]
    return found


def lock(project_dir=None, accept: tuple[str, ...] = (), progress: Callable[[str], None] = _quiet) -> dict:
    """Adds every unlocked feature view version to featurekit.lock and drops the removed ones
    (dbt has already refused any that something still pins). Refuses (CheckFailed) while a
    locked version differs, unless its ref is in `accept`: a change made on purpose.
    Returns {'added': [...], 'accepted': [...], 'dropped': [...]}."""
    project = _parsed_project(project_dir, progress)
    locked = read_lock(project)
    current = view_checksums(project)
    found = _compare(project, locked, current)
    for ref in accept:
        if ref not in found["changed"]:
            raise FeaturekitError(f"--accept {ref}: not a locked feature view version whose definition changed")
    refused = [message for ref, message in found["changed"].items() if ref not in accept]
    if refused:
        raise CheckFailed("\n".join(refused))
    views = {ref: entry for ref, entry in locked.items() if ref in current}
    for ref in [*found["new"], *accept]:
        views[ref] = current[ref]
    _write_lock(project, views)
    return {"added": found["new"], "accepted": sorted(accept), "dropped": found["removed"]}


def _compare(project: Project, locked: dict, current: dict) -> dict:
    """{'changed': {ref: message}, 'unchanged', 'new', 'removed': [refs]}."""
    changed = {
        ref: f"{ref} is released (in {LOCK_FILE}) but its definition changed ({current[ref]['model']}): "
        f"revert it and add a new version instead ({_next_version(project, ref)})"
        for ref in sorted(locked)
        if ref in current and current[ref]["sha256"] != locked[ref]["sha256"]
    }
    return {
        "changed": changed,
        "unchanged": sorted(ref for ref in locked if ref in current and ref not in changed),
        "new": sorted(ref for ref in current if ref not in locked),
        "removed": sorted(ref for ref in locked if ref not in current),
    }


def _write_lock(project: Project, views: dict) -> None:
    content = {
        "format": FORMAT,
        "about": "Released feature view versions and the checksum of their definitions, written by "
        "`featurekit lock` and checked by `featurekit check`. Do not edit: add a new version instead.",
        "views": {ref: views[ref] for ref in sorted(views)},
    }
    path = lock_path(project)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(tmp, path)


def _parsed_project(project_dir, progress) -> Project:
    """The project as `dbt parse` reads its files now, into .featurekit/parse/ (kept, so the
    next check re-parses only what changed; seeded once from target/), leaving target/
    describing what was built. A released version removed while a model or exposure still
    refs it makes dbt fail: that failure is reported in featurekit's terms."""
    project = Project(project_dir)
    parsed = _ParsedProject(project_dir, project.root / ".featurekit" / "parse")
    progress("dbt parse")
    parsed.target_dir.mkdir(parents=True, exist_ok=True)
    previous = project.target_dir / "partial_parse.msgpack"
    if previous.is_file() and not (parsed.target_dir / previous.name).is_file():
        shutil.copy2(previous, parsed.target_dir)  # lets dbt re-parse only the files that changed
    try:
        run_dbt(parsed, "parse", "--target-path", str(parsed.target_dir), quiet=True)
    except FeaturekitError as e:
        locked = read_lock(project)
        problems = [
            f"{name}_v{version} is released (in {LOCK_FILE}) and was removed, but {kind.lower()} {node} ({path}) "
            "still pins it: restore it, or move that to another version first"
            for kind, node, path, name, version in _MISSING_VERSION.findall(str(e))
            if f"{name}_v{version}" in locked
        ]
        if problems:
            raise CheckFailed("\n".join(problems)) from None
        raise
    return parsed


class _ParsedProject(Project):
    """A project whose manifest comes from a given target directory."""

    def __init__(self, project_dir, target_dir: Path):
        super().__init__(project_dir)
        self._target_dir = target_dir

    @property
    def target_dir(self) -> Path:
        return self._target_dir


def _next_version(project: Project, ref: str) -> str:
    """How to add the next version of the view that `ref` is a version of."""
    views = feature_views(project)
    view = views[ref]
    if view["version"] is None:
        return f"declare versions: for {view['name']} and keep this one as v1"
    following = max(int(v["version"]) for v in views.values() if v["name"] == view["name"]) + 1
    return f"a {view['name']}_v{following}.sql and a '- v: {following}' entry under versions: in its YAML"


def _collapse(text: str) -> str:
    return " ".join(text.split())
