"""With a Spark warehouse (CRMFLOW_WAREHOUSE=spark://...), the one place tables cross between the
operational store (CRMFLOW_STATE), where every Python asset reads and writes, and Spark, where dbt
builds (docs/scaling.md). A no-op on DuckDB and PostgreSQL warehouses.

It wraps each dbt step (orchestration/dbt.py):

- before it: the dbt sources its models (and their tests) read are published from the store to Spark
  (raw_* from ingestion, the Python assets' outputs: sources with meta.dagster.asset_key), each once
  per run: a source's writer is upstream of every dbt step that reads it, so once read it is final;
- after it: the relations it built that a Python asset reads (the depends_on of the dbt exposures,
  orchestration/lineage.py) are fetched from Spark into the store, before any of those assets runs.

So a run starts one JVM for each of these syncs (crmflow/warehouse/spark.py: all tables of a sync in
one child process) besides dbt's own, and no Python asset knows about Spark.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from crmflow.warehouse import open_warehouse, parse_target
from crmflow.warehouse.spark import fetch, publish

_PUBLISHED: dict[str, set[str]] = {}  # run id -> sources already in Spark for this run


def _deps(props: dict[str, Any]) -> list[str]:
    return (props.get("depends_on") or {}).get("nodes") or []


def _relation(props: dict[str, Any]) -> str:
    return props.get("identifier") or props.get("alias") or props["name"]


def sources_read(manifest: dict[str, Any], built: set[str]) -> list[str]:
    """The source tables the nodes named `built` (models, seeds) and the tests on them read."""
    nodes = manifest["nodes"].values()
    ids = {p["unique_id"] for p in nodes if p["resource_type"] in ("model", "seed", "snapshot") and p["name"] in built}
    readers = [p for p in nodes if p["unique_id"] in ids
               or (p["resource_type"] == "test" and ids & set(_deps(p)))]
    return sorted({_relation(manifest["sources"][dep]) for p in readers for dep in _deps(p)
                   if dep in manifest["sources"]})


def exposure_relations(manifest: dict[str, Any], built: set[str]) -> list[str]:
    """The relations among `built` that some dbt exposure (a Python asset) depends on."""
    wanted = {dep for exposure in manifest["exposures"].values() for dep in _deps(exposure)}
    return sorted({_relation(manifest["nodes"][dep]) for dep in wanted
                   if dep in manifest["nodes"] and manifest["nodes"][dep]["name"] in built})


@contextmanager
def spark_sync(context: dg.AssetExecutionContext, store: str, spark: str,
               manifest: dict[str, Any]) -> Iterator[None]:
    """Around one dbt step: publish what it reads, fetch what the Python assets read of what it built.
    `store`: the store's URL/path (WarehouseResource.path); `spark`: its Spark warehouse or ""."""
    if not spark:
        yield
        return
    target = parse_target(spark)
    built = {key.path[-1] for key in context.selected_asset_keys}
    done = _PUBLISHED.setdefault(context.run_id, set())
    needed = [name for name in sources_read(manifest, built) if name not in done]
    with open_warehouse(store) as wh:
        published = publish(wh, needed, target) if needed else []
    done.update(needed)
    context.log.info(f"spark: published {len(published)} tables from the store ({', '.join(published) or '-'})")
    yield
    wanted = exposure_relations(manifest, built)
    with open_warehouse(store) as wh:
        fetched = fetch(wh, wanted, target)
    context.log.info(f"spark: fetched {len(fetched)} relations into the store ({', '.join(fetched) or '-'})")
