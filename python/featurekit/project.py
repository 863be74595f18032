"""The dbt project featurekit works on: where its manifest and warehouse are, read safely."""

from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property
from pathlib import Path

import duckdb
import yaml

from .dbt_package import require_package
from .errors import FeaturekitError
from .macros import MacroRenderer
from .profiles import Target, load_target



class Project:
    """A dbt project directory: dbt_project.yml, target/manifest.json, the dbt target it
    builds with and the warehouse."""

    def __init__(self, project_dir: str | os.PathLike | None = None, warehouse: str | os.PathLike | None = None):
        """`warehouse` (or $FEATUREKIT_WAREHOUSE) names the DuckDB file to read instead of the
        one the dbt target gives."""
        self.root = Path(project_dir or os.environ.get("FEATUREKIT_PROJECT_DIR") or ".").resolve()
        config_path = self.root / "dbt_project.yml"
        if not config_path.is_file():
            raise FeaturekitError(f"{self.root} is not a dbt project (no dbt_project.yml); pass --project-dir")
        self.config = yaml.safe_load(config_path.read_text()) or {}
        self.warehouse_override = warehouse or os.environ.get("FEATUREKIT_WAREHOUSE")

    @cached_property
    def target(self) -> Target:
        """The dbt target the project builds with (profiles.py)."""
        return load_target(self.root, self.config.get("profile"))

    @cached_property
    def warehouse(self) -> Path:
        """The DuckDB file the target builds (a relative path is relative to the project, where
        dbt runs), unless `warehouse` overrides it."""
        if self.warehouse_override:
            return (self.root / self.warehouse_override).resolve()
        target = self.target
        if target.type != "duckdb":
            raise FeaturekitError(f"{target.describe()} is of type {target.type}; featurekit reads DuckDB warehouses only")
        path = str(target.config.get("path") or ":memory:")
        if path == ":memory:":
            raise FeaturekitError(
                f"{target.describe()} is an in-memory DuckDB: give it a path: to a file, which dbt builds and featurekit reads"
            )
        return (self.root / path).resolve()

    @property
    def target_dir(self) -> Path:
        return self.root / self.config.get("target-path", "target")

    @property
    def manifest_path(self) -> Path:
        return self.target_dir / "manifest.json"

    def source_paths(self) -> list[Path]:
        """The files whose edits make the manifest stale."""
        folders = [
            *self.config.get("model-paths", ["models"]),
            *self.config.get("macro-paths", ["macros"]),
            self.config.get("packages-install-path", "dbt_packages"),  # featurekit's package among them
        ]
        files = [self.root / "dbt_project.yml"]
        for folder in folders:
            files.extend(p for p in (self.root / folder).rglob("*") if p.suffix in {".sql", ".yml", ".yaml"})
        return files

    def _check_manifest_current(self) -> None:
        if not self.manifest_path.is_file():
            raise FeaturekitError(
                f"{self._rel(self.manifest_path)} not found: run `featurekit refresh` (or `dbt build`) in {self.root} first"
            )
        built = self.manifest_path.stat().st_mtime
        newer = [p for p in self.source_paths() if p.stat().st_mtime > built]
        if newer:
            raise FeaturekitError(
                f"{self._rel(newer[0])} changed after dbt last ran, so {self._rel(self.manifest_path)} and the warehouse "
                "may not match it: run `featurekit refresh` (or `dbt build`)"
            )

    @cached_property
    def manifest_bytes(self) -> bytes:
        self._check_manifest_current()
        return self.manifest_path.read_bytes()

    @cached_property
    def manifest(self) -> dict:
        manifest = json.loads(self.manifest_bytes)
        require_package(manifest)
        return manifest

    @cached_property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    @cached_property
    def macros(self) -> MacroRenderer:
        adapter_type = self.manifest.get("metadata", {}).get("adapter_type", "duckdb")
        # dbt's target directory is the project's own, writable build output.
        return MacroRenderer(self.manifest, adapter_type, cache_dir=self.target_dir / "featurekit_macro_cache")

    def connect_warehouse(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB with the warehouse attached read-only under the catalog name dbt
        used, so the manifest's relation names resolve; never blocks a concurrent reader."""
        if not self.warehouse.is_file():
            raise FeaturekitError(
                f"warehouse {self._rel(self.warehouse)} not found: run `featurekit refresh` (or `dbt build`) first"
            )
        # No progress bar: DuckDB prints it to stdout on long queries, even when stdout is a pipe.
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        try:
            con.execute(f"ATTACH {_sql_string(self.warehouse)} AS {_ident(self.database_name)} (READ_ONLY)")
        except duckdb.IOException as e:
            con.close()
            if "lock" in str(e).lower():
                raise FeaturekitError(
                    f"warehouse {self._rel(self.warehouse)} is locked by another process (a running dbt build?): "
                    "wait for it to finish and retry"
                ) from None
            raise FeaturekitError(f"cannot open warehouse {self._rel(self.warehouse)}: {e}") from None
        return con

    @property
    def database_name(self) -> str:
        for node in self.manifest.get("nodes", {}).values():
            if node.get("resource_type") == "model" and node.get("database"):
                return node["database"]
        return self.warehouse.stem

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)


def _sql_string(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _ident(value) -> str:
    return '"' + str(value).replace('"', '""') + '"'
