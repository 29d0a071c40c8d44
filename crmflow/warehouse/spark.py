"""Apache Spark as crmflow's analytics warehouse (CRMFLOW_WAREHOUSE=spark://local[N]; docs/scaling.md).

dbt builds the models on Spark; crmflow's Python stages keep reading and writing the operational store
(CRMFLOW_STATE: DuckDB or PostgreSQL). This module moves tables between the two:

- `publish(store, names, target)`: store tables -> Spark parquet tables in the profile's schema, each
  column cast to the Spark type of its store column (JSON -> string, timestamptz -> timestamp);
- `fetch(store, names, target)`: Spark relations -> Arrow -> `store.write_arrow(..., "replace")`.

Spark work runs in a child process (`python -m crmflow.warehouse.spark publish|fetch <folder>`) with
the settings of profiles.yml's `spark` output: the embedded Derby metastore admits one JVM at a time
and every dbt command starts its own, so no JVM may stay up in crmflow's process. All tables of one
call share one child (a JVM starts in ~10 s). Tables travel as parquet (store -> Spark) and Arrow IPC
files (Spark -> store) in a temporary folder. A failed Spark job raises `SparkJobError` carrying
the Spark error's first line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from crmflow.warehouse.base import Warehouse
from crmflow.warehouse.target import WarehouseConfigError, WarehouseTarget

INSTALL_HINT = "pip install crmflow[spark]"
DEFAULT_SCHEMA = "crmflow"
CHILD_TIMEOUT_S = 3600


class SparkJobError(RuntimeError):
    """A Spark child process failed; the message is the Spark error's first line."""


def check_spark_ready(target: WarehouseTarget, path: str | None = None) -> None:
    """Before any step: Java on PATH, pyspark and dbt-spark importable; else one line saying which
    and how to fix it (WarehouseConfigError). `path`: the PATH to search (default the process's)."""
    if target.kind != "spark":
        return
    if target.master is None:
        raise WarehouseConfigError(
            f"CRMFLOW_WAREHOUSE={target.redacted()}: crmflow cannot yet move tables to a Spark Thrift server "
            "(dbt's spark_thrift output can build on it: docs/scaling.md); use spark://local[2]")
    if shutil.which("java", path=path) is None:
        raise WarehouseConfigError(
            f"CRMFLOW_WAREHOUSE={target.redacted()}: no `java` on PATH; Spark needs Java 17 "
            "(e.g. apt-get install openjdk-17-jre-headless), then " + INSTALL_HINT)
    for module, package in (("pyspark", "pyspark"), ("dbt.adapters.spark", "dbt-spark[session]")):
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            raise WarehouseConfigError(
                f"CRMFLOW_WAREHOUSE={target.redacted()}: {package} is not installed: {INSTALL_HINT}")


def spark_schema(env: Mapping[str, str] | None = None) -> str:
    """The schema raw tables, Python outputs and models share on Spark (profiles.yml)."""
    return (os.environ if env is None else env).get("CRMFLOW_SPARK_SCHEMA") or DEFAULT_SCHEMA


def spark_type(arrow_type: pa.DataType, where: str) -> str:
    """The Spark SQL type of a store column (its Arrow type); `where` names table.column in errors."""
    if isinstance(arrow_type, pa.ExtensionType):
        arrow_type = arrow_type.storage_type
    if pa.types.is_timestamp(arrow_type):
        return "timestamp" if arrow_type.tz else "timestamp_ntz"  # an instant (UTC session) / a wall time
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    for check, name in _SPARK_TYPES:
        if check(arrow_type):
            return name
    raise SparkJobError(f"{where}: no Spark type for the store's column type {arrow_type}")


_SPARK_TYPES = (
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t), "string"),
    (pa.types.is_boolean, "boolean"), (pa.types.is_int8, "tinyint"), (pa.types.is_int16, "smallint"),
    (pa.types.is_int32, "int"), (pa.types.is_int64, "bigint"), (pa.types.is_uint8, "smallint"),
    (pa.types.is_uint16, "int"), (pa.types.is_uint32, "bigint"), (pa.types.is_uint64, "decimal(20,0)"),
    (pa.types.is_float32, "float"), (pa.types.is_float64, "double"), (pa.types.is_date32, "date"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "binary"),
)


def _storable(table: pa.Table) -> pa.Table:
    """Extension columns (DuckDB's JSON) as their storage type; unsigned integers widened, so pyarrow
    writes parquet Spark reads."""
    columns = []
    for column in table.columns:
        kind = column.type
        if isinstance(kind, pa.ExtensionType):
            column = column.cast(kind.storage_type)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def publish(store: Warehouse, names: Sequence[str], target: WarehouseTarget) -> list[str]:
    """Store tables `names` -> Spark parquet tables (replaced), typed as the store's columns; tables the
    store does not hold are left out. One child process for all. Returns the tables published."""
    with tempfile.TemporaryDirectory(prefix="crmflow-spark-") as folder:
        types: dict[str, list[tuple[str, str]]] = {}
        for name in dict.fromkeys(names):
            if not store.table_exists(name):
                continue
            table = store.fetch_arrow(name)
            types[name] = [(field.name, spark_type(field.type, f"{name}.{field.name}")) for field in table.schema]
            pq.write_table(_storable(table), Path(folder) / f"{name}.parquet")
        if types:
            (Path(folder) / "types.json").write_text(json.dumps(types))
            _run_child("publish", target, Path(folder))
        return sorted(types)


