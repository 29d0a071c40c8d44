"""Versioned model artefacts (joblib under var/models/) and the intelligence_model_runs table.

A version is a hash of the model's parameters, its data cutoff and the code of this package, so the
same inputs give the same version and any change to one of them gives a new one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib

from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse

PACKAGE_DIR = Path(__file__).resolve().parent

def model_dir(warehouse: Path | str, env: dict[str, str] | None = None) -> Path:
    """var/models next to the warehouse file (./var/models for a server warehouse such as a
    postgresql:// URL), unless CRMFLOW_MODEL_DIR says otherwise."""
    env = dict(os.environ) if env is None else env
    override = env.get("CRMFLOW_MODEL_DIR")
    if override:
        return Path(override).resolve()
    if "://" in str(warehouse):
        return Path("var/models").resolve()
    return Path(warehouse).resolve().parent / "models"


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


def signature(name: str, params: dict[str, Any]) -> str:
    """What must not change for a stored model to be reused: parameters, feature schema and code."""
    return model_version(name, params, None)


@dataclass(frozen=True)
class TrainedRun:
    model_version: str
    trained_as_of: datetime
    decision: str
    metrics: dict[str, Any]
    artifact_path: str | None


def runs_relation(wh: Warehouse) -> str:
    return wh.relation("ops", "intelligence_model_runs")


def reusable_run(
    con: Warehouse | object, model_name: str, as_of: datetime, sig: str, retrain_every_days: int,
    needs_artifact: bool = True,
) -> TrainedRun | None:
    """The latest model trained before `as_of`, less than `retrain_every_days` older than it, with the
    same signature (and its artefact on disk); None means train now. 0 days = always train.

    Only an earlier as-of counts: re-running the same as-of trains again (and replaces its row).
    """
    if retrain_every_days <= 0:
        return None
    wh = as_warehouse(con)
    apply_migrations(wh)
    rows = wh.fetch_rows(
        f"""
        select model_version, trained_as_of, decision, metrics, artifact_path from {runs_relation(wh)}
        where model_name = $name and fit = 'trained' and signature = $sig and decision <> 'insufficient_data'
          and as_of < $as_of and as_of > $as_of - interval '1 day' * $days
        order by as_of desc limit 1
        """,
        {"name": model_name, "sig": sig, "as_of": as_of, "days": int(retrain_every_days)},
    )
    if not rows:
        return None
    version, trained, decision, metrics, path = rows[0]
    if needs_artifact and (not path or not Path(path).exists()):
        return None
    return TrainedRun(version, trained, decision, json.loads(metrics) if metrics else {}, path)


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
    con: Warehouse | object,
    *,
    model_name: str,
    model_version: str,
    as_of: datetime,
    data_cutoff: datetime | None,
    decision: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    artifact_path: Path | str | None,
    fit: str = "trained",
    trained_as_of: datetime | None = None,
    sig: str | None = None,
) -> None:
    """One row per model and as-of; re-running the same as-of replaces it.

    Runs inside the step's transaction: the migrations (apply_migrations) must have run before it.
    """
    wh = as_warehouse(con)
    runs = runs_relation(wh)
    wh.execute(f"delete from {runs} where model_name = $name and as_of = $as_of", {"name": model_name, "as_of": as_of})
    wh.execute(
        f"insert into {runs} (model_name, model_version, as_of, data_cutoff, decision, params, "
        "metrics, artifact_path, fit, trained_as_of, signature) "
        "values ($name, $version, $as_of, $cutoff, $decision, cast($params as json), cast($metrics as json), "
        "$path, $fit, $trained, $sig)",
        {
            "name": model_name, "version": model_version, "as_of": as_of, "cutoff": data_cutoff,
            "decision": decision,
            "params": json.dumps(json_safe(params), sort_keys=True, default=str),
            "metrics": json.dumps(json_safe(metrics), sort_keys=True, default=str),
            "path": str(artifact_path) if artifact_path else None,
            "fit": fit, "trained": trained_as_of or as_of, "sig": sig,
        },
    )
