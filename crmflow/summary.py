"""A plain-text summary of what a run produced: row counts per stage."""

from __future__ import annotations

from pathlib import Path

from crmflow.warehouse import open_warehouse, parse_target

# (stage, table) in pipeline order; tables that do not exist yet are left out.
STAGE_TABLES = [
    ("ingest", "raw_events"),
    ("ingest", "raw_registrations"),
    ("ingest", "raw_orders"),
    ("ingest", "quarantine_events"),
    ("ingest", "quarantine_registrations"),
    ("ingest", "quarantine_orders"),
    ("model", "customer_profile"),
    ("model", "customer_rfm"),
    ("model", "customer_lifecycle"),
    ("model", "customer_value_tier"),
    ("model", "customer_segments"),
    ("model", "customer_tags"),
    ("model", "kpi_daily"),
    ("learn", "customer_clusters"),
    ("learn", "customer_churn_scores"),
    ("learn", "customer_recommendations"),
    ("learn", "customer_priority"),
    ("act", "journey_enrolments"),
    ("act", "send_ledger"),
    ("act", "banner_assignments"),
    ("act", "operator_tasks"),
]


def stage_counts(warehouse: str | Path) -> list[tuple[str, str, int]]:
    """Rows per stage table; `warehouse` is a DuckDB path (none yet: no rows) or a postgresql:// URL."""
    target = parse_target(warehouse)
    if target.kind == "duckdb" and not Path(target.path).exists():
        return []
    with open_warehouse(target, read_only=True) as wh:
        return [
            (stage, table, wh.scalar(f'select count(*) from "{table}"'))
            for stage, table in STAGE_TABLES
            if wh.table_exists(table)
        ]


def print_summary(warehouse: str | Path) -> None:
    rows = stage_counts(warehouse)
    print(f"\nwarehouse: {parse_target(warehouse).redacted()}")
    print(f"{'stage':<8} {'table':<28} {'rows':>12}")
    for stage, table, count in rows:
        print(f"{stage:<8} {table:<28} {count:>12,}")
