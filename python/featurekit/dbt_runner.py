"""Runs dbt for the project in a subprocess, with a profile that works out of the box."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import CheckFailed, FeaturekitError
from .project import Project

_DBT = "import sys; from dbt.cli.main import cli; sys.argv[0] = 'dbt'; cli()"


def profiles_dir(project: Project) -> Path | None:
    """Where dbt should read profiles.yml: None when the user has their own (DBT_PROFILES_DIR,
    ./profiles.yml or ~/.dbt/profiles.yml naming this project's profile); otherwise a copy of
    profiles.yml.example in .featurekit/, so a fresh clone works without any setup."""
    if os.environ.get("DBT_PROFILES_DIR") or (project.root / "profiles.yml").is_file():
        return None
    profile = project.config.get("profile")
    home = Path.home() / ".dbt" / "profiles.yml"
    if home.is_file() and profile in (yaml.safe_load(home.read_text()) or {}):
        return None
    example = project.root / "profiles.yml.example"
    if not example.is_file():
        raise FeaturekitError(f"no dbt profile '{profile}' found and no profiles.yml.example in {project.root}")
    target = project.root / ".featurekit"
    target.mkdir(exist_ok=True)
    shutil.copyfile(example, target / "profiles.yml")
    return target


def run_dbt(project: Project, *args: str, quiet: bool = False) -> None:
    """Runs `dbt ARGS` in the project directory; raises FeaturekitError when it fails."""
    command = [sys.executable, "-c", _DBT, *args]
    directory = profiles_dir(project)
    if directory is not None:
        command += ["--profiles-dir", str(directory)]
    env = dict(os.environ, FEATUREKIT_WAREHOUSE=str(project.warehouse))
    result = subprocess.run(
        command,
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
    )
    if result.returncode != 0:
        # dbt exits 1 when a model or test failed (a check found a problem), 2 on bad usage.
        error = CheckFailed if result.returncode == 1 else FeaturekitError
        if quiet:
            lines = [line for line in (result.stdout or "").splitlines() if line.strip()]
            raise error(f"`dbt {' '.join(args)}` failed (exit {result.returncode}); dbt's last lines:\n" + "\n".join(lines[-15:]))
        raise error(f"`dbt {' '.join(args)}` failed (exit {result.returncode}); see dbt's output above")
