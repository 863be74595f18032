"""Where `train-set` writes (OUT of `-o`): one Parquet or CSV file, or a directory of Parquet
part files (`-o DIR/`, or an existing directory). Either is written under a temporary name
beside it (tempfiles.py, so a killed run's leftovers go at the next run) and renamed into
place, its sidecar OUT.featureset.json after it: on any error neither is left, and a
previous output stays as it was.

A directory replaces only a previous train-set output (its sidecar is beside it) or an empty
directory: a user's own directory is never deleted. Its files are named part-00000...,
in row order: whoever reads them in name order reads the rows in label order.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .errors import FeaturekitError
from .project import _sql_string
from .tempfiles import remove, remove_stale, temp_path

FILE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
DIRECTORY = "parquet-directory"
# The one part file DuckDB writes: its rotating writer (FILE_SIZE_BYTES) numbers files
# without padding, which a reader listing them by name would put out of order past 10.
_DUCKDB_PART = "part-00000.parquet"


class Output:
    """The output path `-o` names, its temporaries and its sidecar."""

    def __init__(self, output):
        text = os.fspath(output)
        self.path = Path(text)
        self.is_directory = text.endswith(("/", os.sep)) or self.path.is_dir()
        self.flag = f"-o {self.path}{'/' if self.is_directory else ''}"  # the option, as messages name it
        if self.path.name in ("", ".", ".."):  # renamed into place, it needs a name of its own
            raise FeaturekitError(f"{self.flag}: name the output, e.g. train/ or train.parquet")
        if self.is_directory:
            self.format = DIRECTORY
        elif self.path.suffix.lower() in FILE_FORMATS:
            self.format = FILE_FORMATS[self.path.suffix.lower()]
        else:
            raise FeaturekitError(
                f"{self.flag}: unsupported output type '{self.path.suffix}'; use .parquet or .csv, or a directory (DIR/)"
            )
        self.sidecar = self.path.with_name(self.path.name + ".featureset.json")
        self.temp = temp_path(self.path)
        self._temp_sidecar = temp_path(self.sidecar)
        self._replaced = temp_path(self.path, "old")  # a previous output directory, moved aside

    def check(self, label_file: Path | None) -> None:
        """Refuses an output that cannot or must not be written, before any work."""
        if not self.path.parent.is_dir():
            raise FeaturekitError(f"{self.flag}: directory {self.path.parent} does not exist; create it first")
        if label_file is not None and self.path.exists() and label_file.exists():
            if os.path.samefile(self.path, label_file):
                raise FeaturekitError(f"{self.flag} is the label file {label_file}; write the training set to another file")
            if self.is_directory and label_file.resolve().is_relative_to(self.path.resolve()):
                raise FeaturekitError(f"{self.flag} holds the label file {label_file}; write the training set elsewhere")
        if not self.is_directory or not self.path.exists():
            return
        if not self.path.is_dir():
            raise FeaturekitError(f"{self.flag}: {self.path} is a file; remove it or name a directory")
        if not self.sidecar.is_file() and any(self.path.iterdir()):
            raise FeaturekitError(
                f"{self.flag}: {self.path} is a directory that is not a train-set output (no {self.sidecar.name} beside it); "
                "empty or remove it, or choose another directory"
            )

    @contextmanager
    def writing(self):
        """The temporaries made for the block (the data's made writable first: the directory
        may not take it) and removed after it, whatever happens."""
        for path in (self.path, self.sidecar):
            remove_stale(path)  # left by a train-set that was killed
        try:
            if self.is_directory:
                self.temp.mkdir()
            else:
                self.temp.touch()
        except OSError as e:
            raise FeaturekitError(f"{self.flag}: cannot write in {self.path.parent} ({e.strerror}); choose another directory") from None
        try:
            yield self
        finally:
            for leftover in (self.temp, self._temp_sidecar, self._replaced):
                remove(leftover)

    def write_local(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        """The rows of `sql` (a query of `con`) written to the temporary, by DuckDB."""
        target = self.temp / _DUCKDB_PART if self.is_directory else self.temp
        options = "FORMAT csv, HEADER true" if self.format == "csv" else "FORMAT parquet"
        try:
            con.execute(f"COPY ({sql}) TO {_sql_string(target)} ({options})")
        except duckdb.IOException as e:
            raise FeaturekitError(f"{self.flag}: cannot write it: {str(e).strip().splitlines()[0]}") from None

    def reader(self) -> str:
        """A DuckDB expression reading what was written (streamed, for counting)."""
        if self.format == "csv":
            return f"read_csv({_sql_string(self.temp)}, header = true)"
        return f"read_parquet({_sql_string(self.temp / '*.parquet' if self.is_directory else self.temp)})"

    def record(self, rows: int) -> dict:
        """The sidecar's "output"."""
        record = {"path": str(self.path), "rows": rows, "format": self.format}
        if self.is_directory:
            record["files"] = sorted(p.name for p in self.temp.iterdir())
        return record

    def commit(self, sidecar: dict) -> None:
        """Moves the output into place, a previous output directory aside (removed after),
        then writes the sidecar."""
        try:
            self._temp_sidecar.write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
            if self.is_directory and self.path.exists():
                os.rename(self.path, self._replaced)
                try:
                    os.rename(self.temp, self.path)
                except OSError:
                    os.rename(self._replaced, self.path)
                    raise
            else:
                os.replace(self.temp, self.path)
            os.replace(self._temp_sidecar, self.sidecar)
        except OSError as e:
            raise FeaturekitError(f"{self.flag}: cannot write it: {e.strerror} ({e.filename})") from None
