"""Versioned model artefacts (joblib under var/models/) and the intelligence_model_runs table.

A version is a hash of the model's parameters, its data cutoff and the code of this package, so the
same inputs give the same version and any change to one of them gives a new one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import joblib

PACKAGE_DIR = Path(__file__).resolve().parent

MODEL_RUNS_DDL = """
create table if not exists intelligence_model_runs (
    model_name varchar not null,      -- churn | clustering | recommendations
    model_version varchar not null,
    as_of timestamptz not null,
    data_cutoff timestamptz,          -- the newest data the fitted model saw
    decision varchar not null,        -- e.g. model | baseline | insufficient_data
    params json,
    metrics json,
    artifact_path varchar,
    primary key (model_name, as_of)
)
"""


def model_dir(warehouse: Path | str, env: dict[str, str] | None = None) -> Path:
    """var/models next to the warehouse file, unless CRMFLOW_MODEL_DIR says otherwise."""
    env = dict(os.environ) if env is None else env
    override = env.get("CRMFLOW_MODEL_DIR")
    return Path(override).resolve() if override else Path(warehouse).resolve().parent / "models"


def code_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def model_version(name: str, params: dict[str, Any], data_cutoff: datetime | None) -> str:
    payload = json.dumps(
        {"name": name, "params": params, "cutoff": data_cutoff.isoformat() if data_cutoff else None,
         "code": code_version()},
        sort_keys=True, default=str,
    )
    return f"{name}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def save_artifact(directory: Path, version: str, payload: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{version}.joblib"
    tmp = path.with_suffix(".joblib.tmp")
    joblib.dump(payload, tmp, compress=3)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def load_artifact(path: Path | str) -> dict[str, Any]:
    return joblib.load(path)


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def record_run(
    con: duckdb.DuckDBPyConnection,
    *,
    model_name: str,
    model_version: str,
    as_of: datetime,
    data_cutoff: datetime | None,
    decision: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    artifact_path: Path | None,
) -> None:
    """One row per model and as-of; re-running the same as-of replaces it."""
    con.execute(MODEL_RUNS_DDL)
    con.execute("delete from intelligence_model_runs where model_name = ? and as_of = ?", [model_name, as_of])
    con.execute(
        "insert into intelligence_model_runs values (?, ?, ?, ?, ?, ?::json, ?::json, ?)",
        [
            model_name, model_version, as_of, data_cutoff, decision,
            json.dumps(json_safe(params), sort_keys=True, default=str),
            json.dumps(json_safe(metrics), sort_keys=True, default=str),
            str(artifact_path) if artifact_path else None,
        ],
    )
