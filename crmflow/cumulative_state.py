"""The as-of clock of crmflow's cumulative state (docs/architecture.md "Lineage and state").

Most tables are rebuilt from their inputs on every run, as of the run's as-of: the dbt models and
the intelligence outputs. A few accumulate across runs and are never rebuilt: the journey state
(enrolments, decisions, the send ledger, the ticks), operator tasks and their rule runs, the
banner assignment changes and the dbt histories (customer_*_history, type-2 spells). Each records the as-of that wrote it. Running the whole graph as of a
time before the latest of those would apply an earlier moment on top of a later one (enrol again,
re-plan sent messages, expire tasks backwards), so `refuse_going_back` stops such a run before it
starts, with one line. The same as-of again, or a later one, is allowed. The analytics alone can
still be rebuilt as of any time (`crmflow run --analytics-only`, job crmflow_analytics): that path writes no cumulative state.
"""

from __future__ import annotations

from datetime import UTC, datetime

from crmflow.errors import CrmflowUserError
from crmflow.warehouse import Warehouse, WarehouseTarget, open_warehouse

# (logical schema, table, as-of expression, what it holds): the as-of of every run that wrote it.
# The dbt histories (tag cumulative_state) open and close spells at run as-ofs.
STATE_CLOCKS: tuple[tuple[str, str, str, str], ...] = (
    ("ops", "journey_ticks", "as_of", "journey state (enrolments, send ledger)"),
    ("ops", "operator_task_rule_runs", "ran_at", "operator tasks"),
    ("exports", "banner_assignment_changes", "changed_at", "banner assignment changes"),
    ("analytics", "customer_lifecycle_history", "coalesce(valid_to, valid_from)", "customer histories"),
    ("analytics", "customer_value_tier_history", "coalesce(valid_to, valid_from)", "customer histories"),
    ("analytics", "customer_segment_history", "coalesce(valid_to, valid_from)", "customer histories"),
)


def latest_state_as_of(wh: Warehouse) -> tuple[datetime, str] | None:
    """The latest as-of applied to any cumulative state, and which state; None on a fresh warehouse."""
    parts = [f"select max({column}) as applied, '{label}' as state from {wh.relation(schema, table)}"
             for schema, table, column, label in STATE_CLOCKS if wh.table_exists(wh.relation(schema, table))]
    if not parts:
        return None
    rows = wh.fetch_rows(f"select applied, state from ({' union all '.join(parts)}) as clocks "
                         "where applied is not null order by applied desc, state limit 1")
    if not rows:
        return None
    applied, state = rows[0]
    if applied.tzinfo is None:
        applied = applied.replace(tzinfo=UTC)
    return applied, state


def refuse_going_back(wh: Warehouse, as_of: datetime) -> None:
    """Raise one line when `as_of` is before the latest as-of already applied to cumulative state."""
    latest = latest_state_as_of(wh)
    if latest is None or as_of >= latest[0]:
        return
    applied, state = latest
    raise CrmflowUserError(
        f"as-of {as_of.astimezone(UTC).isoformat()} is before {applied.astimezone(UTC).isoformat()}, the latest "
        f"as-of already applied to the {state}, which accumulates across runs: a full run cannot go back over "
        f"it. Run a later as-of, or rebuild only the analytics (dbt models, intelligence) as of that time: "
        f"`crmflow run --as-of {as_of.astimezone(UTC).isoformat()} --analytics-only` (job crmflow_analytics)")


def refuse_going_back_on(target: WarehouseTarget, as_of: datetime) -> None:
    """`refuse_going_back` on the warehouse at `target` (a run's pre-flight check)."""
    with open_warehouse(target, read_only=target.kind == "duckdb") as wh:
        refuse_going_back(wh, as_of)
