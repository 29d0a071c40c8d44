"""Numbered schema migrations, recorded in `schema_migrations` (crm_ops on PostgreSQL, main on DuckDB).

`apply_migrations(warehouse)` creates the project's schemas, then runs each migration not yet recorded,
each in its own transaction together with its record, so a failed migration leaves neither its tables
nor its record (PostgreSQL and DuckDB DDL are both transactional). Applying twice is applying once.
Migrations are append-only: never edit one that has shipped, add the next number.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.sources.ddl import CURSORS_TEMPLATE
from crmflow.banners.ddl import CHANGES_TEMPLATE as BANNER_TEMPLATE
from crmflow.governance.ddl import GOVERNANCE_TEMPLATE
from crmflow.intelligence.ddl import CENTROIDS_TEMPLATE, CLUSTERS_OUTPUT_TEMPLATE, MODEL_RUNS_TEMPLATE
from crmflow.journeys.dispatch_ddl import LEASE_TEMPLATE
from crmflow.journeys.tables import JOURNEY_TEMPLATE
from crmflow.measurement.schema import GOALS_TEMPLATE, MEASUREMENT_TEMPLATE
from crmflow.privacy_ddl import PRIVACY_TEMPLATE
from crmflow.tasks.ddl import TASKS_TEMPLATE
from crmflow.warehouse.base import Warehouse
from crmflow.warehouse.ddl import MIGRATION_1_TEMPLATE


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    template: str  # portable DDL with {raw}/{ops}/{analytics}/{exports} and {json}


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "raw, quarantine, tag and operational tables", MIGRATION_1_TEMPLATE),
    Migration(10, "journey enrolments, decisions, send ledger, ticks and step outputs", JOURNEY_TEMPLATE),
    Migration(20, "privacy erasures (hashed identifiers and their pseudonym)", PRIVACY_TEMPLATE),
    Migration(30, "banner assignment changes (the diff each run appends, push state)", BANNER_TEMPLATE),
    Migration(31, "operator tasks, rule runs, push versions, task outcomes and their quarantine", TASKS_TEMPLATE),
    Migration(40, "intelligence model runs (with the retraining cadence columns)", MODEL_RUNS_TEMPLATE),
    Migration(41, "intelligence cluster centroids per as-of", CENTROIDS_TEMPLATE),
    Migration(42, "customer_clusters created up front: dbt reads it as a source", CLUSTERS_OUTPUT_TEMPLATE),
    Migration(45, "measurement: attribution, conversion trend, uplift and A/B results", MEASUREMENT_TEMPLATE),
    Migration(46, "measurement: attribution and trend become dbt models; journey goals for them", GOALS_TEMPLATE),
    Migration(50, "ingestion: the HTTP API pull cursor per resource (source_cursors)", CURSORS_TEMPLATE),
    Migration(55, "dispatch: ledger claim leases, attempt outcome, settling event; shared channel rate/pause",
              LEASE_TEMPLATE),
    Migration(60, "governance: journey version approvals and the audit of approve/enable/disable", GOVERNANCE_TEMPLATE),
)

LEDGER_TEMPLATE = """
create table if not exists {ops}.schema_migrations (
    version integer primary key,
    name varchar not null,
    applied_at timestamptz not null
)
"""


def applied_versions(warehouse: Warehouse) -> list[int]:
    ledger = warehouse.relation("ops", "schema_migrations")
    if not warehouse.table_exists(ledger):
        return []
    return [row[0] for row in warehouse.fetch_rows(f"select version from {ledger} order by version")]


def apply_migrations(warehouse: Warehouse, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the warehouse to the latest schema; returns the versions applied by this call."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be unique and ascending, got {versions}")
    with warehouse.transaction():
        warehouse.lock_for_migrations()
        warehouse.ensure_schemas()
        warehouse.execute(warehouse.render(LEDGER_TEMPLATE))
    ledger = warehouse.relation("ops", "schema_migrations")
    applied_now = []
    for migration in migrations:
        with warehouse.transaction():
            warehouse.lock_for_migrations()  # re-read under the lock: another process may have won
            if migration.version in applied_versions(warehouse):
                continue
            warehouse.execute(warehouse.render(migration.template))
            warehouse.execute(
                f"insert into {ledger} (version, name, applied_at) values ($version, $name, current_timestamp)",
                {"version": migration.version, "name": migration.name},
            )
        applied_now.append(migration.version)
    return applied_now
