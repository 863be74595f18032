"""A snapshot's serving layout: what lookups read, written by publish and memory-mapped
read-only by every serving process (Arrow IPC files, no copy: N servers share one page
cache, and opening a snapshot of millions of keys takes milliseconds).

    <id>.serving/
      entity<i>.keys.arrow   the distinct keys of the views sharing key columns; a key's
                             number is its position. Integer keys: sorted int64. Others:
                             sorted by a 64-bit fingerprint (keys.fingerprint), with the
                             key columns to confirm a match.
      entity<i>.dense.arrow  integer keys filling at least half their range: per key - low,
                             its number or -1 (a lookup without a search)
      entity<i>.start.arrow  per view of the entity (column <ref>): where each number's rows
                             begin in the view's rows; n + 1 values, so a key's rows are
                             start[n] to start[n + 1]
      <ref>.rows.arrow       the view's rows by (number, __fk_at): __fk_at, __fk_expires_at (with a
                             ttl) and __fk_feature_ts (unless it equals __fk_at, as it does
                             without an availability column) in int64 microseconds, then each
                             source column a
                             feature reads: in the feature's served type, or for a request-time
                             feature's start, int64 microseconds

Written by layout_writer.py. The manifest's "serving" record lists the files with their
sizes: a truncated or foreign file fails the snapshot's opening with one error naming it,
and the previous snapshot keeps serving. Files are only ever replaced by a new snapshot, never changed, so a file
unlinked by pruning stays valid for a process that has it mapped.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FeaturekitError
from .keys import as_int64, fingerprint


def wanted_columns(manifest: dict) -> dict[str, dict[tuple, pa.DataType]]:
    """Per view, each source column served, with its form: ("value", column) in the output
    type of the feature it feeds, ("us", column) as int64 microseconds for the start of a
    request-time feature."""
    wanted: dict[str, dict] = {ref: {} for ref in manifest["views"]}
    for spec in manifest["feature_sets"].values():
        schema = arrow_schema(spec)
        for view in spec["views"]:
            for feature in view["features"]:
                if feature["kind"] == "request_time":
                    wanted[view["ref"]][("us", feature["source"])] = pa.int64()
                else:
                    wanted[view["ref"]][("value", feature["source"])] = schema.field(feature["name"]).type
    return wanted


def arrow_schema(spec: dict) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(spec["arrow_schema"])))


def column_name(form: str, source: str) -> str:
    """A served source column's name in <ref>.rows.arrow (column_form reads it back)."""
    return f"{form}__{source}"


def column_form(name: str) -> tuple[str, str]:
    """(form, source) of a column column_name named."""
    form, _, source = name.partition("__")
    return form, source


def ttls(manifest: dict) -> dict[str, int | None]:
    """Each view's ttl in seconds (None: none), from the feature sets that serve it."""
    return {view["ref"]: view["ttl_seconds"] for spec in manifest["feature_sets"].values() for view in spec["views"]}


class Layout:
    """A snapshot's layout, mapped: its entities (key -> number) and views (rows)."""

    def __init__(self, directory: Path, record: dict, snapshot_id: str):
        self.snapshot_id = snapshot_id
        for name, size in record["files"].items():
            actual = (directory / name).stat().st_size if (directory / name).is_file() else None
            if actual != size:
                state = "missing" if actual is None else f"{actual:,} bytes, not {size:,}"
                raise FeaturekitError(f"serving file {name} is {state}")
        self.entities = [Entity(directory, entity) for entity in record["entities"]]
        self.views = {ref: ViewRows(directory, ref, view, self.entities[view["entity"]]) for ref, view in record["views"].items()}


def _map(path: Path) -> pa.RecordBatch:
    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
        if reader.num_record_batches != 1:
            raise FeaturekitError(f"serving file {path.name} holds {reader.num_record_batches} batches, not 1")
        return reader.get_batch(0)
    except (pa.ArrowException, OSError) as e:
        raise FeaturekitError(f"serving file {path.name} cannot be read: {str(e).splitlines()[0]}") from None


NUMPY = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64, pa.uint8(): np.uint8,
         pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64, pa.float16(): np.float16,
         pa.float32(): np.float32, pa.float64(): np.float64}


def _numpy(array: pa.Array, dtype=None) -> np.ndarray:
    """The values of a fixed-width column, in place (nulls hold whatever their slot holds)."""
    kind = np.dtype(dtype or NUMPY[array.type])
    return np.frombuffer(array.buffers()[1], dtype=kind, count=len(array), offset=array.offset * kind.itemsize)


