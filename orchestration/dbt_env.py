"""The environment that points dbt's profile at a warehouse target.

Its own module because `crmflow prepare` needs it to run `dbt parse` before any manifest exists, and
orchestration/dbt.py cannot be imported without the manifest (the dbt assets are built at import).
"""

from __future__ import annotations

from crmflow.warehouse import WarehouseTarget


def dbt_target_env(target: WarehouseTarget) -> dict[str, str]:
    """The environment that points profiles.yml at `target` (the dbt subprocess inherits it).

    DuckDB: the absolute file path. Spark: the spark (local session) or spark_thrift output. PostgreSQL: the `postgres` output's CRMFLOW_PG_* variables, PGTZ=UTC
    (sessions in UTC like DuckDB) and the password only as PGPASSWORD, never on a command line.
    """
    if target.kind == "duckdb":
        return {"CRMFLOW_DBT_TARGET": "duckdb", "CRMFLOW_WAREHOUSE": str(target.path)}
    if target.kind == "spark":
        # A local session: the `spark` output (master, folder; schema and tuning from CRMFLOW_SPARK_*).
        # A Thrift server: the `spark_thrift` output (docs/scaling.md; not tested here).
        if target.master:
            return {"CRMFLOW_DBT_TARGET": "spark", "CRMFLOW_SPARK_MASTER": target.master,
                    "CRMFLOW_SPARK_DIR": str(target.path)}
        return {"CRMFLOW_DBT_TARGET": "spark_thrift", "CRMFLOW_SPARK_THRIFT_HOST": str(target.host),
                "CRMFLOW_SPARK_THRIFT_PORT": str(target.port)}
    env = {"CRMFLOW_DBT_TARGET": "postgres", "CRMFLOW_WAREHOUSE": target.url_without_password(),
           "CRMFLOW_PG_HOST": str(target.host), "CRMFLOW_PG_PORT": str(target.port),
           "CRMFLOW_PG_USER": str(target.user), "CRMFLOW_PG_DBNAME": str(target.dbname), "PGTZ": "UTC"}
    if target.password:
        env["PGPASSWORD"] = target.password
    return env
