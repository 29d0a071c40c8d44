"""`dbt build` of the measurement models outside a Dagster run (`crmflow report`, the tests): the
same models, vars and profile target the dbt assets use.

dbt runs in-process (dbtRunner) on a manifest parsed once per process and engine: the run's vars
(as_of, ...) only appear in model bodies, which dbt renders at execution, so a parsed manifest serves
every as-of (and every warehouse whose database has the same name). A full parse costs far more than building the six measurement models, and dbt's partial
parsing starts over whenever the vars change, which is every run.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from crmflow.errors import CrmflowUserError
from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.tables import MEASUREMENT_MODELS, MEASUREMENT_SELECTOR, RunModels
from crmflow.report.data import buildable_report_models
from crmflow.settings import DBT_PROJECT_DIR
from crmflow.warehouse import WarehouseTarget, open_warehouse, parse_target
from orchestration.dbt_env import dbt_target_env

_LOCK = threading.Lock()  # os.environ is process-wide: one dbt invocation at a time
# Parsed manifest per engine and database: a manifest names its relations' database (PostgreSQL: the
# database name; DuckDB: the file's stem), so it serves every warehouse with that name.
_MANIFESTS: dict[tuple[str, str], Any] = {}
_WORK = Path(tempfile.gettempdir()) / f"crmflow-dbt-measurement-{os.getpid()}"


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _invoke(args: list[str], manifest: Any = None) -> Any:
    from dbt.cli.main import dbtRunner

    # Own target/log folders: a concurrent run never shares the project's target/.
    common = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
              "--target-path", str(_WORK / "target"), "--log-path", str(_WORK / "logs"), "--quiet"]
    return dbtRunner(manifest=manifest).invoke([*args, *common])


def _first_cause(message: str) -> str:
    """One line of a dbt error: the database's own error line when there is one."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    causes = [line for line in lines[1:] if "Error:" in line or "Error " in line]
    return (causes or lines or ["unknown error"])[0]


def _failures(result: Any) -> list[str]:
    """The failed nodes, one line each (a unit test that only failed for the same cause is left out)."""
    if result.exception is not None:
        return [_first_cause(str(result.exception))]
    nodes = getattr(result.result, "results", None) or []
    return [f"{r.node.name}: {_first_cause(str(r.message or r.status))}" for r in nodes
            if str(r.status) in ("error", "fail", "runtime error")]


def measurement_models_runner(target: WarehouseTarget | str | Path, timezone: str = "UTC") -> RunModels:
    """A RunModels that builds (and tests) the measurement models on `target` with dbt, and the
    report marts (models/marts/report) whose inputs exist: what `crmflow report` reads."""
    resolved = parse_target(target)

    def run(as_of: datetime, config: MeasurementConfig) -> None:
        with open_warehouse(resolved) as wh:
            report_marts = buildable_report_models(wh, built=MEASUREMENT_MODELS)
        dbt_vars = {"as_of": as_of.isoformat(), "business_timezone": timezone, **config.dbt_vars()}
        env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1", **dbt_target_env(resolved)}
        with _LOCK, _environment(env):
            engine = (env["CRMFLOW_DBT_TARGET"],
                      str(resolved.path.stem if resolved.kind == "duckdb" else resolved.dbname))
            if engine not in _MANIFESTS:
                parsed = _invoke(["parse"])
                if not parsed.success:
                    raise CrmflowUserError(f"dbt parse of the project failed: {'; '.join(_failures(parsed))}")
                _MANIFESTS[engine] = parsed.result
            built = _invoke(["build", "--select", MEASUREMENT_SELECTOR, *report_marts,
                             "--vars", json.dumps(dbt_vars)], _MANIFESTS[engine])
        if not built.success:
            raise CrmflowUserError(f"dbt build of the measurement models on {resolved.redacted()} failed: "
                                   + "; ".join(_failures(built)[:3]))

    return run
