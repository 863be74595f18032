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

The manifest's "serving" record lists the files with their sizes: a truncated or foreign
file fails the snapshot's opening with one error naming it, and the previous snapshot
keeps serving. Files are only ever replaced by a new snapshot, never changed, so a file
unlinked by pruning stays valid for a process that has it mapped.
"""

from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import FeaturekitError
from ..project import _ident
from .keys import INTEGER_TYPES, as_int64, fingerprint

DICTIONARY = 1 << 16  # string columns with at most this many distinct values are stored as codes
DENSE = 2  # integer keys spread over at most this many times their number are laid out densely


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
    return f"{form}__{source}"


def ttls(manifest: dict) -> dict[str, int | None]:
    """Each view's ttl in seconds (None: none), from the feature sets that serve it."""
    return {view["ref"]: view["ttl_seconds"] for spec in manifest["feature_sets"].values() for view in spec["views"]}


# ---------------------------------------------------------------------------- writing


def write(con, schema: str, directory: Path, manifest: dict, macros) -> dict:
    """Writes the layout of the snapshot tables in `schema` (a DuckDB connection's attached
    snapshot) into `directory`; returns the manifest's "serving" record."""
    directory.mkdir()
    wanted, ttl = wanted_columns(manifest), ttls(manifest)
    entities: dict[tuple, list[str]] = {}
    for ref, record in manifest["views"].items():
        entities.setdefault(tuple(record["keys"]), []).append(ref)
    record = {"entities": [], "views": {}, "files": {}}
    with ThreadPoolExecutor(2) as pool:  # DuckDB, numpy and Arrow let go of the GIL: views in parallel
        for number, (keys, refs) in enumerate(entities.items()):
            views = {ref: manifest["views"][ref] for ref in refs}
            types = {view["key_types"][k] for view in views.values() for k in keys}
            integer = len(keys) == 1 and types <= set(INTEGER_TYPES)
            queries = {ref: _rows_query(schema, view, wanted[ref], ttl.get(ref), macros) for ref, view in views.items()}
            read = pool.map(lambda ref: _rows(con, queries[ref], list(keys), wanted[ref], ttl.get(ref)), refs)
            tables = dict(zip(refs, read))
            name = f"entity{number}"
            entity = {"keys": list(keys), "name": name, "kind": "sorted" if integer else "hashed", "views": refs}
            if integer:
                distinct, positions, dense = _numbered({ref: _int64(t.column(keys[0])) for ref, t in tables.items()})
                _save(directory / f"{name}.keys.arrow", pa.table({"key": distinct}))
                if dense is not None:
                    _save(directory / f"{name}.dense.arrow", pa.table({"number": dense}))
                    entity.update(kind="dense", low=int(distinct[0]))
            else:
                distinct, positions = _hashed(directory / f"{name}.keys.arrow", keys, tables)
            entity["size"] = len(distinct)
            lay_out = partial(_view_rows, directory, keys, len(distinct))
            starts = dict(zip(refs, pool.map(lay_out, refs, [tables[r] for r in refs], [positions[r] for r in refs])))
            for ref, start in starts.items():
                record["views"][ref] = {"entity": number, "rows": int(start[-1]), "max_rows": int(np.diff(start).max(initial=0))}
            _save(directory / f"{name}.start.arrow", pa.table(starts))
            record["entities"].append(entity)
    record["files"] = {p.name: p.stat().st_size for p in sorted(directory.iterdir())}
    return record


def _view_rows(directory: Path, keys: tuple, size: int, ref: str, table: pa.Table, numbers: np.ndarray) -> np.ndarray:
    """Writes <ref>.rows.arrow, the view's rows by key number then __fk_at; returns where
    each number's rows start (size + 1 values)."""
    counts = np.bincount(numbers, minlength=size)
    ends = np.cumsum(counts)
    order = _by_number_and_time(numbers, counts, ends, table.column("__fk_at"))
    table = table if order is None else table.take(order)
    _save(directory / f"{ref}.rows.arrow", table.drop_columns(list(keys)))
    return np.concatenate([[0], ends]).astype(np.int32 if table.num_rows < 2**31 else np.int64)


def _by_number_and_time(numbers: np.ndarray, counts: np.ndarray, ends: np.ndarray, at: pa.Array) -> np.ndarray | None:
    """The order that puts a view's rows by key number, then __fk_at (None: they are);
    `ends` is the cumulative sum of `counts`, the rows per number. Most views hold one row
    per key: placed by counting, linear (asking the warehouse for the rows sorted took 1.4
    of a 1M-key publish's 4.3 CPU s); the others are sorted."""
    if counts.max(initial=0) <= 1:
        if np.all(numbers[1:] > numbers[:-1]):
            return None
        order = np.empty(len(numbers), dtype=np.int64)
        order[ends[numbers] - 1] = np.arange(len(numbers))
        return order
    return np.lexsort((at.to_numpy(), numbers))


