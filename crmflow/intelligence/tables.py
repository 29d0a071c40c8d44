"""Small warehouse helpers: which inputs exist, output relations, and writing a result as a table."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from crmflow.warehouse import Warehouse

# The four outputs (read by dbt as sources) live in the analytics schema (main on DuckDB).
CLUSTERS, CHURN_SCORES, RECOMMENDATIONS, PRIORITY = (
    "customer_clusters", "customer_churn_scores", "customer_recommendations", "customer_priority")

CLUSTERS_SCHEMA = pa.schema([("user_id", pa.string()), ("cluster_id", pa.int32()), ("cluster_label", pa.string()),
                             ("distance", pa.float64()), ("as_of", pa.timestamp("us", tz="UTC"))])
CHURN_SCHEMA = pa.schema([("user_id", pa.string()), ("churn_probability", pa.float64()), ("risk_band", pa.string()),
                          ("model_version", pa.string()), ("scored_at", pa.timestamp("us", tz="UTC"))])
RECOMMENDATIONS_SCHEMA = pa.schema([("user_id", pa.string()), ("rank", pa.int32()), ("sku", pa.string()),
                                    ("score", pa.float64()), ("reason", pa.string())])


def output_relation(wh: Warehouse, table: str) -> str:
    return wh.relation("analytics", table)


def missing_inputs(wh: Warehouse, required: tuple[str, ...]) -> list[str]:
    """The dbt relations in `required` that do not exist (bare names: found through the search path)."""
    return [t for t in required if not wh.table_exists(t)]


def sql_list(values: tuple[str, ...] | list[str]) -> str:
    """A SQL literal list from config strings (quotes doubled), e.g. ('paid', 'shipped')."""
    if not values:
        return "(null)"
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def as_arrow(frame: pd.DataFrame | pa.Table, schema: pa.Schema) -> pa.Table:
    """`frame` with exactly the contract's columns and types (an empty frame keeps its types too)."""
    if isinstance(frame, pd.DataFrame):
        frame = pa.Table.from_pandas(frame[schema.names], preserve_index=False)
    return frame.select(schema.names).cast(schema)


def empty_or_create(wh: Warehouse, relation: str, create: str) -> bool:
    """Empty `relation` if it exists (True), else run `create` (False). Inside the caller's transaction.

    Outputs are emptied and refilled, never dropped: on PostgreSQL a view over one (dbt's
    int_segment_memberships reads customer_clusters) forbids dropping the table.
    """
    if wh.table_exists(relation):
        wh.execute(f"delete from {relation}")
        return True
    wh.execute(create)
    return False


def replace_output(wh: Warehouse, table: str, frame: pd.DataFrame | pa.Table, schema: pa.Schema) -> None:
    """Replace the rows of an output table with `frame` typed by `schema` (inside the caller's transaction)."""
    relation, arrow = output_relation(wh, table), as_arrow(frame, schema)
    if wh.table_exists(relation):
        wh.execute(f"delete from {relation}")  # see empty_or_create: a dependent view forbids a drop
        wh.write_arrow(arrow, relation)
    else:
        wh.write_arrow(arrow, relation, mode="replace")
