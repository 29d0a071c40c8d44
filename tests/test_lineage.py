"""Lineage is explicit (issue 14 item 3): the asset graph has every input of every asset.

- dbt models read Python outputs only through sources that name the writing asset, and Dagster
  puts that asset upstream of the model; no model looks a relation up with adapter.get_relation
  except its own incremental watermark (documented state, docs/architecture.md "Lineage and state").
- Python assets' deps come from their dbt exposures, and cover what they really read: one run on a
  small generated world records every statement each Python asset sends through the warehouse
  interface (tests/helpers_lineage.py); each dbt model it reads must be a direct dep, and each
  Python output it reads must come from an upstream asset in the same run (or be its own state).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from helpers_lineage import small_world, tables_read

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-06-20T06:00:00+00:00"
# The two models that keep incremental state of their own, looked up by name (<this>__watermark).
WATERMARK_MODELS = {"int_customer__event_days", "stg_shop__order_items"}


@pytest.fixture(scope="module")
def manifest(dbt_manifest: Path) -> dict:
    from orchestration.cli import prepare_dbt_manifest

    return json.loads(prepare_dbt_manifest(force=True).read_text())


@pytest.fixture(scope="module")
def graph(manifest: dict):
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


def _python_sources(manifest: dict) -> dict[str, tuple[str, dict]]:
    """table name -> (writing asset key, source meta) for every source a Python asset writes."""
    found = {}
    for source in manifest["sources"].values():
        key = (source.get("meta") or {}).get("dagster", {}).get("asset_key")
        if key:
            found[source["name"]] = ("/".join(key), source.get("meta") or {})
    return found


def _models(manifest: dict) -> dict[str, dict]:
    return {n["name"]: n for n in manifest["nodes"].values()
            if n["resource_type"] == "model" and n["package_name"] == "crmflow"}


def _code(raw: str) -> str:
    """SQL/Jinja without comments."""
    raw = re.sub(r"\{#.*?#\}", "", raw, flags=re.S)
    return "\n".join(line.split("--", 1)[0] for line in raw.splitlines())


def test_no_model_looks_up_a_python_output(manifest: dict) -> None:
    lookups = {}
    for name, node in _models(manifest).items():
        calls = re.findall(r"adapter\.get_relation\((.*?)\)", _code(node["raw_code"]), flags=re.S)
        if calls:
            lookups[name] = calls
    assert set(lookups) == WATERMARK_MODELS, lookups
    for name, calls in lookups.items():
        assert all("identifier=this.identifier ~ '__watermark'" in c.replace("\n", " ").replace("  ", " ")
                   or "this.identifier ~ '__watermark'" in c for c in calls), (name, calls)
    # and no model names a Python-written table other than through source()
    python_tables = _python_sources(manifest)
    for name, node in _models(manifest).items():
        code = re.sub(r"source\(\s*'[^']+'\s*,\s*'[^']+'\s*\)", "", _code(node["raw_code"]))
        named = {t for t in python_tables if re.search(rf"\b{t}\b", code)}
        assert not named, f"{name} names {named} outside source()"


def test_models_reading_python_outputs_run_after_the_writer(manifest: dict, graph) -> None:
    sources = manifest["sources"]
    checked = 0
    for name, node in _models(manifest).items():
        parents = graph.get(dg.AssetKey(name)).parent_keys
        for unique_id in node["depends_on"]["nodes"]:
            key = (sources.get(unique_id, {}).get("meta") or {}).get("dagster", {}).get("asset_key")
            if key:
                writer = dg.AssetKey(key)
                assert writer in parents, f"{name} reads {unique_id} but does not depend on {writer}"
                assert graph.has(writer) and graph.get(writer).is_executable, f"{writer} is no asset"
                checked += 1
    # int_segment_memberships (clusters), operator_efficiency (tasks, outcomes) at least
    assert checked >= 3


def test_the_cluster_family_and_operator_efficiency_follow_their_writers(graph) -> None:
    def upstream(key: str) -> set[str]:
        return {k.to_user_string() for k in graph.upstream_key_closure(dg.AssetKey(key))} \
            if hasattr(graph, "upstream_key_closure") else \
            {k.to_user_string() for k in graph.get_ancestor_asset_keys(dg.AssetKey(key))}

    assert "customer_clusters" in upstream("customer_segments")
    assert {"operator_tasks", "task_outcomes"} <= upstream("operator_efficiency")
    # and the graph is a DAG through the split dbt steps: the writers do not read their readers
    assert "customer_segments" not in upstream("customer_clusters")
    assert "operator_efficiency" not in upstream("operator_tasks")


def test_python_asset_deps_are_their_exposures(manifest: dict, graph) -> None:
    from orchestration.lineage import exposure_deps

    exposures = {e["name"] for e in manifest["exposures"].values() if e["package_name"] == "crmflow"}
    assert {"customer_clusters", "customer_churn_scores", "customer_recommendations", "customer_priority",
            "journey_ticks", "journey_dispatch", "banner_assignments", "operator_tasks"} <= exposures
    # a multi-asset's exposure is named after the op: every asset it writes reads the exposure's inputs
    written_by = {"journey_measurement": ["journey_uplift", "journey_ab_results"]}
    for name in exposures - {"journey_ticks"}:
        for key in written_by.get(name, [name]):
            assert set(exposure_deps(name)) <= graph.get(dg.AssetKey(key)).parent_keys, (name, key)
    ticks = [n.key for n in graph.asset_nodes if n.key.to_user_string().startswith("journey_")
             and n.group_name == "journeys" and n.key.to_user_string() != "journey_dispatch"]
    assert ticks
    for key in ticks:
        assert set(exposure_deps("journey_ticks")) <= graph.get(key).parent_keys, key


def test_tables_read_ignores_ctes_and_the_written_table() -> None:
    sql = ("insert into main.customer_priority with w as (select * from customer_churn_scores) "
           "select w.user_id from w join stg_shop__orders o using (user_id)")
    assert tables_read(sql) == {"customer_churn_scores", "stg_shop__orders"}
    assert tables_read("delete from operator_tasks where task_id in (select task_id from task_outcomes)") \
        == {"task_outcomes"}
    # unparseable SQL falls back to the names after from/join
    assert tables_read("select * from main.customer_profile p join customer_rfm using (user_id) qualify ((") \
        >= {"customer_profile", "customer_rfm"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, manifest: dict) -> dict:
    root = tmp_path_factory.mktemp("lineage")
    env = small_world(root)
    out = root / "statements.json"
    done = subprocess.run([sys.executable, str(REPO / "tests" / "helpers_lineage.py"), AS_OF, str(out)],
                          env=env, capture_output=True, text=True, timeout=2400, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.long
@pytest.mark.slow
def test_python_assets_depend_on_everything_they_read(recorded: dict, manifest: dict, graph) -> None:
    assert recorded["success"], recorded["failures"]
    models = set(_models(manifest))
    python_tables = _python_sources(manifest)
    missing = []
    for asset, statements in recorded["statements"].items():
        keys = [dg.AssetKey(k.split("/")) for k in asset.split(",")]
        parents = set().union(*(graph.get(k).parent_keys for k in keys))
        own = {k.to_user_string() for k in keys}
        read = set().union(*(tables_read(s) for s in statements)) if statements else set()
        for table in sorted(read):
            if table in models and dg.AssetKey(table) not in parents:
                missing.append(f"{asset} reads model {table}")
            elif table in python_tables:
                writer, meta = python_tables[table]
                cumulative = (meta.get("crmflow") or {}).get("state") == "cumulative"
                if writer not in own and dg.AssetKey(writer.split("/")) not in parents and not cumulative:
                    missing.append(f"{asset} reads {table} (written by {writer})")
    assert not missing, missing
    # the recording saw the assets that read the marts
    assert {"customer_clusters", "customer_priority", "operator_tasks", "banner_assignments"} <= set(
        recorded["statements"])
