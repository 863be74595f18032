"""Writes a snapshot's serving layout (its format: layout.py) from the snapshot's tables,
for publish: each view's rows numbered by key, put in (number, __fk_at) order and saved as
one mappable Arrow IPC batch; the views of an entity on two threads (DuckDB, numpy and
Arrow let go of the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..project import _ident
from ..tempfiles import fsync
from .keys import INTEGER_TYPES, fingerprint
from .layout import column_name, ttls, wanted_columns

DICTIONARY = 1 << 16  # string columns with at most this many distinct values are stored as codes
DENSE = 2  # integer keys spread over at most this many times their number are laid out densely


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
    fsync(path)


def _micros(column) -> pa.Array:
    return pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())


def _int64(column) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
