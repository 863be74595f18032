"""Entity keys as the online path takes them: the one parser for HTTP bodies, `featurekit
get` arguments and OnlineStore calls, and the one list of key types stored as integers.

A key is a tuple of values in the feature set's key column order. Python callers may pass
a dict of the key columns, or a bare value when there is one; values are matched as Python
compares them (5.0 and True find the integer keys 5 and 1). HTTP and the command line are
stricter: a value must have its column's type.
"""

from __future__ import annotations

import hashlib
import json

from ..errors import FeaturekitError

# DuckDB's integer types that fit int64; keys of these types are looked up by number
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
# and those an HTTP or command-line key must give as an integer
WHOLE_NUMBER_TYPES = INTEGER_TYPES + ("UBIGINT", "HUGEINT", "UHUGEINT")
TEXT_TYPES = ("VARCHAR",)
_ARTICLE = {int: "an integer", str: "a string", None: "a string or a number"}
_ABSENT = object()


class KeyParser:
    """The keys of one feature set: `names` in order, `types` their SQL types by name."""

    def __init__(self, names: list[str], types: dict[str, str], feature_set: str):
        self.names, self.types, self.feature_set = names, types, feature_set
        # the Python type a JSON value of each key column must have (None: a string or a number)
        self._wanted = {n: int if t in WHOLE_NUMBER_TYPES else str if t in TEXT_TYPES else None for n, t in types.items()}

    def from_python(self, key) -> tuple:
        """A dict of the key columns, or a bare value when there is one key column."""
        if type(key) is dict:
            if len(key) == len(self.names):
                try:
                    return tuple([key[k] for k in self.names])
                except KeyError:
                    pass
            raise FeaturekitError(f"key {key!r} must have exactly the key columns {', '.join(self.names)}")
        if len(self.names) != 1:
            raise FeaturekitError(f"a key of this feature set is a dict with {', '.join(self.names)}, not {key!r}")
        return (key,)

    def many_from_python(self, keys: list) -> list[tuple]:
        """[self.from_python(key) for key in keys], faster for the usual one key column."""
        if len(self.names) != 1:
            return [self.from_python(key) for key in keys]
        name, rows = self.names[0], []
        for key in keys:
            if type(key) is not dict:
                rows.append((key,))
            elif len(key) == 1 and name in key:
                rows.append((key[name],))
            else:
                rows.append(self.from_python(key))  # raises the error
        return rows

    def from_json(self, key, where: str) -> tuple:
        """An object of a JSON body, e.g. {"customer_id": 42}; `where` names it in errors."""
        if type(key) is not dict or len(key) != len(self.names):
            raise FeaturekitError(f"{where} must be an object with exactly {', '.join(self.names)}")
        try:
            values = tuple([key[name] for name in self.names])
        except KeyError:
            raise FeaturekitError(f"{where} must be an object with exactly {', '.join(self.names)}") from None
        for value, name in zip(values, self.names):
            wanted = self._wanted[name]
            if type(value) is not wanted and wanted is not None or type(value) in (list, dict):
                raise FeaturekitError(f"{where}.{name} must be {_ARTICLE[wanted]}, not {json.dumps(value)[:40]}")
        return values

    def many_from_json(self, keys: list) -> list[tuple]:
        """[self.from_json(key, f"keys[{i}]") ...], faster for the usual one key column."""
        if len(self.names) != 1:
            return [self.from_json(key, f"keys[{i}]") for i, key in enumerate(keys)]
        name, wanted, rows = self.names[0], self._wanted[self.names[0]], []
        for i, key in enumerate(keys):
            value = key.get(name, _ABSENT) if type(key) is dict and len(key) == 1 else _ABSENT
            if type(value) is wanted or wanted is None and value is not _ABSENT and type(value) not in (list, dict):
                rows.append((value,))
            else:
                rows.append(self.from_json(key, f"keys[{i}]"))  # raises the error
        return rows

    def from_text(self, text: str) -> tuple:
        """A command-line key: name=value[,name=value], or a bare value for one key column."""
        if "=" not in text:
            if len(self.names) != 1:
                raise FeaturekitError(f"key '{text}': write {' '.join(n + '=VALUE' for n in self.names)}")
            text = f"{self.names[0]}={text}"
        key = {}
        for part in text.split(","):
            name, _, value = part.partition("=")
            if name not in self.names:
                raise FeaturekitError(f"key '{text}': '{name}' is not a key column of {self.feature_set} ({', '.join(self.names)})")
            if self.types[name] in WHOLE_NUMBER_TYPES:
                try:
                    value = int(value)
                except ValueError:
                    raise FeaturekitError(f"key '{text}': {name} must be an integer") from None
            key[name] = value
        missing = [n for n in self.names if n not in key]
        if missing:
            raise FeaturekitError(f"key '{text}' lacks {', '.join(missing)}")
        return tuple([key[name] for name in self.names])

def as_int64(value) -> int | None:
    """A key value as the int64 it equals for Python (5.0 -> 5, True -> 1), else None."""
    if type(value) is int:
        return value if -(1 << 63) <= value < (1 << 63) else None
    if isinstance(value, (bool, int)) or (isinstance(value, float) and value.is_integer()):
        return as_int64(int(value))
    return None


def fingerprint(key: tuple) -> int:
    """A 64-bit hash of a key (not an integer one), equal for keys Python finds equal in the
    types a key column holds: what the serving layout's index of such keys is sorted by."""
    canonical = tuple(as_int64(v) if as_int64(v) is not None else v for v in key)
    return int.from_bytes(hashlib.blake2b(repr(canonical).encode(), digest_size=8).digest(), "little") >> 1
