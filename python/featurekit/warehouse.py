"""The one seam to the warehouse, the engine the project's dbt target builds: run SQL there,
upload label rows, bring result rows out.

Two engines, two small classes. DuckDB: the warehouse file attached read-only to an
in-memory DuckDB (Project.connect_warehouse, which holds the warehouse's readers' lock), so
the SQL runs where the data is and `local` is that same connection. PostgreSQL: a psycopg2 connection made from the dbt target's
settings, beside an in-memory DuckDB (`local`) where featurekit does its own part: checking
labels (labels.py) and writing Parquet, CSV or the online snapshot.

Why the engine's own client and not dbt's adapter connection: importing dbt's adapter costs
about 1.5 s per command, and it offers no COPY, the fast way in and out of PostgreSQL. The
price is reading the target's connection settings ourselves (host, port, user, password,
dbname, sslmode, ...), which profiles.py renders as dbt does.

Rows move in and out as CSV through COPY ... FROM STDIN / TO STDOUT, streamed through a
temporary file beside the process: featurekit holds one 1 MiB buffer of them in Python,
whatever their number; DuckDB reads the file with the column types the result declares and
spills beyond its memory limit. So memory on featurekit's side is bounded by DuckDB's
--memory-limit plus a few MiB, and disk by one CSV copy of the result.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from .errors import FeaturekitError
from .project import _ident

if TYPE_CHECKING:
    from .spark_warehouse import SparkWarehouse

# PostgreSQL type OIDs -> the DuckDB type a result column is read as.
_DUCKDB_TYPES = {
    16: "BOOLEAN", 20: "BIGINT", 21: "SMALLINT", 23: "INTEGER", 700: "FLOAT", 701: "DOUBLE",
    25: "VARCHAR", 1042: "VARCHAR", 1043: "VARCHAR", 1082: "DATE", 1114: "TIMESTAMP", 1184: "TIMESTAMPTZ",
}
_NUMERIC = 1700
# psycopg2 connection settings a dbt postgres target may carry, by their dbt names.
_CONNECTION_SETTINGS = {"host": "host", "port": "port", "user": "user", "password": "password", "dbname": "dbname",
                        "database": "dbname", "sslmode": "sslmode", "sslcert": "sslcert", "sslkey": "sslkey",
                        "sslrootcert": "sslrootcert", "connect_timeout": "connect_timeout"}
_SESSION = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET jit = off; SET work_mem = '256MB'"


@contextmanager
def open_warehouse(project) -> Iterator[DuckDBWarehouse | PostgresWarehouse | SparkWarehouse]:
    """The warehouse of the project's dbt target (or of --warehouse, a DuckDB file), open for
    the block."""
    if project.warehouse_override or project.target.type == "duckdb":
        with project.connect_warehouse() as con:  # attached read-only, under the readers' lock
            yield DuckDBWarehouse(con, str(project.warehouse))
        return
    if project.target.type == "postgres":
        warehouse = PostgresWarehouse(project.target)
    elif project.target.type == "spark":
        from .spark_warehouse import SparkWarehouse

        warehouse = SparkWarehouse(project.target)
    else:
        raise FeaturekitError(
            f"{project.target.describe()} is of type {project.target.type}; featurekit reads DuckDB, PostgreSQL and Spark warehouses"
        )
    try:
        yield warehouse
    finally:
        warehouse.close()


class DuckDBWarehouse:
    """The DuckDB file, attached read-only: `local` runs the warehouse's SQL itself.

    Both classes offer: `local` (a DuckDB connection), execute, create_temp_table and
    fetchall (SQL run in the warehouse), column_types (a relation's, as DuckDB names them),
    sql_type (the warehouse's name of a DuckDB type), quote (a name in the warehouse's SQL),
    upload (a query of `local` into a temp table of the warehouse), rows (a query of `local`
    giving the rows of a query run in the warehouse) and copy_to_local. A warehouse with
    `writes_parquet_directories` (Spark) writes a directory output itself
    (write_parquet_directory); the others' is written by `local`."""

    local_is_warehouse = True
    writes_parquet_directories = False

    def __init__(self, local: duckdb.DuckDBPyConnection, name: str):
        self.local = local
        self.name = name

    def sql_type(self, duckdb_type: str) -> str:
        return duckdb_type

    quote = staticmethod(_ident)

    def execute(self, sql: str) -> None:
        self.local.execute(sql)

    def create_temp_table(self, name: str, sql: str) -> None:
        self.local.execute(f"CREATE TEMP TABLE {name} AS {sql}")

    def fetchall(self, sql: str) -> list[tuple]:
        return self.local.execute(sql).fetchall()

    def column_types(self, relation: str) -> dict[str, str]:
        return dict(self.local.execute(f"SELECT column_name, column_type FROM (DESCRIBE {relation})").fetchall())

    def copy_to_local(self, sql: str, table: str) -> None:
        self.local.execute(f"CREATE TABLE {table} AS {sql}")

    def rows(self, sql: str) -> str:
        return sql

    def upload(self, local_sql: str, table: str, types: dict[str, str]) -> None:
        self.local.execute(f"CREATE TEMP TABLE {table} AS {local_sql}")


class PostgresWarehouse:
    """A PostgreSQL database reached with psycopg2, and an in-memory DuckDB as `local`."""

    local_is_warehouse = False
    writes_parquet_directories = False

    def __init__(self, target):
        self.target = target
        try:
            import psycopg2
        except ImportError:
            raise FeaturekitError(
                f"{self.target.describe()} is a PostgreSQL warehouse: install featurekit's PostgreSQL support "
                "with pip install 'featurekit[postgres]'"
            ) from None
        self.name = f"postgres {self.target.config.get('host')}:{self.target.config.get('port', 5432)}/{self._dbname()}"
        settings = {ours: self.target.config[theirs] for theirs, ours in _CONNECTION_SETTINGS.items() if theirs in self.target.config}
        try:
            self.connection = psycopg2.connect(**settings, application_name="featurekit")
        except psycopg2.OperationalError as e:
            raise FeaturekitError(
                f"cannot connect to the PostgreSQL warehouse of {self.target.describe()}: {_first_line(e)}; "
                "check that the server runs and the target's host, port, user, password and dbname"
            ) from None
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(_SESSION)
        self.local = duckdb.connect()
        self.local.execute("SET TimeZone = 'UTC'")
        self.local.execute("SET enable_progress_bar = false")
        self._files: list[Path] = []

    def _dbname(self) -> str:
        return str(self.target.config.get("dbname") or self.target.config.get("database"))

    def sql_type(self, duckdb_type: str) -> str:
        return postgres_type(duckdb_type)

    quote = staticmethod(_ident)

    def execute(self, sql: str) -> None:
        with self._cursor() as cursor:
            cursor.execute(sql)

    def create_temp_table(self, name: str, sql: str) -> None:
        self.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        self.execute(f"ANALYZE {name}")

    def fetchall(self, sql: str) -> list[tuple]:
        with self._cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    def column_types(self, relation: str) -> dict[str, str]:
        """Column -> the DuckDB type featurekit reads it as (raises when it is not built)."""
        return dict(self._result_types(f"SELECT * FROM {relation}"))

    def upload(self, local_sql: str, table: str, types: dict[str, str]) -> None:
        """The rows of `local_sql` (a DuckDB query) into a new temp table `table` of the
        warehouse, with columns of PostgreSQL `types` in order, by COPY; then analyzed, so
        the planner knows their number."""
        path = self._temp_file()
        self.local.execute(f"COPY ({local_sql}) TO '{path}' (FORMAT csv, HEADER false)")
        columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in types.items())
        self.execute(f"CREATE TEMP TABLE {table} ({columns})")
        with self._cursor() as cursor, open(path) as f:
            cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)", f, size=1 << 20)
        self.execute(f"ANALYZE {table}")
        path.unlink()

    def copy_to_local(self, sql: str, table: str) -> None:
        """The rows of `sql` (run in the warehouse) into a new DuckDB table `table` of
        `local`, streamed by COPY through a temp file."""
        self.local.execute(f"CREATE TABLE {table} AS {self.rows(sql)}")

    def rows(self, sql: str) -> str:
        """A DuckDB query over the rows of `sql` (run in the warehouse now), with the types the
        warehouse gives its columns."""
        types = self._result_types(sql)
        path = self._temp_file()
        with self._cursor() as cursor, open(path, "w") as f:
            cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", f, size=1 << 20)
        columns = ", ".join(f"'{name}': '{sql_type}'" for name, sql_type in types)
        # quoted empty is the empty string, unquoted empty is null: as PostgreSQL writes them
        return (f"SELECT * FROM read_csv('{path}', columns = {{{columns}}}, header = false, auto_detect = false, "
                "allow_quoted_nulls = false, quote = '\"', escape = '\"', delim = ',')")

    def _result_types(self, sql: str) -> list[tuple[str, str]]:
        with self._cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({sql}) AS __fk_result LIMIT 0")
            return [(column.name, _duckdb_type(column)) for column in cursor.description]

    @contextmanager
    def _cursor(self):
        import psycopg2

        cursor = self.connection.cursor()
        try:
            yield cursor
        except psycopg2.Error as e:
            raise self._error(e) from None
        finally:
            cursor.close()

    def _error(self, error) -> FeaturekitError:
        """A warehouse error as one line naming the target and what to do."""
        first = _first_line(error)
        if getattr(error, "pgcode", None) in ("42P01", "3F000"):  # undefined table, undefined schema
            return FeaturekitError(
                f"{first} in the PostgreSQL warehouse of {self.target.describe()}: run `featurekit refresh` (or `dbt build`)"
            )
        return FeaturekitError(f"the PostgreSQL warehouse of {self.target.describe()} failed: {first}")

    def _temp_file(self) -> Path:
        handle, name = tempfile.mkstemp(prefix="featurekit-", suffix=".csv")
        os.close(handle)
        self._files.append(Path(name))
        return Path(name)

    def close(self) -> None:
        self.local.close()
        self.connection.close()
        for path in self._files:
            path.unlink(missing_ok=True)


def _duckdb_type(column) -> str:
    if column.type_code == _NUMERIC:
        # numeric(p, s) keeps its precision; unconstrained numeric (e.g. avg of integers) is
        # read as a double, the type DuckDB gives the same expression
        if column.precision and 0 < column.precision <= 38:
            return f"DECIMAL({column.precision}, {column.scale or 0})"
        return "DOUBLE"
    return _DUCKDB_TYPES.get(column.type_code, "VARCHAR")


def postgres_type(duckdb_type: str) -> str:
    """The PostgreSQL type a local (DuckDB) column is uploaded as."""
    upper = duckdb_type.upper()
    mapping = {"DOUBLE": "double precision", "FLOAT": "real", "VARCHAR": "text", "TIMESTAMP WITH TIME ZONE": "timestamptz",
               "TINYINT": "smallint", "UTINYINT": "smallint", "USMALLINT": "integer", "UINTEGER": "bigint",
               "HUGEINT": "numeric", "UBIGINT": "numeric"}
    return mapping.get(upper, upper.lower())


def _first_line(error) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
