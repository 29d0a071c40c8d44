"""Catalog conventions applied to the Python assets in one place (definitions.py): descriptions that
render in Markdown, kinds, and owners from the journey YAML (`owner:`). dbt assets get theirs from
the translator (orchestration/dbt.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg
import yaml

# <landing>, <exports>, <resource>: placeholders, not HTML tags (Markdown would swallow them).
_PLACEHOLDER = re.compile(r"(?<!`)<([a-z_]+)>(?!`)")


def markdown_safe(description: str | None) -> str | None:
    return _PLACEHOLDER.sub(r"`<\1>`", description) if description else description


def journey_owners(journeys_dir: Path) -> dict[dg.AssetKey, str]:
    """journey_<id> -> the journey's `owner:` (an e-mail address, as the YAML requires)."""
    owners: dict[dg.AssetKey, str] = {}
    for path in sorted(journeys_dir.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, Mapping) and data.get("id") and data.get("owner"):
            owners[dg.AssetKey(f"journey_{data['id']}")] = str(data["owner"])
    return owners


def apply_conventions(assets: Iterable, owners: Mapping[dg.AssetKey, str]) -> list:
    """Python assets: Markdown-safe descriptions, the `python` kind, owners where known."""

    def convention(spec: dg.AssetSpec) -> dg.AssetSpec:
        kinds = set(spec.kinds or ())
        if "python" not in kinds and len(kinds) < 3:
            kinds.add("python")
        owner = owners.get(spec.key)
        return spec.replace_attributes(
            description=markdown_safe(spec.description), kinds=kinds,
            owners=[*spec.owners, owner] if owner and owner not in spec.owners else spec.owners)

    assets = list(assets)
    is_dbt = [any("dbt" in (spec.kinds or ()) for spec in a.specs) for a in assets]
    mapped = iter(dg.map_asset_specs(convention, [a for a, dbt in zip(assets, is_dbt, strict=True) if not dbt]))
    return [a if dbt else next(mapped) for a, dbt in zip(assets, is_dbt, strict=True)]