class Entity:
    """Numbers of keys: one(key) for a key tuple, many(keys) for a batch; -1 for unknown."""

    def __init__(self, directory: Path, record: dict):
        self.keys, self.kind, self.size, self.views = record["keys"], record["kind"], record["size"], record["views"]
        batch = _map(directory / f"{record['name']}.keys.arrow")
        if len(batch) != self.size:
            raise FeaturekitError(f"serving file {record['name']}.keys.arrow holds {len(batch):,} keys, not {self.size:,}")
        self.starts = _map(directory / f"{record['name']}.start.arrow")
        if self.kind == "hashed":
            self.fingerprints = _numpy(batch.column("fingerprint"), np.int64)
            self.stored = [batch.column(k) for k in self.keys]
            return
        self.sorted = _numpy(batch.column("key"), np.int64)
        if self.kind == "dense":
            self.low = record["low"]
            self.dense = _numpy(_map(directory / f"{record['name']}.dense.arrow").column("number"), np.int64)

    def start(self, ref: str) -> np.ndarray:
        return _numpy(self.starts.column(ref))

    def one(self, key: tuple) -> int:
        if self.kind == "hashed":
            return self._hashed(key)
        value = as_int64(key[0])
        if value is None:
            return -1
        if self.kind == "dense":
            at = value - self.low
            return self.dense.item(at) if 0 <= at < len(self.dense) else -1
        at = int(np.searchsorted(self.sorted, value))
        return at if at < self.size and self.sorted.item(at) == value else -1

    def many(self, columns: list[list]) -> np.ndarray:
        """The numbers of a batch of keys given as columns (one list per key column)."""
        if self.kind == "hashed":
            return np.fromiter((self._hashed(key) for key in zip(*columns)), np.int64, len(columns[0]))
        values = columns[0]
        if set(map(type, values)) == {int}:  # the usual batch (np.array would infer the type: 3x slower)
            try:
                return self._integers(np.fromiter(values, np.int64, len(values)))
            except OverflowError:
                pass
        exact = [as_int64(v) for v in values]  # floats, bools, big or absent integers, text: as Python compares them
        found = self._integers(np.array([0 if v is None else v for v in exact], dtype=np.int64))
        return np.where(np.array([v is not None for v in exact], dtype=bool), found, -1)

    def _integers(self, wanted: np.ndarray) -> np.ndarray:
        if self.kind == "dense":
            at = wanted - self.low  # compared before subtracting, which could overflow
            inside = (wanted >= self.low) & (wanted < self.low + len(self.dense))
            return np.where(inside, self.dense[np.where(inside, at, 0)], -1)
        if not self.size:
            return np.full(len(wanted), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.sorted, wanted), self.size - 1)
        return np.where(self.sorted[at] == wanted, at, -1)

    def _hashed(self, key: tuple) -> int:
        wanted = fingerprint(key)
        at = int(np.searchsorted(self.fingerprints, wanted))
        while at < self.size and self.fingerprints.item(at) == wanted:  # a collision: compare the keys
            if fingerprint(tuple(column[at].as_py() for column in self.stored)) == wanted and \
                    tuple(column[at].as_py() for column in self.stored) == tuple(key):
                return at
            at += 1
        return -1


class Column:
    """One stored column: one(position) -> a Python value (None for null), many(positions)
    -> a list of them. Positions are valid rows."""

    def __init__(self, array: pa.Array):
        self.array = array
        kind = array.type
        self.valid = None  # the validity bitmap, for a column with nulls
        if array.null_count:
            self.valid = np.frombuffer(array.buffers()[0], dtype=np.uint8)
        self.dictionary = None
        if pa.types.is_dictionary(kind):  # few distinct strings: codes into a small list
            self.dictionary = np.array(array.dictionary.to_pylist() + [None], dtype=object)
            self.values = _numpy(array.indices)
        elif pa.types.is_timestamp(kind):
            self.values = _numpy(array, np.int64).view(f"datetime64[{kind.unit}]")
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
            self.values = _numpy(array)
        else:  # strings, booleans (bits), dates, decimals, ...: through Arrow
            self.values = None

    def one(self, position: int):
        if self.valid is not None:
            at = position + self.array.offset
            if not (self.valid.item(at >> 3) >> (at & 7)) & 1:
                return None
        if self.dictionary is not None:
            return self.dictionary.item(self.values.item(position))
        if self.values is not None:
            return self.values.item(position)
        return self.array[position].as_py()

    def many(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The values at `positions` (a numpy array: typed, or of Python objects) and where
        they are null (None when the column holds no null)."""
        if self.dictionary is not None:
            values = self.dictionary.take(self.values.take(positions))
        elif self.values is not None:
            values = self.values.take(positions)
        else:
            values = np.empty(len(positions), dtype=object)
            values[:] = self.array.take(pa.array(positions)).to_pylist()
        if self.valid is None:
            return values, None
        at = positions + self.array.offset
        return values, ((self.valid[at >> 3] >> (at & 7)) & 1) == 0


class ViewRows:
    """One view's rows: `at`, `expires` (None without a ttl), `feature_us` (int64 arrays), `feature_ts` (the same
    as datetimes), `start` (per key number), and the source columns by (form, source)."""

    def __init__(self, directory: Path, ref: str, record: dict, entity: Entity):
        batch = _map(directory / f"{ref}.rows.arrow")
        if len(batch) != record["rows"]:
            raise FeaturekitError(f"serving file {ref}.rows.arrow holds {len(batch):,} rows, not {record['rows']:,}")
        self.entity = entity
        self.start = entity.start(ref)
        names = batch.schema.names
        self.at = _numpy(batch.column("__fk_at"), np.int64)
        self.expires = _numpy(batch.column("__fk_expires_at"), np.int64) if "__fk_expires_at" in names else None
        self.feature_us = _numpy(batch.column("__fk_feature_ts"), np.int64) if "__fk_feature_ts" in names else self.at
        self.feature_ts = self.feature_us.view("datetime64[us]")
        self.columns = {}
        for name in batch.schema.names:
            if not name.startswith("__fk_"):
                self.columns[column_form(name)] = Column(batch.column(name))
        self.max_rows = record["max_rows"]  # rows of the key with the most
