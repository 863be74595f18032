"""The dbt profile and target a project builds with, found and rendered the way dbt does, so
that featurekit reads the warehouse dbt wrote.

Where profiles.yml is read (dbt's order): --profiles-dir (DBT_PROFILES_DIR), then the project
directory (dbt's working directory when featurekit runs it), then ~/.dbt/. The target:
--target (DBT_TARGET), else the profile's `target:`. Values are rendered with env_var() and
the as_text/as_number/as_bool/as_native filters, as dbt renders them.

A project with no profile of its name anywhere but a profiles.yml.example holding it (the
example shop) gets that: it is copied to .featurekit/profiles.yml, so a fresh clone works
without set-up.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.nativetypes
import yaml

from .errors import FeaturekitError

EXAMPLE = "profiles.yml.example"


@dataclass(frozen=True)
class Target:
    profile: str
    name: str
    config: dict  # the rendered target: type, path or host, schema, threads ...
    profiles_dir: Path  # where dbt must read profiles.yml for this target

    @property
    def type(self) -> str:
        return str(self.config.get("type"))

    def describe(self) -> str:
        """The target as messages name it."""
        return f"target {self.name} of profile {self.profile} ({self.profiles_dir / 'profiles.yml'})"


def load_target(project_root: Path, profile: str | None) -> Target:
    """The target dbt uses for the project at `project_root`, whose dbt_project.yml names
    `profile`."""
    if not profile:
        raise FeaturekitError(f"{project_root / 'dbt_project.yml'} names no profile: add `profile: <name>` as dbt requires")
    directory = _profiles_dir(project_root, profile)
    path = directory / "profiles.yml"
    try:
        profiles = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise FeaturekitError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    entry = profiles.get(profile)
    if not isinstance(entry, dict) or not isinstance(entry.get("outputs"), dict):
        raise FeaturekitError(f"{path} has no profile '{profile}' with outputs: (the profile dbt_project.yml names)")
    name = os.environ.get("DBT_TARGET") or _render(entry.get("target", "default"), path)
    if name not in entry["outputs"]:
        raise FeaturekitError(
            f"{path}: profile '{profile}' has no target '{name}'; its targets are {', '.join(sorted(entry['outputs']))}"
        )
    config = _render(entry["outputs"][name], path)
    if not isinstance(config, dict) or "type" not in config:
        raise FeaturekitError(f"{path}: target '{name}' of profile '{profile}' needs a type: (duckdb, postgres, ...)")
    return Target(profile=profile, name=str(name), config=config, profiles_dir=directory)


def _profiles_dir(project_root: Path, profile: str) -> Path:
    explicit = os.environ.get("DBT_PROFILES_DIR")
    if explicit:
        directory = Path(explicit).expanduser().resolve()
        if not (directory / "profiles.yml").is_file():
            raise FeaturekitError(f"--profiles-dir / DBT_PROFILES_DIR {directory} holds no profiles.yml")
        return directory
    for directory in (project_root, Path.home() / ".dbt"):
        if _names(directory / "profiles.yml", profile):
            return directory
    example = project_root / EXAMPLE
    if _names(example, profile):
        private = project_root / ".featurekit"
        private.mkdir(exist_ok=True)
        shutil.copyfile(example, private / "profiles.yml")
        return private
    raise FeaturekitError(
        f"no dbt profile '{profile}' in {project_root / 'profiles.yml'} or {Path.home() / '.dbt' / 'profiles.yml'}: "
        "create it as for dbt, or pass --profiles-dir"
    )


def _names(path: Path, profile: str) -> bool:
    try:
        return profile in (yaml.safe_load(path.read_text()) or {})
    except (OSError, yaml.YAMLError, TypeError):
        return False


def _env_var(name: str, default=None):
    if name in os.environ:
        return os.environ[name]
    if default is None:
        raise FeaturekitError(f"the dbt profile needs environment variable {name} (env_var('{name}')), which is not set")
    return default


def _render(value, path: Path):
    """The value with its Jinja rendered as dbt renders profiles (recursively)."""
    if isinstance(value, dict):
        return {k: _render(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, path) for v in value]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    native = any(f in value for f in ("as_number", "as_bool", "as_native"))
    env = (jinja2.nativetypes.NativeEnvironment if native else jinja2.Environment)(undefined=jinja2.StrictUndefined)
    env.filters.update(as_text=str, as_number=lambda v: v if isinstance(v, (int, float)) else yaml.safe_load(str(v)),
                       as_bool=lambda v: v if isinstance(v, bool) else str(v).strip().lower() == "true",
                       as_native=lambda v: yaml.safe_load(str(v)))
    try:
        return env.from_string(value).render(env_var=_env_var)
    except jinja2.TemplateError as e:
        raise FeaturekitError(f"{path}: cannot render '{value}': {e}") from None
