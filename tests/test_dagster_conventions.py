"""Catalog conventions (issue 16 item 5): dbt singular tests are asset checks on their model, Python
assets have kinds, Markdown-safe descriptions and journey owners, one code location name."""

import json
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_dbt_test_is_an_asset_check_on_a_model(dbt_manifest):
    from orchestration.definitions import defs

    manifest = json.loads(Path(dbt_manifest).read_text())
    checks = {key.name: key.asset_key.to_user_string()
              for assets_def in defs.resolve_asset_graph().assets_defs for key in assets_def.check_keys}
    singular = [node for node in manifest["nodes"].values()
                if node["resource_type"] == "test" and not node.get("attached_node")]
    assert singular and not [node["name"] for node in singular if node["name"] not in checks]
    assert checks["assert_kpi_daily_revenue_reconciles"] == "kpi_daily"
    assert checks["seg_every_user_in_every_family"] == "customer_segments"


def test_python_assets_have_kinds_owners_and_markdown_safe_descriptions(dbt_manifest):
    from orchestration.definitions import defs

    specs = {spec.key.to_user_string(): spec for assets_def in defs.resolve_asset_graph().assets_defs
             for spec in assets_def.specs if "dbt" not in spec.kinds}
    assert not [key for key, spec in specs.items() if not spec.kinds]
    bare = re.compile(r"(?<!`)<[a-z_]+>(?!`)")
    assert not [key for key, spec in specs.items() if bare.search(spec.description or "")]
    assert "`<landing>`" in specs["raw_events"].description
    assert specs["journey_abandoned_cart"].owners == ["ecommerce-team@crmflow.example"]


def test_one_code_location_name():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = {pyproject["tool"]["dagster"]["code_location_name"], pyproject["tool"]["dg"]["project"]["code_location_name"]}
    workspace = (REPO / "deploy" / "workspace.yaml").read_text()
    assert names == {"crmflow"} and "location_name: crmflow" in workspace
    assert pyproject["tool"]["dagster"]["module_name"] == pyproject["tool"]["dg"]["project"]["code_location_target_module"]
