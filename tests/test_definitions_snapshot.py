"""The Definitions object's shape is pinned: asset keys with their group and parents, asset checks,
jobs with the assets they select, schedules, sensors, resources and loggers.

A refactoring of how the definitions are built (lazy imports, caches: issue 20) must leave this
unchanged. A deliberate change (a new asset, model, check or job) updates the snapshot:

    CRMFLOW_UPDATE_DEFINITIONS_SNAPSHOT=1 .venv/bin/pytest -q tests/test_definitions_snapshot.py

and the diff of tests/fixtures/definitions_snapshot.json is reviewed with the change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parent / "fixtures" / "definitions_snapshot.json"
REPO_ROOT = Path(__file__).resolve().parent.parent


def definitions_shape(defs: Any) -> dict[str, Any]:
    """Everything the Definitions declare, as sorted plain data (independent of build order)."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "parents": sorted(parent.to_user_string() for parent in node.parent_keys),
            "materializable": node.is_materializable,
        }
    jobs = {job.name: sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
            for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    schedules = {s.name: {"job": s.job_name, "cron": s.cron_schedule, "timezone": s.execution_timezone}
                 for s in defs.schedules}
    return {
        "assets": assets,
        "asset_checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys),
        "jobs": dict(sorted(jobs.items())),
        "schedules": dict(sorted(schedules.items())),
        "sensors": sorted(s.name for s in defs.sensors),
        "resources": sorted(defs.resources),
        "loggers": sorted(defs.loggers),
    }


def _differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    lines = []
    for part in sorted(set(expected) | set(actual)):
        old, new = expected.get(part), actual.get(part)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            lines += [f"{part}: removed {k}" for k in sorted(set(old) - set(new))]
            lines += [f"{part}: added {k}" for k in sorted(set(new) - set(old))]
            lines += [f"{part}: {k}: {old[k]} -> {new[k]}" for k in sorted(set(old) & set(new)) if old[k] != new[k]]
        else:
            lines.append(f"{part}: {old} -> {new}")
    return lines


def test_definitions_match_the_snapshot(dbt_manifest):
    from orchestration.definitions import defs

    actual = definitions_shape(defs)
    if os.environ.get("CRMFLOW_UPDATE_DEFINITIONS_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    differences = _differences(expected, actual)
    assert not differences, ("the Definitions differ from tests/fixtures/definitions_snapshot.json (a deliberate "
                             "change: CRMFLOW_UPDATE_DEFINITIONS_SNAPSHOT=1):\n" + "\n".join(differences[:40]))


def test_snapshot_differences_name_what_changed():
    expected = {"assets": {"a": {"group": "g"}, "b": {"group": "g"}}, "jobs": {"j": ["a"]}}
    actual = {"assets": {"a": {"group": "h"}, "c": {"group": "g"}}, "jobs": {"j": ["a"]}}
    assert _differences(expected, actual) == [
        "assets: removed b", "assets: added c", "assets: a: {'group': 'g'} -> {'group': 'h'}"]


# Libraries only an asset's run needs (or the report, or the CLI): importing the definitions must
# not pay for them (issue 20: the definitions load in a fresh process, what `dagster dev` and every
# run's subprocess pay).
NOT_AT_IMPORT = ("pandas", "scipy", "sklearn", "plotly", "joblib")


def test_importing_the_definitions_leaves_heavy_libraries_unloaded(dbt_manifest):
    code = ("import sys; import orchestration.definitions; "
            f"print(' '.join(m for m in {NOT_AT_IMPORT!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.split()
    assert not loaded, f"importing orchestration.definitions loads {', '.join(loaded)}: import it where it is used"