def fetch(store: Warehouse, names: Sequence[str], target: WarehouseTarget) -> list[str]:
    """Spark relations `names` -> the store (each replaced, all in one transaction). One child
    process for all. Returns the relations fetched."""
    names = list(dict.fromkeys(names))
    if not names:
        return []
    with tempfile.TemporaryDirectory(prefix="crmflow-spark-") as folder:
        (Path(folder) / "names.json").write_text(json.dumps(names))
        _run_child("fetch", target, Path(folder))
        tables = {}
        for name in names:
            with pa.OSFile(str(Path(folder) / f"{name}.arrow"), "rb") as source:
                tables[name] = pa.ipc.open_file(source).read_all()
    with store.transaction():
        for name, table in tables.items():
            store.write_arrow(table, name, mode="replace")
    return names


def child_env(target: WarehouseTarget, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: this process's, with the target's master and folder."""
    return {**(os.environ if env is None else env), "CRMFLOW_SPARK_MASTER": str(target.master),
            "CRMFLOW_SPARK_DIR": str(target.path)}


def _run_child(command: str, target: WarehouseTarget, folder: Path) -> None:
    check_spark_ready(target)
    assert target.path is not None
    target.path.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run([sys.executable, "-m", "crmflow.warehouse.spark", command, str(folder)],
                                capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, env=child_env(target),
                                cwd=target.path)  # derby.log lands in the Spark folder
    except subprocess.TimeoutExpired:
        raise SparkJobError(f"spark {command}: no answer after {CHILD_TIMEOUT_S} s") from None
    if result.returncode != 0:
        raise SparkJobError(f"spark {command} failed: {_first_error_line(result.stderr)}")


_ERROR_MARK = "crmflow-spark-error: "


def _first_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    marked = [line.removeprefix(_ERROR_MARK) for line in lines if line.startswith(_ERROR_MARK)]
    return (marked or lines[-1:] or ["no output"])[0]


# -- the child process ---------------------------------------------------------------------------


def session(env: Mapping[str, str] | None = None):  # -> pyspark.sql.SparkSession
    """A local Spark session with profiles.yml's `spark` output settings (same folder and metastore)."""
    from pyspark.sql import SparkSession

    env = os.environ if env is None else env
    folder = Path(env.get("CRMFLOW_SPARK_DIR") or "var/spark").resolve()
    return (SparkSession.builder.enableHiveSupport()
            .master(env.get("CRMFLOW_SPARK_MASTER") or "local[2]")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.warehouse.dir", f"{folder}/warehouse")
            .config("spark.hadoop.javax.jdo.option.ConnectionURL",
                    f"jdbc:derby:;databaseName={folder}/metastore_db;create=true")
            .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={folder}")
            .config("spark.driver.memory", env.get("CRMFLOW_SPARK_DRIVER_MEMORY") or "2g")
            .config("spark.sql.shuffle.partitions", env.get("CRMFLOW_SPARK_SHUFFLE_PARTITIONS") or "4")
            .config("spark.ui.enabled", "false")
            .getOrCreate())


def _publish_child(spark, folder: Path, schema: str) -> None:
    spark.sql(f"create database if not exists `{schema}`")
    for table, columns in json.loads((folder / "types.json").read_text()).items():
        frame = spark.read.parquet(str(folder / f"{table}.parquet"))
        frame = frame.selectExpr(*(f"cast(`{name}` as {kind}) as `{name}`" for name, kind in columns))
        frame.write.mode("overwrite").format("parquet").saveAsTable(f"`{schema}`.`{table}`")


def _fetch_child(spark, folder: Path, schema: str) -> None:
    for name in json.loads((folder / "names.json").read_text()):
        table = spark.table(f"`{schema}`.`{name}`").toArrow()
        with pa.OSFile(str(folder / f"{name}.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)


def main(argv: Sequence[str]) -> int:
    """`python -m crmflow.warehouse.spark publish|fetch <folder>`: exit 1 with the Spark error's first
    line (prefixed for the parent) on failure."""
    if len(argv) != 2 or argv[0] not in ("publish", "fetch"):
        print(f"{_ERROR_MARK}usage: python -m crmflow.warehouse.spark publish|fetch <folder>", file=sys.stderr)
        return 2
    command, folder = argv[0], Path(argv[1])
    try:
        spark = session()
        try:
            (_publish_child if command == "publish" else _fetch_child)(spark, folder, spark_schema())
        finally:
            spark.stop()
    except Exception as error:  # noqa: BLE001 - any Spark failure becomes the parent's one line
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        print(f"{_ERROR_MARK}{first}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
