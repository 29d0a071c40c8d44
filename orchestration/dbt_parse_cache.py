"""One dbt parse per run instead of one per dbt step.

Python assets sit between dbt models, so Dagster runs the dbt graph in six steps, each a `dbt build`
subprocess. dbt's partial parsing (target/partial_parse.msgpack, which dagster-dbt copies into each
step's own target folder) starts over whenever the vars change, and the as-of is a var: without this
module every step re-parsed the whole project (~4 s on the demo, ~12 s at 100k users under load).

The first step of a run parses and leaves its partial_parse.msgpack in a folder named by the hash of
the vars and the dbt target; the run's later steps (and any other run with the same as-of and
target) start from it and skip the parse. dbt still checks the file against the project's files,
vars, profile and target, so a stale one costs a parse, never a wrong manifest. The newest few
folders are kept; a backfill over many days does not fill the disk.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

PARTIAL_PARSE = "partial_parse.msgpack"
KEEP = 8  # parse folders kept (about 3 MB each)
# The variables that choose dbt's profile output and its connection (orchestration/dbt_env.py).
_TARGET_VARIABLES = ("CRMFLOW_DBT_TARGET", "CRMFLOW_WAREHOUSE", "CRMFLOW_PG_HOST", "CRMFLOW_PG_PORT",
                     "CRMFLOW_PG_USER", "CRMFLOW_PG_DBNAME", "CRMFLOW_SPARK_DIR", "CRMFLOW_SPARK_SCHEMA")


def target_root(project_dir: Path) -> Path:
    """dbt's target folder, as dagster-dbt resolves it (DBT_TARGET_PATH, else <project>/target)."""
    configured = Path(os.environ.get("DBT_TARGET_PATH", "target"))
    return configured if configured.is_absolute() else project_dir / configured


def parse_key(vars_json: str, environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    text = "\n".join([vars_json, *(f"{name}={environ.get(name, '')}" for name in _TARGET_VARIABLES)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def step_target_path(project_dir: Path, step_name: str, key: str) -> Path:
    """A fresh target folder for one dbt step, seeded with the run's parse when there is one."""
    path = target_root(project_dir) / f"{step_name}-{key[:7]}-{uuid.uuid4().hex[:7]}"
    cached = target_root(project_dir) / "parse" / key / PARTIAL_PARSE
    if cached.exists():
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, path / PARTIAL_PARSE)
    return path


def keep_parse(project_dir: Path, step_target: Path, key: str) -> None:
    """Keep a step's parse for the steps after it (atomically: steps may finish at once)."""
    produced = step_target / PARTIAL_PARSE
    folder = target_root(project_dir) / "parse" / key
    if not produced.exists() or (folder / PARTIAL_PARSE).exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{uuid.uuid4().hex}.tmp"
    shutil.copyfile(produced, staging)
    os.replace(staging, folder / PARTIAL_PARSE)
    _prune(folder.parent)


def _prune(parse_root: Path) -> None:
    folders = sorted((p for p in parse_root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in folders[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
