"""The served-feature log: every vector the online store served, appended to Parquet files.

    <log_dir>/<feature_set>/served-<UTC start yyyymmddTHHMMSS>-<pid>-<seq>.parquet

Columns: feature_set, request_ts and served_at (naive UTC timestamps), snapshot_id, the key
columns, then the feature columns exactly as train-set names them (<view>__feature_ts
included). A file becomes visible only when complete (written under a temporary name, then
renamed), once it reaches `max_bytes` or `max_seconds`, or when the log is closed.

Writing happens on a background thread: the request path only appends the vectors to a
bounded deque (one atomic append, no lock: a lock the writer holds while draining made the
logged requests wait for the GIL), and when it is full it drops them and counts the drop
instead of waiting.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..tempfiles import remove_stale_in, temp_path
from ..timestamps import from_micros

META = [
    pa.field("feature_set", pa.string()),
    pa.field("request_ts", pa.timestamp("us")),
    pa.field("served_at", pa.timestamp("us")),
    pa.field("snapshot_id", pa.string()),
]
LOG_COLUMNS = tuple(field.name for field in META)  # what a reader needs besides the vectors


BATCH_SECONDS = 0.2


class ServedLog:
    def __init__(self, log_dir, max_bytes: int = 64 << 20, max_seconds: float = 300.0, queue_size: int = 10_000):
        self.dir = Path(log_dir)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.dropped = 0
        self.written_rows = 0
        self._max_pending = queue_size
        self._pending: deque = deque()
        self._wake = threading.Event()
        self._files: dict[str, _File] = {}
        self._seq = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="featurekit-served-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def submit(self, served, schema: pa.Schema, served_at_us: int) -> None:
        """Queues one lookup's vectors (request path: never blocks)."""
        if len(self._pending) >= self._max_pending:
            self.dropped += len(served.rows)
            return
        self._pending.append((served, schema, served_at_us))

    def flush(self) -> None:
        """Waits until everything queued so far is written and every open file is published."""
        done = threading.Event()
        self._pending.append(("flush", done))
        self._wake.set()
        done.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.append(None)
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            # Let a batch gather before writing: one wake-up and one row group per batch keeps
            # this thread off the GIL that the request threads need. flush and close wake it.
            self._wake.wait(BATCH_SECONDS)
            self._wake.clear()
            batch = []
            while self._pending:
                item = self._pending.popleft()
                if item is not None and item[0] != "flush":
                    batch.append(item)
                    continue
                self._write(batch)
                batch = []
                self._finish_all()
                if item is None:
                    return
                item[1].set()
            self._write(batch)
            self._rotate_old()

    def _write(self, batch) -> None:
        groups: dict = {}
        for served, schema, served_at in batch:  # one schema object per loaded snapshot
            groups.setdefault((served.feature_set, id(schema)), (schema, []))[1].append((served, served_at))
        for (feature_set, _), (schema, items) in groups.items():
            self._append(feature_set, schema, items)

    def _append(self, feature_set: str, schema: pa.Schema, items) -> None:
        width = len(schema)
        columns: list[list] = [[] for _ in range(len(META) + width)]
        for served, served_at in items:
            request_ts, served_ts = served.request_ts, from_micros(served_at)
            for row in served.rows:
                columns[0].append(feature_set)
                columns[1].append(request_ts)
                columns[2].append(served_ts)
                columns[3].append(served.snapshot_id)
                for i in range(width):
                    columns[4 + i].append(row[i])
        full = pa.schema(META + list(schema))
        table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, full)], schema=full)
        current = self._files.get(feature_set)
        if current is not None and current.schema != full:
            self._finish(feature_set)
            current = None
        if current is None:
            current = self._files[feature_set] = self._open(feature_set, full)
        current.writer.write_table(table)
        self.written_rows += table.num_rows
        if current.tmp.stat().st_size >= self.max_bytes:
            self._finish(feature_set)

    def _open(self, feature_set: str, schema: pa.Schema) -> "_File":
        folder = self.dir / feature_set
        folder.mkdir(parents=True, exist_ok=True)
        start = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        self._seq += 1
        name = f"served-{start}-{os.getpid()}-{self._seq}.parquet"  # server processes share log_dir
        remove_stale_in(folder, "served-*")  # what a killed server left
        tmp = temp_path(folder / name)
        return _File(folder / name, tmp, schema, pq.ParquetWriter(tmp, schema), time.monotonic())

    def _rotate_old(self) -> None:
        for feature_set, file in list(self._files.items()):
            if time.monotonic() - file.opened >= self.max_seconds:
                self._finish(feature_set)

    def _finish_all(self) -> None:
        for feature_set in list(self._files):
            self._finish(feature_set)

    def _finish(self, feature_set: str) -> None:
        file = self._files.pop(feature_set)
        file.writer.close()
        target = file.path
        while target.exists():  # another process started a file in the same second
            self._seq += 1
            target = target.with_name(f"{target.name.rsplit('-', 1)[0]}-{self._seq}.parquet")
        os.replace(file.tmp, target)


class _File:
    def __init__(self, path: Path, tmp: Path, schema: pa.Schema, writer, opened: float):
        self.path, self.tmp, self.schema, self.writer, self.opened = path, tmp, schema, writer, opened
