"""Operator task assets (group "tasks"): outcomes ingestion, then the task run; thin wrappers."""

from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from crmflow.governance.operators import operator_gate, roster_warnings
from crmflow.governance.roles import load_governance
from crmflow.tasks.config import load_roster, load_task_rules
from orchestration.asof import as_of_from_context
from orchestration.lineage import exposure_deps
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_banners_tasks import ExportPushResource

# operator_tasks' inputs (the marts, intelligence outputs, task_outcomes): the dbt exposure
# operator_tasks (dbt_project/models/_python_assets__exposures.yml); journeys' create_task requests
# come through extra_deps. The task engine (pandas), exports and push are imported in the assets'
# bodies: the definitions load without them (issue 20).



@dg.asset(
    name="task_outcomes",
    group_name="tasks",
    kinds={"duckdb"},
    description="Operator task outcomes from <landing>/task_outcomes/*.csv (done, no_answer, converted, "
    "handling time, notes); bad rows go to quarantine_task_outcomes; task status follows the latest outcome.",
    check_specs=[dg.AssetCheckSpec("task_outcome_rows_reconcile", asset="task_outcomes")],
)
def task_outcomes(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  settings: CrmflowSettingsResource):
    from crmflow.tasks.outcomes import ingest_task_outcomes

    as_of = as_of_from_context(context)
    with warehouse.open() as wh:
        stats = ingest_task_outcomes(wh, Path(settings.landing_dir), as_of,
                                     operator_gate(load_governance(Path(settings.marketing_dir))))
    yield dg.MaterializeResult(metadata={
        "files_loaded": stats.files_loaded, "files_skipped": stats.files_skipped, "rows_read": stats.rows_read,
        "rows_loaded": stats.rows_loaded, "rows_quarantined": stats.rows_quarantined,
        "tasks_updated": stats.tasks_updated, "quarantine_reasons": dg.MetadataValue.json(stats.reasons)})
    yield dg.AssetCheckResult(check_name="task_outcome_rows_reconcile",
                              passed=stats.rows_read == stats.rows_loaded + stats.rows_quarantined,
                              metadata={"rows_read": stats.rows_read})


def build_task_assets(extra_deps: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name="operator_tasks",
        group_name="tasks",
        deps=exposure_deps("operator_tasks") + extra_deps,
        kinds={"duckdb"},
        description="Task rules (marketing/task_rules.yaml) and journey create_task requests -> prioritised "
        "tasks assigned to operators (marketing/operators.yaml) within daily capacity; expiry and reassignment; "
        "CSV/JSONL export in <exports>/tasks/ and optional HTTP push of every task status not delivered yet "
        "(a failed push is retried next run).",
        check_specs=[dg.AssetCheckSpec("no_operator_over_capacity", asset="operator_tasks"),
                     dg.AssetCheckSpec("one_open_task_per_customer_and_rule", asset="operator_tasks")],
    )
    def operator_tasks(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                       settings: CrmflowSettingsResource, tasks_push: ExportPushResource):
        from connectors.exports.http_push import push_table
        from crmflow.tasks.engine import run_task_rules
        from crmflow.tasks.export import mark_tasks_pushed, unpushed_tasks, write_task_exports

        as_of = as_of_from_context(context)
        marketing = Path(settings.marketing_dir)
        rules = load_task_rules(marketing / "task_rules.yaml")
        roster = load_roster(marketing / "operators.yaml")
        gate = operator_gate(load_governance(marketing))
        for warning in roster_warnings(gate, marketing / "operators.yaml", [op.id for op in roster.operators]):
            context.log.warning(warning)
        tz = ZoneInfo(settings.timezone)
        with warehouse.open() as wh:
            stats = run_task_rules(wh, rules, roster, as_of, tz, gate.may_work if gate.enforced else None)
            write_task_exports(wh, Path(settings.export_dir))
            pushed = "not configured"
            if tasks_push.configured:
                push, delivered = push_table(tasks_push.push_config(), "operator_tasks", unpushed_tasks(wh),
                                             drop_columns=("status_updated_at",))
                mark_tasks_pushed(wh, delivered, as_of)
                pushed = push.summary()
                if not push.ok:
                    context.log.warning(f"task push kept for the next run: {push.errors[:5]}")
            per_day = wh.fetch_rows(
                # today's assignments only: a capacity lowered later must not fail history
                "select operator_id, day, count(*) from (select operator_id, "
                "cast(timezone($tz, assigned_at) as date) as day from operator_tasks "
                "where operator_id is not null) assigned "
                "where day = cast(timezone($tz, cast($as_of as timestamptz)) as date) "
                "group by operator_id, day", {"tz": settings.timezone, "as_of": as_of})
            duplicate_open = wh.scalar(
                "select count(*) from (select user_id, rule from operator_tasks where status = 'open' "
                "group by user_id, rule having count(*) > 1) duplicated")
        capacity = {op.id: op.daily_capacity for op in roster.operators}
        over = [(op, str(day), n) for op, day, n in per_day if n > capacity.get(op, 0)]
        context.log.info(f"tasks as of {as_of.isoformat()}: rules run {stats.rules_run}, skipped "
                         f"{stats.rules_skipped}, assigned {stats.assigned}, unassigned {stats.unassigned}")
        yield dg.MaterializeResult(metadata={
            "as_of": as_of.isoformat(),
            "rules_run": dg.MetadataValue.json(stats.rules_run),
            "rules_skipped_not_due": dg.MetadataValue.json(stats.rules_skipped),
            "recalled": dg.MetadataValue.json(stats.recalled),
            "journey_requests": stats.journey_requests,
            "unknown_queues": dg.MetadataValue.json(stats.unknown_queues),
            "expired": stats.expired, "reassigned": stats.reassigned,
            "assigned": stats.assigned, "unassigned": stats.unassigned,
            "per_operator": dg.MetadataValue.json(stats.per_operator),
            "missing_inputs": dg.MetadataValue.json(stats.missing_inputs),
            "push": pushed,
        })
        yield dg.AssetCheckResult(check_name="no_operator_over_capacity", passed=not over,
                                  metadata={"over_capacity": dg.MetadataValue.json(over[:20])})
        yield dg.AssetCheckResult(check_name="one_open_task_per_customer_and_rule", passed=duplicate_open == 0,
                                  metadata={"duplicates": duplicate_open})

    return [operator_tasks]
