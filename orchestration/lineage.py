"""The inputs of the Python assets, from the dbt manifest (issue 14 item 3).

Each Python asset that reads warehouse relations has a dbt exposure of the same name
(dbt_project/models/_python_assets__exposures.yml) whose depends_on lists them. `exposure_deps`
turns that list into asset keys with the project's one translator: a model is its own key, a source
written by a Python asset is that asset (meta.dagster.asset_key), so the asset graph, dbt docs and
tests/test_lineage.py agree and no asset's inputs are a hand-typed list.
"""

from __future__ import annotations

import dagster as dg

from orchestration.dbt import CrmflowDbtTranslator, dbt_project
from orchestration.dbt import manifest as _manifest


def exposure_deps(name: str) -> list[dg.AssetKey]:
    """The asset keys exposure `name` depends on, in the order its YAML lists them."""
    manifest = _manifest()
    exposure = manifest["exposures"].get(f"exposure.crmflow.{name}")
    if exposure is None:
        raise dg.DagsterInvalidDefinitionError(
            f"no dbt exposure {name!r} in {dbt_project.manifest_path} (declared in "
            "dbt_project/models/_python_assets__exposures.yml?): run `crmflow prepare` after changing it")
    translator = CrmflowDbtTranslator()
    keys: list[dg.AssetKey] = []
    for unique_id in exposure["depends_on"]["nodes"]:
        props = manifest["nodes"].get(unique_id) or manifest["sources"][unique_id]
        key = translator.get_asset_key(props)
        if key not in keys:
            keys.append(key)
    return keys