def _rows_query(schema: str, view: dict, wanted: dict, ttl: int | None, macros) -> str:
    """The query of the view's snapshot rows the layout reads, in any order; the ttl's expiry
    is computed here by the macro (featurekit.add_seconds)."""
    keys = ", ".join(_ident(k) for k in view["keys"])
    expires = macros.call("add_seconds", "__fk_feature_ts", ttl) if ttl else "NULL::TIMESTAMP"
    sources = sorted({source for _, source in wanted})
    select = ", ".join([keys, "__fk_at", f"{expires} AS __fk_expires_at", "__fk_feature_ts", *(_ident(s) for s in sources)])
    held = " AND ".join(f"{_ident(k)} IS NOT NULL" for k in view["keys"])  # a null key matches no request
    return f"SELECT {select} FROM {schema}.{_ident(view['table'])} WHERE {held}"


def _rows(con, query: str, keys: list[str], wanted: dict, ttl: int | None) -> pa.Table:
    """The rows of _rows_query as the layout stores them (before ordering)."""
    with con.cursor() as cursor:  # a connection of its own: views are read in parallel
        table = cursor.sql(query).to_arrow_table()
    columns = {k: table.column(k) for k in keys}
    columns["__fk_at"] = _micros(table.column("__fk_at"))
    if ttl:
        columns["__fk_expires_at"] = _micros(table.column("__fk_expires_at"))
    feature_ts = _micros(table.column("__fk_feature_ts"))
    if not pc.all(pc.equal(feature_ts, columns["__fk_at"])).as_py():
        columns["__fk_feature_ts"] = feature_ts
    for (form, source), out_type in sorted(wanted.items()):
        column = table.column(source)
        columns[column_name(form, source)] = _micros(column) if form == "us" else _compact(pc.cast(column, out_type))
    return pa.table(columns)  # chunks are joined once, by the take that orders the rows or by _save


def _array(column) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _compact(column):
    """A string column with few distinct values (a category such as a plan) as codes into
    them: a batch then maps codes instead of decoding strings."""
    if not pa.types.is_string(column.type) or not len(column):
        return column
    encoded = pc.dictionary_encode(_array(column))
    return encoded if len(encoded.dictionary) <= min(DICTIONARY, len(column) // 2) else column


def _numbered(values: dict[str, np.ndarray]) -> tuple[np.ndarray, dict, np.ndarray | None]:
    """Integer keys (each view's, in any order): the distinct keys in order, each row's
    number, and the dense map (per key - low, its number or -1) when they fill at least
    1/DENSE of their range. Keys within DENSE x the rows' count of each other are numbered
    by marking them in a table over their range (linear; sorting 9M keys took 0.8 s of a
    publish)."""
    held = [v for v in values.values() if len(v)]
    low, high = min((int(v.min()) for v in held), default=0), max((int(v.max()) for v in held), default=-1)
    if not held or high - low >= DENSE * sum(map(len, held)):  # sparse: merge the views' distinct keys
        distinct = _distinct(np.sort(np.concatenate(held or [np.zeros(0, np.int64)])))
        return distinct, {ref: np.searchsorted(distinct, v) for ref, v in values.items()}, None
    seen = np.zeros(high - low + 1, dtype=bool)
    for v in held:
        seen[v - low] = True
    number = np.cumsum(seen, dtype=np.int64) - 1
    distinct = np.flatnonzero(seen).astype(np.int64) + low
    dense = np.where(seen, number, -1) if high - low < DENSE * len(distinct) else None
    return distinct, {ref: number[v - low] for ref, v in values.items()}, dense


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array (np.unique hashes: 8 s for 7M keys)."""
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def _hashed(path: Path, keys: tuple, tables: dict) -> tuple[pa.Table, dict]:
    """Keys that are not integers, numbered in fingerprint order; each view row's number."""
    numbers: dict[tuple, int] = {}
    rows = {}
    for ref, table in tables.items():
        values = list(zip(*(table.column(k).to_pylist() for k in keys)))
        rows[ref] = values
        for key in values:
            numbers.setdefault(key, 0)
    distinct = sorted(numbers, key=fingerprint)
    for number, key in enumerate(distinct):
        numbers[key] = number
    first = next(iter(tables.values()))
    columns = {"fingerprint": pa.array([fingerprint(k) for k in distinct], pa.int64())}
    for i, k in enumerate(keys):
        columns[k] = pa.array([key[i] for key in distinct], first.schema.field(k).type)
    _save(path, pa.table(columns))
    positions = {ref: np.fromiter((numbers[key] for key in values), np.int64, len(values)) for ref, values in rows.items()}
    return distinct, positions


def _save(path: Path, table: pa.Table) -> None:
    """One record batch (a column is then one contiguous buffer), uncompressed: mappable.
    On disk when it returns (synced where it is written: the views' files in parallel)."""
    batch = pa.RecordBatch.from_arrays([_array(c) for c in table.columns], schema=table.schema)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    _fsync(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _micros(column) -> pa.Array:
    return pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())


def _int64(column) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


# ---------------------------------------------------------------------------- reading


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
                form, _, source = name.partition("__")
                self.columns[(form, source)] = Column(batch.column(name))
        self.max_rows = record["max_rows"]  # rows of the key with the most
