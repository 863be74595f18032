"""The online snapshot directory: immutable snapshots and the pointer that names the current one.

    online/
      CURRENT                    the current snapshot id (replaced atomically)
      HISTORY                    the ids made current, one a line, oldest first: what
                                 `rollback` steps back through
      <id>.duckdb, <id>.json     one snapshot: its tables and its manifest
      <id>.serving/              and its serving layout, what lookups map (layout.py)
      .<id>.<pid>.*.tmp          a publish in progress (removed when its process is gone:
                                 featurekit.tempfiles)

Ids are UTC times (20240501T090000123456Z), so sorting them sorts snapshots by age.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..errors import FeaturekitError
from ..tempfiles import remove_stale_in

POINTER = "CURRENT"
SNAPSHOT_ID = re.compile(r"\d{8}T\d{12}Z")
HISTORY = "HISTORY"
HISTORY_LENGTH = 100  # entries kept; rollback only ever needs the last few
DEFAULT_DIR = "online"


def default_online_dir(project_dir=None) -> Path:
    """$FEATUREKIT_ONLINE_DIR, else online/ in the project (project_dir, $FEATUREKIT_PROJECT_DIR or .)."""
    if os.environ.get("FEATUREKIT_ONLINE_DIR"):
        return Path(os.environ["FEATUREKIT_ONLINE_DIR"]).resolve()
    return (Path(project_dir or os.environ.get("FEATUREKIT_PROJECT_DIR") or ".") / DEFAULT_DIR).resolve()


class SnapshotDir:
    def __init__(self, path):
        self.path = Path(path)

    def database(self, snapshot_id: str) -> Path:
        return self.path / f"{snapshot_id}.duckdb"

    def serving(self, snapshot_id: str) -> Path:
        return self.path / f"{snapshot_id}.serving"

    def manifest_path(self, snapshot_id: str) -> Path:
        return self.path / f"{snapshot_id}.json"

    def current_id(self) -> str | None:
        try:
            return (self.path / POINTER).read_text().strip() or None
        except FileNotFoundError:
            return None

    def require_current(self) -> str:
        current = self.current_id()
        if current is None:
            raise FeaturekitError(f"no published snapshot in {self.path}: run `featurekit publish` (or `featurekit refresh`) first")
        return current

    def manifest(self, snapshot_id: str) -> dict:
        try:
            return json.loads(self.manifest_path(snapshot_id).read_text())
        except FileNotFoundError:
            raise FeaturekitError(f"snapshot {snapshot_id} is not in {self.path} (it may have been pruned)") from None
        except ValueError as e:
            raise FeaturekitError(f"snapshot {snapshot_id} in {self.path} is damaged: its manifest is not JSON ({e})") from None

    def ids(self) -> list[str]:
        """Complete snapshots (database and manifest both present), oldest first."""
        return sorted(p.stem for p in self.path.glob("*.json") if self.database(p.stem).is_file())

    def history(self) -> list[str]:
        """The ids that were made current, oldest first, ending with the current one. A
        directory from before HISTORY existed has as history its snapshots up to the current."""
        current = self.current_id()
        try:
            history = (self.path / HISTORY).read_text().split()
        except FileNotFoundError:
            history = [i for i in self.ids() if current is None or i <= current]
        if current is not None and history[-1:] != [current]:  # a switch stopped between the two files
            history.append(current)
        return history

    def switch(self, snapshot_id: str, history: list[str] | None = None) -> None:
        """Makes snapshot_id current with one atomic rename of the pointer file; `history`
        (default: the history so far, then snapshot_id) is written first."""
        history = (history if history is not None else self.history() + [snapshot_id])[-HISTORY_LENGTH:]
        self._write(HISTORY, "".join(i + "\n" for i in history))
        self._write(POINTER, snapshot_id + "\n")

    def _write(self, name: str, text: str) -> None:
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / name)

    def prune(self, keep: int) -> list[str]:
        """Deletes all but the newest `keep` snapshots (never the current one, nor the one
        rollback would return to), the halves of snapshots whose other file is gone, and the
        temporary files of writers whose process is gone. Readers that already loaded a
        snapshot keep it. Call it holding the publish lock: a publish in progress has
        renamed its database into place a moment before its manifest."""
        history = self.history()
        ids = self.ids()
        doomed = [i for i in ids[: max(len(ids) - keep, 0)] if i not in history[-2:]]
        for snapshot_id in doomed:  # the manifest first: without it, the rest is a leftover
            self.manifest_path(snapshot_id).unlink(missing_ok=True)
            self.database(snapshot_id).unlink(missing_ok=True)
            shutil.rmtree(self.serving(snapshot_id), ignore_errors=True)
        complete = set(ids)
        for part in [*self.path.glob("*.duckdb"), *self.path.glob("*.json"), *self.path.glob("*.serving")]:
            if SNAPSHOT_ID.fullmatch(part.stem) and part.stem not in complete:
                shutil.rmtree(part, ignore_errors=True) if part.is_dir() else part.unlink(missing_ok=True)
        remove_stale_in(self.path)
        return doomed
