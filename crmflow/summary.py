"""A plain-text summary of what a run produced: row counts per stage."""

from __future__ import annotations

from pathlib import Path

from crmflow.warehouse import connect

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


def stage_counts(warehouse: Path) -> list[tuple[str, str, int]]:
    if not Path(warehouse).exists():
        return []
    with connect(warehouse, read_only=True) as con:
        existing = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
        return [
            (stage, table, con.execute(f'select count(*) from "{table}"').fetchone()[0])
            for stage, table in STAGE_TABLES
            if table in existing
        ]


def print_summary(warehouse: Path) -> None:
    rows = stage_counts(warehouse)
    print(f"\nwarehouse: {warehouse}")
    print(f"{'stage':<8} {'table':<28} {'rows':>12}")
    for stage, table, count in rows:
        print(f"{stage:<8} {table:<28} {count:>12,}")
