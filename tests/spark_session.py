"""One local Apache Spark for the whole test run: dbt-spark's `method: session` and featurekit
run their SQL on the SparkSession active in this process.

local[2] on this 2-core machine with 3 GB for the driver (its 1 GB default runs out in
the training models' sorts), 4 shuffle partitions (Spark's default of 200 costs seconds
per tiny query), the Hive metastore in an embedded Derby database and the warehouse in a
temporary directory, no web UI, and UTC as the session time zone: feature timestamps are
plain UTC instants, and Spark's TIMESTAMP is read and written in the session's zone.
Plain Parquet tables only: no Delta or Iceberg jars are fetched.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


def missing() -> str | None:
    """Why a local Spark cannot start here, or None when it can."""
    try:
        import pyspark  # noqa: F401
        import dbt.adapters.spark  # noqa: F401
    except ImportError as e:
        return f"pyspark or dbt-spark is not installed ({e}): pip install -e '.[spark]'"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime for Spark: apt-get install openjdk-17-jre-headless"
    return None


def start(directory: Path):
    """Starts the local Spark whose metastore and warehouse live in `directory`."""
    from pyspark.sql import SparkSession

    # PySpark turns TIMESTAMP values into naive datetimes in this process's zone
    os.environ["TZ"] = "UTC"
    time.tzset()
    directory.mkdir(parents=True, exist_ok=True)
    java_options = f"-Dderby.system.home={directory} -Dderby.stream.error.file={directory / 'derby.log'}"
    session = (
        SparkSession.builder.master("local[2]")
        .appName("featurekit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "3g")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.sql.warehouse.dir", str(directory / "warehouse"))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={directory / 'metastore_db'};create=true",
        )
        .enableHiveSupport()
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("OFF")
    return session
