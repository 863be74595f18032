"""The online snapshot directory: immutable snapshots and the pointer that names the current one.

    online/
      CURRENT                    the current snapshot id (replaced atomically)
      <id>.duckdb, <id>.json     one snapshot: its tables and its manifest
      .<id>.<pid>.*.tmp          a publish in progress (removed when its process is gone)

Ids are UTC times (20240501T090000123456Z), so sorting them sorts snapshots by age.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import FeaturekitError
from ..tempfiles import process_alive

POINTER = "CURRENT"
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

    def ids(self) -> list[str]:
        """Complete snapshots (database and manifest both present), oldest first."""
        return sorted(p.stem for p in self.path.glob("*.json") if self.database(p.stem).is_file())

    def switch(self, snapshot_id: str) -> None:
        """Makes snapshot_id current with one atomic rename of the pointer file."""
        tmp = self.path / f".{POINTER}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(snapshot_id + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / POINTER)

    def prune(self, keep: int) -> list[str]:
        """Deletes all but the newest `keep` snapshots (never the current one) and the leftovers
        of publishes whose process is gone. Readers that already loaded a snapshot keep it."""
        current = self.current_id()
        ids = self.ids()
        doomed = [i for i in ids[: max(len(ids) - keep, 0)] if i != current]
        for snapshot_id in doomed:
            self.database(snapshot_id).unlink(missing_ok=True)
            self.manifest_path(snapshot_id).unlink(missing_ok=True)
        for leftover in self.path.glob(".*.tmp*"):
            if not process_alive(leftover.name.split(".")[2]):
                leftover.unlink(missing_ok=True)
        return doomed

