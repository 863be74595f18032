"""The warehouse seam (warehouse.py) for Apache Spark: a dbt-spark target with `method: session`,
i.e. the SparkSession of this process, as dbt-spark itself opens it (the active one, else a
new one with the target's server_side_parameters). The SQL runs in Spark; `local` is an
in-memory DuckDB where featurekit checks labels and writes its files, as for PostgreSQL.

Rows move through Parquet files in a temporary directory, never through the driver's
memory: labels go in as a file Spark reads, results come out written by Spark's own
Parquet writer, one file per task, which DuckDB then reads in a stream; or, for a directory
output, written by Spark straight into it (write_parquet_directory), no row reaching this
process at all. Temp views name the steps of the join (Spark runs them as one query when
the result is read) and are dropped on close.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb

from .errors import FeaturekitError

# DuckDB type names -> Spark's, for uploads; and Spark's -> DuckDB's, for column_types.
_SPARK_TYPES = {"BIGINT": "bigint", "INTEGER": "int", "SMALLINT": "smallint", "TINYINT": "tinyint",
                "DOUBLE": "double", "FLOAT": "float", "VARCHAR": "string", "BOOLEAN": "boolean",
                "DATE": "date", "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamp"}
_DUCKDB_TYPES = {"bigint": "BIGINT", "int": "INTEGER", "smallint": "SMALLINT", "tinyint": "TINYINT",
                 "double": "DOUBLE", "float": "FLOAT", "string": "VARCHAR", "boolean": "BOOLEAN",
                 "date": "DATE", "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP"}


_ASOF = "spark.sql.join.asofJoin.enabled"
_TIMESTAMP_TYPE = "spark.sql.parquet.outputTimestampType"


class SparkWarehouse:
    """The SparkSession of this process, and an in-memory DuckDB as `local`."""

    local_is_warehouse = False
    writes_parquet_directories = True

    def __init__(self, target):
        self.target = target
        if self.target.config.get("method") != "session":
            raise FeaturekitError(
                f"{self.target.describe()} is a Spark target with method {self.target.config.get('method')}; "
                "featurekit reaches Spark through method: session (the SparkSession of its own process)"
            )
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise FeaturekitError(f"{self.target.describe()} is a Spark target: pip install 'featurekit[spark]'") from None
        builder = SparkSession.builder.enableHiveSupport()
        for name, value in (self.target.config.get("server_side_parameters") or {}).items():
            builder = builder.config(name, value)
        self.spark = builder.getOrCreate()
        # naive timestamps cross to and from Parquet unchanged only when the session is at UTC
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        # the join's faster plan (spark__view_join) where this Spark has ASOF (it knows the
        # setting) and the target does not choose itself
        if _ASOF not in (self.target.config.get("server_side_parameters") or {}) and self.spark.conf.isModifiable(_ASOF):
            self.spark.conf.set(_ASOF, "true")
        self.name = f"spark (schema {self.target.config.get('schema')})"
        self.local = duckdb.connect()
        self.local.execute("SET TimeZone = 'UTC'")
        self.local.execute("SET enable_progress_bar = false")
        self._directory = Path(tempfile.mkdtemp(prefix="featurekit-spark-"))
        self._views: list[str] = []

    def sql_type(self, duckdb_type: str) -> str:
        """The Spark type a local (DuckDB) column is uploaded as."""
        upper = duckdb_type.upper()
        return _SPARK_TYPES.get(upper, upper.lower() if upper.startswith("DECIMAL") else "string")

    @staticmethod
    def quote(name: str) -> str:
        return "`" + str(name).replace("`", "``") + "`"

    def execute(self, sql: str) -> None:
        self._sql(sql)

    def create_temp_table(self, name: str, sql: str) -> None:
        # not cached: each step reads the one before once, so the steps plan as one query
        # whose joins on the same keys share one shuffle of the labels (caching each step
        # wrote and read every label row once more per view)
        self._sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {sql}")
        self._views.append(name)

    def fetchall(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self._sql(sql).collect()]

    def column_types(self, relation: str) -> dict[str, str]:
        """Column -> the DuckDB type featurekit reads it as (raises when it is not built)."""
        return {name: _duckdb_type(spark_type) for name, spark_type in self._sql(f"SELECT * FROM {relation}").dtypes}

    def upload(self, local_sql: str, table: str, types: dict[str, str | None]) -> None:
        """The rows of `local_sql` (a DuckDB query) into a temp view `table` of Spark,
        with columns of Spark `types` in order, through a Parquet file. A column of type None
        keeps the type Spark reads from DuckDB's Parquet (a naive TIMESTAMP is timestamp_ntz,
        a TIMESTAMPTZ Spark's timestamp)."""
        path = self._directory / f"upload{table}.parquet"  # Spark skips files named _* or .*
        self.local.execute(f"COPY ({local_sql}) TO '{path}' (FORMAT parquet)")
        columns = ", ".join(self.quote(name) if spark_type is None
                            else f"cast({self.quote(name)} as {spark_type}) as {self.quote(name)}"
                            for name, spark_type in types.items())
        self.create_temp_table(table, f"SELECT {columns} FROM parquet.`{path}`")

    def copy_to_local(self, sql: str, table: str) -> None:
        self.local.execute(f"CREATE TABLE {table} AS {self.rows(sql)}")

    def rows(self, sql: str) -> str:
        """A DuckDB query over the rows of `sql`, run in Spark now and written by Spark's
        Parquet writer."""
        path = self._directory / f"result_{len(list(self._directory.iterdir()))}"
        frame = self._sql(sql)
        try:
            frame.write.parquet(str(path))
        except Exception as e:
            raise self._error(e) from None
        return f"SELECT * FROM read_parquet('{path}/*.parquet')"

    def write_parquet_directory(self, sql: str, path: Path, row_column: str, instants: list[str]) -> None:
        """The rows of `sql` written into the directory `path` by Spark's Parquet writer, in
        the order of `row_column` (not written): a sort range-partitions the rows, so
        part-00000, part-00001, ... hold them in order. Spark's timestamp columns come out
        naive, as DuckDB reads Spark's default Parquet (INT96) in the file output; those of
        `instants` stay UTC instants (TIMESTAMP micros adjusted to UTC), as DuckDB writes a
        TIMESTAMPTZ. Only the part files are left in `path`."""
        frame = self._sql(sql)
        columns = [f"cast({self.quote(c)} as timestamp_ntz) as {self.quote(c)}" if t == "timestamp" and c not in instants
                   else self.quote(c) for c, t in frame.dtypes if c != row_column]
        previous = self.spark.conf.get(_TIMESTAMP_TYPE)
        self.spark.conf.set(_TIMESTAMP_TYPE, "TIMESTAMP_MICROS")  # for this write only: Spark's default is INT96
        try:
            frame.orderBy(row_column).selectExpr(*columns).write.mode("overwrite").parquet(str(path))
        except Exception as e:
            raise self._error(e) from None
        finally:
            self.spark.conf.set(_TIMESTAMP_TYPE, previous)
        for written in path.iterdir():  # the writer's _SUCCESS marker and .crc checksums
            if written.name.startswith(("_", ".")):
                written.unlink()

    def _sql(self, sql: str):
        try:
            return self.spark.sql(sql)
        except Exception as e:
            raise self._error(e) from None

    def _error(self, error) -> FeaturekitError:
        """A warehouse error as one line naming the target and what to do."""
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if "TABLE_OR_VIEW_NOT_FOUND" in first or "SCHEMA_NOT_FOUND" in first:
            return FeaturekitError(f"{first} in the Spark warehouse of {self.target.describe()}: run `featurekit refresh` (or `dbt build`)")
        return FeaturekitError(f"the Spark warehouse of {self.target.describe()} failed: {first}")

    def close(self) -> None:
        self.local.close()
        for name in reversed(self._views):  # a view reads the ones made before it
            self.spark.catalog.dropTempView(name)
        shutil.rmtree(self._directory, ignore_errors=True)


def _duckdb_type(spark_type: str) -> str:
    if spark_type.startswith("decimal"):
        return spark_type.upper()
    return _DUCKDB_TYPES.get(spark_type, "VARCHAR")
