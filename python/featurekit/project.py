"""The dbt project featurekit works on: where its manifest and warehouse are, read safely."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import duckdb
import yaml

from . import warehouse_lock
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

    def source_paths(self) -> list[str]:
        """The files whose edits make the manifest stale (following links: `dbt deps` links a
        local package, featurekit's among them, into dbt_packages/)."""
        folders = [
            *self.config.get("model-paths", ["models"]),
            *self.config.get("macro-paths", ["macros"]),
            self.config.get("packages-install-path", "dbt_packages"),  # featurekit's package among them
        ]
        files = [os.path.join(self.root, "dbt_project.yml")]
        for folder in folders:
            for directory, _, names in os.walk(self.root / folder, followlinks=True):
                files.extend(os.path.join(directory, name) for name in names if name.endswith((".sql", ".yml", ".yaml")))
        return files

    def _check_manifest_current(self, manifest: dict) -> None:
        """Raises unless the manifest describes the project's files as they are. Content
        decides where the manifest records it: a model's SQL file must have the checksum dbt
        gave it (so an edit carrying an old modification time counts, and a file touched but
        unchanged does not), and each macro's text must still be in its file. The manifest
        records no content of the rest (YAML, dbt_project.yml, new files, what a macro file
        holds besides its macros): those count as changed when modified after it was written.
        Costs a few milliseconds: the files are small and read once."""
        models, macros = self._recorded_content(manifest)
        written = self.manifest_path.stat().st_mtime
        files = self.source_paths()
        changed = [p for p in files if p in models and _dbt_checksum(p) != models[p]]
        changed += [p for p in models if not os.path.isfile(p)]
        changed += [p for p, texts in macros.items() if not os.path.isfile(p) or not _holds_all(p, texts)]
        changed += [p for p in files if p not in models and os.stat(p).st_mtime > written]
        if changed:
            raise FeaturekitError(
                f"{self._rel(Path(changed[0]))} changed after dbt last ran, so {self._rel(self.manifest_path)} and the "
                "warehouse may not match it: run `featurekit refresh` (or `dbt build`)"
            )

    def _recorded_content(self, manifest: dict) -> tuple[dict[str, str], dict[str, list[str]]]:
        """What the manifest records of the project's files: {model file: dbt's checksum} and
        {macro file: the text of each of its macros}. dbt's own packages live with dbt, not here."""
        install_path = self.root / self.config.get("packages-install-path", "dbt_packages")
        roots = {p.name: str(p) for p in install_path.iterdir()} if install_path.is_dir() else {}
        roots[self.config.get("name")] = str(self.root)
        models = {}
        for node in manifest.get("nodes", {}).values():
            if node.get("resource_type") == "model" and node["package_name"] in roots and node["checksum"]["name"] == "sha256":
                models[os.path.join(roots[node["package_name"]], node["original_file_path"])] = node["checksum"]["checksum"]
        macros: dict[str, list[str]] = {}
        for macro in manifest.get("macros", {}).values():
            if macro["package_name"] in roots:
                path = os.path.join(roots[macro["package_name"]], macro["original_file_path"])
                macros.setdefault(path, []).append(macro["macro_sql"])
        return models, macros

    @cached_property
    def manifest_bytes(self) -> bytes:
        if not self.manifest_path.is_file():
            raise FeaturekitError(
                f"{self._rel(self.manifest_path)} not found: run `featurekit refresh` (or `dbt build`) in {self.root} first"
            )
        return self.manifest_path.read_bytes()

    @cached_property
    def manifest(self) -> dict:
        manifest = json.loads(self.manifest_bytes)
        self._check_manifest_current(manifest)
        require_package(manifest)
        return manifest

    @cached_property
    def manifest_sha256(self) -> str:
        """The hash of a manifest that passed `manifest`'s checks."""
        self.manifest
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    @cached_property
    def macros(self) -> MacroRenderer:
        adapter_type = self.manifest.get("metadata", {}).get("adapter_type", "duckdb")
        # dbt's target directory is the project's own, writable build output.
        return MacroRenderer(self.manifest, adapter_type, cache_dir=self.target_dir / "featurekit_macro_cache")

    @contextmanager
    def connect_warehouse(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB with the warehouse attached read-only under the catalog name dbt
        used, so the manifest's relation names resolve. Holds the warehouse's readers' lock
        (warehouse_lock.py) until the block ends; a file a process outside featurekit writes
        (a plain `dbt build`) is waited for within the same bound."""
        if not self.warehouse.is_file():
            raise FeaturekitError(
                f"warehouse {self._rel(self.warehouse)} not found: run `featurekit refresh` (or `dbt build`) first"
            )
        with warehouse_lock.reading(self.warehouse):
            con = self._attach_warehouse()
            try:
                yield con
            finally:
                con.close()

    def _attach_warehouse(self) -> duckdb.DuckDBPyConnection:
        # No progress bar: DuckDB prints it to stdout on long queries, even when stdout is a pipe.
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        deadline = warehouse_lock.Deadline(self.warehouse, "a process outside featurekit writes it (a plain dbt build?)")
        while True:
            try:
                con.execute(f"ATTACH {_sql_string(self.warehouse)} AS {_ident(self.database_name)} (READ_ONLY)")
                return con
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    con.close()
                    raise FeaturekitError(f"cannot open warehouse {self._rel(self.warehouse)}: {e}") from None
                try:
                    deadline.wait()
                except FeaturekitError:
                    con.close()
                    raise

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


def _dbt_checksum(path: str) -> str:
    """dbt's checksum of a file: the SHA-256 of its UTF-8 text without leading and trailing whitespace."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read().decode("utf-8").strip().encode("utf-8")).hexdigest()


def _holds_all(path: str, texts: list[str]) -> bool:
    content = Path(path).read_text()
    return all(text in content for text in texts)


def _sql_string(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _ident(value) -> str:
    return '"' + str(value).replace('"', '""') + '"'
