"""Which warehouse relations each Python asset really reads, recorded during one real run.

Run as a script in a subprocess with the CRMFLOW_* environment set (the Definitions object reads the
settings at import): `python tests/helpers_lineage.py <as-of> <out.json>`. It runs the crmflow_full
job in process, records every statement that goes through the warehouse interface
(`Warehouse._bind`, which execute/fetch_rows/scalar/fetch_arrow all use) with the Python asset whose
compute function is on the stack, and writes {asset key: [statements]} and whether the run
succeeded. tests/test_lineage.py parses the statements (sqlglot) and compares them with the deps.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import sqlglot
from sqlglot import exp

CRMFLOW = str(Path(sys.executable).parent / "crmflow")


def small_world(root: Path) -> dict[str, str]:
    """A small generated world (80 users, 90 days up to 2026-06-19) under `root`, and its environment."""
    env = {**os.environ, "CRMFLOW_WAREHOUSE": str(root / "warehouse.duckdb"),
           "CRMFLOW_LANDING_DIR": str(root / "landing"), "CRMFLOW_OUTBOX_DIR": str(root / "outbox"),
           "CRMFLOW_EXPORT_DIR": str(root / "exports"), "CRMFLOW_TIMEZONE": "UTC",
           "DAGSTER_HOME": str(root / "dagster_home")}
    (root / "dagster_home").mkdir(exist_ok=True)
    subprocess.run([CRMFLOW, "generate", "--users", "80", "--days", "90", "--end", "2026-06-19", "--seed", "5"],
                   env=env, check=True, capture_output=True)
    return env


def _asset_code_keys(defs) -> dict[object, str]:
    """compute function code object -> its asset keys joined by ',' (every journey tick shares one
    code object, a multi-asset has several keys; the test takes the union of their deps)."""
    by_code: dict[object, set[str]] = defaultdict(set)
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if not assets_def.is_executable or assets_def.op.name == "crmflow_dbt_assets":
            continue
        fn = getattr(assets_def.op.compute_fn, "decorated_fn", None)
        if fn is not None:
            by_code[fn.__code__].update(k.to_user_string() for k in assets_def.keys)
    return {code: ",".join(sorted(keys)) for code, keys in by_code.items()}


def _current_asset(code_keys: dict[object, str]) -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        key = code_keys.get(frame.f_code)
        if key is not None:
            return key
        frame = frame.f_back
    return None


def run_recording(as_of: str, out: Path) -> None:
    from crmflow.settings import parse_as_of
    from crmflow.warehouse.base import Warehouse
    from orchestration.cli import migrate_warehouse, prepare_dbt_manifest

    migrate_warehouse()
    prepare_dbt_manifest(force=True)
    from orchestration.asof import as_of_tags
    from orchestration.definitions import defs

    code_keys = _asset_code_keys(defs)
    statements: dict[str, list[str]] = defaultdict(list)
    original = Warehouse._bind

    def recording_bind(self, sql, params):
        key = _current_asset(code_keys)
        if key is not None:
            statements[key].append(sql)
        return original(self, sql, params)

    Warehouse._bind = recording_bind  # this process only: a script run by the test, not a test fixture
    result = defs.resolve_job_def("crmflow_full").execute_in_process(tags=as_of_tags(parse_as_of(as_of)),
                                                                   raise_on_error=False)
    failures = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    out.write_text(json.dumps({"success": result.success, "failures": failures, "statements": statements}))


def tables_read(sql: str) -> set[str]:
    """Bare names of the relations a statement reads (not the one it writes, not its CTEs)."""
    names: set[str] = set()
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        # what sqlglot cannot parse is still searched: every name after from/join (over-reports, never hides)
        return {name.rsplit(".", 1)[-1] for name in re.findall(r"(?i)\b(?:from|join)\s+([a-z_][\w.]*)", sql)}
    for tree in trees:
        if tree is None:
            continue
        written = set()
        if isinstance(tree, exp.Insert | exp.Update | exp.Delete | exp.Create | exp.Merge):
            target = tree.this
            while isinstance(target, exp.Schema):
                target = target.this
            if isinstance(target, exp.Table):
                written.add(target.name)
        ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if table.name and table.name not in ctes and table.name not in written:
                names.add(table.name)
    return names


if __name__ == "__main__":
    run_recording(sys.argv[1], Path(sys.argv[2]))
