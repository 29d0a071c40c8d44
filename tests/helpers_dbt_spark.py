"""The dbt project on local Apache Spark beside DuckDB (tests/test_dbt_spark.py, issue 18).

Spark runs in its own processes: dbt's `session` method starts a PySpark session (a JVM) per dbt
invocation, and the embedded Derby metastore admits one JVM at a time, so loading the input tables
and reading the built relations also happen in a child process (`python -m helpers_dbt_spark
load|dump ...`) that exits before the next dbt command. Its session has the profile's settings
(profiles.yml, output `spark`): the same warehouse folder and metastore, session time zone UTC.

Input tables travel as parquet written by DuckDB (timestamptz as UTC instants) and are cast to the
Spark types of their DuckDB columns (DuckDB JSON -> Spark string); relations come back as Arrow
files and are compared with helpers_dbt_postgres.differences (order-independent, floats to 1e-9,
timestamps as UTC instants, JSON by value).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.ipc

SCHEMA = "crmflow"
# DuckDB column type -> Spark SQL type (DECIMAL(p,s) keeps p and s).
SPARK_TYPES = {"VARCHAR": "string", "BIGINT": "bigint", "INTEGER": "int", "DOUBLE": "double",
               "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP WITH TIME ZONE": "timestamp",
               "TIMESTAMP": "timestamp_ntz", "JSON": "string", "FLOAT": "float", "SMALLINT": "smallint"}


def require_spark() -> None:
    """Fail (never skip) a Spark test on a machine without Java or pyspark."""
    import shutil

    import pytest

    if shutil.which("java") is None:
        pytest.fail("no java on PATH: the Spark test needs Java 17")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("pyspark is not installed: pip install crmflow[spark] (make test-spark does)")


def spark_type(duck_type: str) -> str:
    if duck_type.startswith("DECIMAL"):
        return duck_type.lower()
    if duck_type not in SPARK_TYPES:
        raise ValueError(f"no Spark type for DuckDB type {duck_type!r}")
    return SPARK_TYPES[duck_type]


def spark_env(spark_dir: Path) -> dict[str, str]:
    """The variables profiles.yml's spark output reads."""
    return {"CRMFLOW_DBT_TARGET": "spark", "CRMFLOW_SPARK_DIR": str(spark_dir), "CRMFLOW_SPARK_SCHEMA": SCHEMA,
            "CRMFLOW_SPARK_MASTER": "local[2]", "CRMFLOW_SPARK_SHUFFLE_PARTITIONS": "2"}


def export_tables(duck_path: Path, tables: list[str], out: Path) -> list[str]:
    """Each DuckDB table of `tables` as <out>/<table>.parquet plus <out>/types.json (table -> [(column,
    Spark type)]); tables the DuckDB warehouse does not hold are left out (so the Spark build lacks
    them too). Returns the tables exported."""
    out.mkdir(parents=True, exist_ok=True)
    types = {}
    with duckdb.connect(str(duck_path), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        for table in tables:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'main' and table_name = ? order by ordinal_position", [table]).fetchall()
            if not columns:
                continue
            types[table] = [(name, spark_type(kind)) for name, kind in columns]
            con.execute(f"copy {table} to '{out / (table + '.parquet')}' (format parquet)")
    (out / "types.json").write_text(json.dumps(types))
    return sorted(types)


def run_tool(command: str, spark_dir: Path, folder: Path, names: list[str] | None = None) -> None:
    """`load` the exported tables into Spark, or `dump` relations `names` into folder as Arrow files."""
    args = [sys.executable, str(Path(__file__)), command, str(spark_dir), str(folder), *(names or [])]
    result = subprocess.run(args, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})
    if result.returncode != 0:
        raise AssertionError(f"spark {command} failed:\n{(result.stdout + result.stderr)[-3000:]}")


def spark_rows(folder: Path, relation: str, json_columns: set[str]) -> tuple[list[str], list[tuple]]:
    with pa.OSFile(str(folder / f"{relation}.arrow"), "rb") as source:
        table = pa.ipc.open_file(source).read_all()
    names = table.column_names
    rows = []
    for record in table.to_pylist():
        rows.append(tuple(json.loads(record[n]) if n in json_columns and record[n] is not None else record[n]
                          for n in names))
    return names, rows


def json_columns(duck_path: Path, relation: str) -> set[str]:
    with duckdb.connect(str(duck_path), read_only=True) as con:
        return {name for name, kind in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'main' and table_name = ?", [relation]).fetchall() if kind == "JSON"}


def _session(spark_dir: str):
    from pyspark.sql import SparkSession

    return (SparkSession.builder.enableHiveSupport()
            .master("local[2]")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.warehouse.dir", f"{spark_dir}/warehouse")
            .config("spark.hadoop.javax.jdo.option.ConnectionURL",
                    f"jdbc:derby:;databaseName={spark_dir}/metastore_db;create=true")
            .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={spark_dir}")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.ui.enabled", "false")
            .getOrCreate())


def _load(spark_dir: str, folder: Path) -> None:
    spark = _session(spark_dir)
    spark.sql(f"create database if not exists {SCHEMA}")
    for table, columns in json.loads((folder / "types.json").read_text()).items():
        frame = spark.read.parquet(str(folder / f"{table}.parquet"))
        frame = frame.selectExpr(*(f"cast(`{name}` as {kind}) as `{name}`" for name, kind in columns))
        frame.write.mode("overwrite").format("parquet").saveAsTable(f"{SCHEMA}.{table}")


def _dump(spark_dir: str, folder: Path, names: list[str]) -> None:
    spark = _session(spark_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        table = spark.table(f"{SCHEMA}.{name}").toArrow()
        with pa.OSFile(str(folder / f"{name}.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)


if __name__ == "__main__":
    command, spark_dir, folder, *names = sys.argv[1:]
    if command == "load":
        _load(spark_dir, Path(folder))
    elif command == "dump":
        _dump(spark_dir, Path(folder), names)
    else:
        raise SystemExit(f"unknown command {command!r}: load or dump")
