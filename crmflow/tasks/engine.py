"""One task run as of a moment: expire, recall due rules, take journey requests, prioritise, match,
allocate within capacity, and write operator_tasks. Set-based SQL (the same text on DuckDB and
PostgreSQL) plus vectorised numpy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from crmflow.audience import Params
from crmflow.banners.relations import existing_relations, replace_temp_table
from crmflow.journeys.columns import profile_columns
from crmflow.tasks.allocate import allocate
from crmflow.tasks.config import Matching, OperatorRoster, TaskPolicy, TaskRules
from crmflow.tasks.context import context_sql, load_talking_points
from crmflow.tasks.matching import match_matrix
from crmflow.tasks.recall import q, recall_sql
from crmflow.tasks.schema import ensure_task_tables, null_columns, optional_inputs
from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.dialect import binary_order, try_cast_double

CAND_COLUMNS = """
    task_id varchar, user_id varchar, rule varchar, policy varchar, source varchar, recall_reason varchar,
    priority_mult double precision, exclude_operator varchar, reassigned_from varchar, journey_id varchar,
    step_id varchar, note varchar, created_at timestamptz, due_at timestamptz, expires_at timestamptz,
    existing boolean
"""

TASK_COLUMNS = ("task_id, user_id, operator_id, rule, policy, source, recall_reason, priority, created_at, "
                "assigned_at, due_at, expires_at, status, status_updated_at, reassigned_from, journey_id, step_id, "
                "note, context")

# A journey task's id: one task per request key, so a re-run never creates it twice.
JOURNEY_TASK_ID = "'task_' || substr(md5('journey|' || j.request_key), 1, 20)"

# The operator each re-competing task must not go back to: the nearest one along its chain of
# reassigned_from who held it (an expired task's own operator; for a reassigned task still
# unassigned, the operator who let its predecessor expire, however many unassigned hops ago).
EXCLUDED_SQL = """
with recursive chain(task_id, ancestor_id, operator_id) as (
    select task_id, reassigned_from, operator_id from _tk_expired
    union all
    select task_id, reassigned_from, operator_id from operator_tasks where status = 'unassigned'
    union all
    select c.task_id, a.reassigned_from, a.operator_id
    from chain c join operator_tasks a on a.task_id = c.ancestor_id
    where c.operator_id is null
)
select task_id, max(operator_id) as operator_id from chain group by task_id
"""


@dataclass
class TaskRunStats:
    rules_run: list[str] = field(default_factory=list)
    rules_skipped: list[str] = field(default_factory=list)  # not due yet (frequency)
    recalled: dict[str, int] = field(default_factory=dict)
    expired: int = 0
    reassigned: int = 0
    journey_requests: int = 0
    candidates: int = 0
    assigned: int = 0
    unassigned: int = 0
    # journey tasks created under the default queue's policy because task_rules.yaml no longer
    # defines the queue their request names (queue -> tasks); validation rejects such journeys.
    unknown_queues: dict[str, int] = field(default_factory=dict)
    per_operator: dict[str, int] = field(default_factory=dict)
    missing_inputs: list[str] = field(default_factory=list)


def _policies(rules: TaskRules) -> dict[str, TaskPolicy]:
    policies: dict[str, TaskPolicy] = {rule.id: rule for rule in rules.rules}
    policies.update({f"queue:{name}": policy for name, policy in rules.journey_queues.items()})
    return policies


def _load_policy_table(wh: Warehouse, policies: dict[str, TaskPolicy], rules: TaskRules) -> None:
    max_tasks = {rule.id: rule.recall.max_tasks for rule in rules.rules}
    table = pa.table({
        "policy": list(policies),
        "validity_days": [p.validity_days for p in policies.values()],
        "due_hours": [p.due_hours for p in policies.values()],
        "on_expiry": [p.on_expiry for p in policies.values()],
        "priority_weight": [p.priority_weight for p in policies.values()],
        "max_tasks": pa.array([max_tasks.get(k) for k in policies], type=pa.int64()),
    })
    wh.create_temp_table("_tk_policy", table)


def _due_rules(wh: Warehouse, rules: TaskRules, as_of: datetime) -> tuple[list, list]:
    last = dict(wh.fetch_rows("select rule, max(ran_at) from operator_task_rule_runs "
                              "where ran_at <= $as_of group by rule", {"as_of": as_of}))
    due, skipped = [], []
    for rule in rules.rules:
        if not rule.active:
            continue
        previous = last.get(rule.id)
        (due if previous is None or as_of - previous >= rule.frequency_interval else skipped).append(rule)
    return due, skipped


def run_task_rules(con: Warehouse | Any, rules: TaskRules, roster: OperatorRoster,
                   as_of: datetime, tz: ZoneInfo, may_work: Callable[[str, str], bool] | None = None) -> TaskRunStats:
    """`con` is a Warehouse (DuckDB or PostgreSQL) or a raw DuckDB connection. `may_work(operator_id,
    rule)`: whether an operator may be assigned a task of that rule (the operator role,
    crmflow/governance/operators.py); None: every roster operator may."""
    wh = as_warehouse(con)
    ensure_task_tables(wh)
    stats = TaskRunStats()
    policies = _policies(rules)
    day = as_of.astimezone(tz).date().isoformat()
    params = {"as_of": as_of, "day": day}
    with optional_inputs(wh) as missing:
        stats.missing_inputs = list(missing)
        with wh.transaction():
            _load_policy_table(wh, policies, rules)
            load_talking_points(wh, rules)
            _collect_candidates(wh, rules, as_of, params, stats)
            _allocate_and_write(wh, roster, policies, as_of, tz, params, stats, may_work)
    return stats


def _collect_candidates(wh: Warehouse, rules: TaskRules, as_of: datetime,
                        params: dict, stats: TaskRunStats) -> None:
    # 1. Expiry: open and unassigned tasks past expires_at expire; per policy they are reassigned.
    replace_temp_table(wh, "_tk_expired", "select * from operator_tasks "
                       "where status in ('open', 'unassigned') and expires_at <= $as_of", params)
    wh.execute("update operator_tasks set status = 'expired', status_updated_at = $as_of "
                "where status in ('open', 'unassigned') and expires_at <= $as_of", params)
    stats.expired = wh.scalar("select count(*) from _tk_expired")
    replace_temp_table(wh, "_tk_excluded", EXCLUDED_SQL)
    replace_temp_table(wh, "_tk_cand", f"select {null_columns(CAND_COLUMNS)} where false")
    wh.execute("""
        insert into _tk_cand
        select 'task_' || substr(md5(e.task_id || '|reassign|' || $day), 1, 20), e.user_id, e.rule, e.policy,
               'reassign', e.recall_reason, 1.0, x.operator_id, e.task_id, e.journey_id, e.step_id, e.note,
               $as_of, null, null, false
        from _tk_expired e join _tk_policy p using (policy) left join _tk_excluded x using (task_id)
        where p.on_expiry = 'reassign'""", params)
    stats.reassigned = wh.scalar("select count(*) from _tk_cand")

    # 2. Unassigned tasks still valid compete again, keeping their id, dates and excluded operator.
    wh.execute("""
        insert into _tk_cand
        select t.task_id, t.user_id, t.rule, t.policy, t.source, t.recall_reason, 1.0, x.operator_id,
               t.reassigned_from, t.journey_id, t.step_id, t.note, t.created_at, t.due_at, t.expires_at, true
        from operator_tasks t left join _tk_excluded x using (task_id) where t.status = 'unassigned'""")

    # 3. Rules due as of this run (frequency).
    due, skipped = _due_rules(wh, rules, as_of)
    stats.rules_run = [r.id for r in due]
    stats.rules_skipped = [r.id for r in skipped]
    # Real relations only: the empty stand-ins must not hide a missing input (e.g. churn scores).
    present = existing_relations(wh)
    columns = profile_columns(wh)
    for rule in due:
        recall_params = Params(values=dict(params), prefix="rc")
        sql, missing = recall_sql(rule.recall, present, recall_params, wh.dialect, columns)
        stats.missing_inputs.extend(m for m in missing if m not in stats.missing_inputs)
        before = wh.scalar("select count(*) from _tk_cand")
        wh.execute(f"""
            insert into _tk_cand
            select 'task_' || substr(md5({q(rule.id)} || '|' || r.user_id || '|' || $day), 1, 20), r.user_id,
                   {q(rule.id)}, {q(rule.id)}, 'recall', r.recall_reason, 1.0, null, null, null, null, null,
                   $as_of, null, null, false
            from ({sql}) r""", recall_params.values)
        stats.recalled[rule.id] = wh.scalar("select count(*) from _tk_cand") - before

    # 4. Journey create_task steps, once per request key.
    wh.execute(f"""
        insert into _tk_cand
        select {JOURNEY_TASK_ID}, j.user_id, 'journey:' || j.journey_id,
               case when p.policy is null then 'queue:default' else p.policy end,
               'journey', 'journey ' || j.journey_id || ' step ' || j.step_id,
               -- journeys write a word (low|normal|high|urgent, journeys/schema.py); numbers still work
               coalesce({try_cast_double("j.priority", wh.dialect)},
                        case lower(j.priority) when 'low' then 0.5 when 'high' then 1.5
                             when 'urgent' then 2.0 else 1.0 end), null, null, j.journey_id, j.step_id, j.note,
               $as_of, null, null, false
        from journey_task_requests j
        left join _tk_policy p on p.policy = 'queue:' || j.queue
        where j.requested_at <= $as_of and j.user_id is not null""", params)
    stats.journey_requests = wh.scalar("select count(*) from _tk_cand where source = 'journey'")
    stats.unknown_queues = dict(wh.fetch_rows(f"""
        select j.queue, count(*) from journey_task_requests j
        where j.requested_at <= $as_of and j.user_id is not null
          and 'queue:' || j.queue not in (select policy from _tk_policy)
          and {JOURNEY_TASK_ID} not in (select task_id from operator_tasks)
        group by j.queue order by j.queue""", params))

    # 5. One open task per customer and rule; never recreate an id that exists; priority; max_tasks.
    replace_temp_table(wh, "_tk_cand_ranked", """
        with fresh as (
            select c.*, row_number() over (partition by c.rule, c.user_id
                                           order by c.existing desc, c.source = 'reassign' desc, c.task_id) as pick
            from _tk_cand c
            where (c.existing or c.task_id not in (select task_id from operator_tasks))
              and not exists (select 1 from operator_tasks t
                            where t.status = 'open' and t.rule = c.rule and t.user_id = c.user_id)
        ),
        prioritised as (
            select d.task_id, d.user_id, d.rule, d.policy, d.source, d.recall_reason, d.priority_mult,
                   d.exclude_operator, d.reassigned_from, d.journey_id, d.step_id, d.note, d.created_at,
                   d.due_at, d.expires_at, d.existing,
                   cast(coalesce(pr.value_at_risk, rfm.monetary_value, cp.revenue, 0) as double precision)
                       * pol.priority_weight * d.priority_mult as priority,
                   pol.max_tasks, pol.validity_days, pol.due_hours
            from fresh d
            join _tk_policy pol on pol.policy = d.policy
            left join customer_priority pr on pr.user_id = d.user_id
            left join customer_rfm rfm on rfm.user_id = d.user_id
            left join customer_profile cp on cp.user_id = d.user_id
            where d.pick = 1
        ),
        ranked as (
            select p.*, row_number() over (partition by rule, source order by priority desc, task_id) as rank_in_rule
            from prioritised p
        )
        select task_id, user_id, rule, policy, source, recall_reason, priority_mult, exclude_operator,
               reassigned_from, journey_id, step_id, note, created_at, due_at, expires_at, existing, priority,
               max_tasks, validity_days, due_hours
        from ranked
        where source <> 'recall' or max_tasks is null or rank_in_rule <= max_tasks
    """)
    replace_temp_table(wh, "_tk_cand", "select * from _tk_cand_ranked")
    stats.candidates = wh.scalar("select count(*) from _tk_cand")


def _allocate_and_write(wh: Warehouse, roster: OperatorRoster, policies: dict[str, TaskPolicy],
                        as_of: datetime, tz: ZoneInfo, params: dict, stats: TaskRunStats,
                        may_work: Callable[[str, str], bool] | None = None) -> None:
    regions = pa.table({"country": pa.array([c for cs in roster.regions.values() for c in cs], pa.string()),
                        "region": pa.array([r for r, cs in roster.regions.items() for _ in cs], pa.string())})
    wh.create_temp_table("_tk_regions", regions)
    # Allocation follows this order, so ties on priority break by task_id in code-point order.
    tasks = wh.fetch_arrow(f"""
        select c.task_id, c.rule, c.policy, c.exclude_operator, r.region,
               lower(split_part(replace(p.locale, '_', '-'), '-', 1)) as language, p.industry,
               prev.operator_id as previous_owner
        from _tk_cand c
        left join customer_profile p on p.user_id = c.user_id
        left join _tk_regions r on r.country = p.country
        left join (select user_id, operator_id from (
                       select user_id, operator_id,
                              row_number() over (partition by user_id order by coalesce(assigned_at, created_at) desc,
                                                                               task_id desc) as latest
                       from operator_tasks where operator_id is not null) as owners
                   where latest = 1) prev
               on prev.user_id = c.user_id
        order by c.priority desc, {binary_order("c.task_id", wh.dialect)}
    """)
    wh.drop_table("_tk_regions")
    used_today = dict(wh.fetch_rows(
        "select operator_id, count(*) from operator_tasks where operator_id is not null "
        f"and cast(timezone({q(tz.key)}, assigned_at) as date) = cast($day as date) group by operator_id", params))
    ops = roster.operators
    capacity = np.array([op.daily_capacity - used_today.get(op.id, 0) if op.active else 0 for op in ops],
                        dtype=np.int64)
    weight = np.array([op.performance_weight for op in ops], dtype=np.float64)
    cols = {name: tasks.column(name).to_numpy(zero_copy_only=False) for name in tasks.column_names}
    matching: dict[str, Matching] = {key: policy.matching for key, policy in policies.items()}
    eligible, preference = match_matrix(ops, cols["policy"], matching, cols["region"], cols["language"],
                                        cols["industry"], cols["exclude_operator"])
    if may_work is not None and tasks.num_rows:
        # One mask per rule (rules x operators of the config), applied to all its tasks at once.
        task_rules = np.array([r or "" for r in cols["rule"]], dtype=object)
        for rule in set(task_rules.tolist()):
            allowed = np.array([may_work(op.id, rule) for op in ops], dtype=bool)
            eligible[task_rules == rule] &= allowed
    op_index = {op.id: j for j, op in enumerate(ops)}
    keep_previous = np.array([matching[k].keep_previous_owner for k in cols["policy"]], dtype=bool) \
        if tasks.num_rows else np.zeros(0, dtype=bool)
    previous = np.array([op_index.get(o, -1) if o is not None else -1 for o in cols["previous_owner"]],
                        dtype=np.int64)
    previous[~keep_previous] = -1
    owner = allocate(eligible, capacity, weight, preference, previous) if ops else \
        np.full(tasks.num_rows, -1, dtype=np.int64)
    op_ids = np.array([op.id for op in ops] + [None], dtype=object)
    assigned = pa.table({"task_id": tasks.column("task_id"),
                         "operator_id": pa.array(op_ids[owner], type=pa.string())})
    wh.create_temp_table("_tk_assigned", assigned)

    replace_temp_table(wh, "_tk_context", context_sql(wh.dialect), params)
    wh.execute("delete from operator_tasks where task_id in (select task_id from _tk_cand where existing)")
    wh.execute(f"""
        insert into operator_tasks ({TASK_COLUMNS})
        select c.task_id, c.user_id, a.operator_id, c.rule, c.policy, c.source, c.recall_reason, c.priority,
               c.created_at,
               case when a.operator_id is not null then cast($as_of as timestamptz) end,
               coalesce(c.due_at, least(coalesce(c.expires_at, cast($as_of as timestamptz) + c.validity_days * interval '1 day'),
                                        cast($as_of as timestamptz) + c.due_hours * interval '1 hour')),
               coalesce(c.expires_at, cast($as_of as timestamptz) + c.validity_days * interval '1 day'),
               case when a.operator_id is not null then 'open' else 'unassigned' end,
               $as_of, c.reassigned_from, c.journey_id, c.step_id, c.note, x.context
        from _tk_cand c
        join _tk_assigned a on a.task_id = c.task_id
        left join _tk_context x on x.task_id = c.task_id
    """, params)
    counts = owner[owner >= 0]
    stats.assigned = int(counts.size)
    stats.unassigned = int(owner.size - counts.size)
    stats.per_operator = {ops[j].id: int(n) for j, n in enumerate(np.bincount(counts, minlength=len(ops))) if n}
    for rule_id in stats.rules_run:
        created, n_assigned = wh.fetch_rows(
            "select count(*), count(a.operator_id) from _tk_cand c join _tk_assigned a on a.task_id = c.task_id "
            "where c.rule = $rule and not c.existing", {"rule": rule_id})[0]
        wh.execute("insert into operator_task_rule_runs (rule, ran_at, recalled, created, assigned) "
                   "values ($rule, $as_of, $recalled, $created, $assigned)",
                    {"rule": rule_id, "as_of": as_of, "recalled": stats.recalled.get(rule_id, 0),
                     "created": created, "assigned": n_assigned})
