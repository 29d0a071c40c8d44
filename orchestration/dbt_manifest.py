"""Which dbt target the prepared manifest was parsed for (issue 14).

dbt writes the target's relation names into target/manifest.json (`"warehouse"."main"."x"` on the
DuckDB file warehouse.duckdb, `"crmflow"."crm_analytics"."x"` on the PostgreSQL database crmflow,
`crmflow.x` on Spark). A manifest parsed for one target and loaded for another gives the Dagster
definitions the other warehouse's relation names (row-count and column metadata then fail), so
`prepare_manifest` parses again when the target differs.

The target is stamped beside the manifest (manifest.target.json): the profile output (engine), its
database (the schema on Spark), and the manifest's size and modification time when it was stamped.
A manifest rewritten since by any other dbt command in the project folder (a test's `dbt build` or
`dbt parse`) no longer matches its stamp and is parsed again. Checking reads the small stamp and one
stat, never the manifest.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

STAMP_NAME = "manifest.target.json"


def manifest_target(env: Mapping[str, str]) -> dict[str, str]:
    """The engine (profiles.yml output) and database the relation names of a parse under `env` carry."""
    engine = env.get("CRMFLOW_DBT_TARGET") or "dev"  # profiles.yml: unset is the dev output
    if engine == "postgres":
        database = env.get("CRMFLOW_PG_DBNAME") or "crmflow"
    elif engine.startswith("spark"):
        database = env.get("CRMFLOW_SPARK_SCHEMA") or "crmflow"
    elif engine == "duckdb":  # dbt-duckdb names the database after the file
        database = Path(env.get("CRMFLOW_WAREHOUSE") or "var/warehouse.duckdb").stem
    else:
        database = Path(env.get("CRMFLOW_DBT_DEV_WAREHOUSE") or "var/dev.duckdb").stem
    return {"engine": engine, "database": database}


def stamp_path(manifest: Path) -> Path:
    return manifest.with_name(STAMP_NAME)


def _file_state(manifest: Path) -> dict[str, int]:
    stat = manifest.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def parsed_for(manifest: Path, env: Mapping[str, str]) -> bool:
    """The manifest exists, is the one its stamp describes, and was parsed for `env`'s target."""
    try:
        stamp = json.loads(stamp_path(manifest).read_text(encoding="utf-8"))
        state = _file_state(manifest)
    except (OSError, ValueError):
        return False
    return stamp == {**manifest_target(env), **state}


def write_stamp(manifest: Path, env: Mapping[str, str]) -> None:
    """Record that `manifest`, as it is now, was parsed for `env`'s target (atomically)."""
    staging = manifest.with_name(f".{STAMP_NAME}.{uuid.uuid4().hex}.tmp")
    staging.write_text(json.dumps({**manifest_target(env), **_file_state(manifest)}), encoding="utf-8")
    os.replace(staging, stamp_path(manifest))


def prepare_manifest(manifest: Path, env: Mapping[str, str], parse: Callable[[Mapping[str, str]], None],
                     force: bool = False) -> bool:
    """Parse (`parse(env)` writes `manifest`) unless the manifest was parsed for this target; True if it parsed."""
    if not force and parsed_for(manifest, env):
        return False
    parse(env)
    write_stamp(manifest, env)
    return True
