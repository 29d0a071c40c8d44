"""Recall: the named predicates of task_rules.yaml as SQL over the customer marts.

Each predicate yields (user_id, recall_reason). Marketers choose predicates and parameters; they
never write SQL. Parameters are typed by pydantic and strings are quoted here, so config cannot
inject SQL. A predicate whose input table is missing recalls nobody (reported by the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from crmflow.audience import Audience, B2bGrade, Params, ValueTier, audience_sql, missing_relations
from crmflow.journeys.columns import PROFILE_COLUMN_TYPES
from crmflow.tasks.config import (
    GradeDowngrade,
    HasTag,
    HighValueAtRisk,
    InSegment,
    LifecycleStage,
    NewB2BLead,
    OpenSupportComplaint,
    Recall,
)
from crmflow.warehouse.dialect import round_double

EMPTY = "select cast(null as varchar) as user_id, cast(null as varchar) as recall_reason where false"


def q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def in_list(values: Sequence[str]) -> str:
    return "(" + ", ".join(q(v) for v in values) + ")"


def _days_before_as_of(days: int) -> str:
    return f"cast($as_of as timestamptz) - interval '{int(days)} days'"


def _rank_sql(column: str, best_first: tuple[str, ...]) -> str:
    """1 for the best value of an ordered attribute (crmflow/audience.py ValueTier, B2bGrade), 2 next, ..."""
    return f"case {column} " + " ".join(f"when {q(v)} then {i}" for i, v in enumerate(best_first, 1)) + " end"


def predicate_sql(recall: Recall, present: set[str], dialect: str = "duckdb") -> tuple[str, list[str]]:
    """(SQL with a $as_of parameter, tables it needed but did not find); portable SQL."""
    p = recall.predicate
    if isinstance(p, HighValueAtRisk):
        if "customer_churn_scores" in present:
            rounded = round_double("s.churn_probability", 2, dialect)
            base = (f"select s.user_id, 'churn risk ' || cast({rounded} as varchar) as recall_reason "
                    f"from customer_churn_scores s where s.churn_probability >= {p.min_churn_probability}")
        elif "customer_lifecycle" in present:
            base = (f"select user_id, 'lifecycle ' || lifecycle_stage as recall_reason from customer_lifecycle "
                    f"where lifecycle_stage in {in_list(p.fallback_stages)}")
        else:
            return EMPTY, ["customer_churn_scores", "customer_lifecycle"]
        if p.min_revenue > 0:
            if "customer_profile" not in present:
                return EMPTY, ["customer_profile"]
            base = (f"select b.* from ({base}) b join customer_profile cp using (user_id) "
                    f"where cp.revenue >= {p.min_revenue}")
        return base, []
    if isinstance(p, NewB2BLead):
        if "customer_profile" not in present:
            return EMPTY, ["customer_profile"]
        return (f"select user_id, 'new business lead' as recall_reason from customer_profile "
                f"where customer_type = 'business' and coalesce(order_count, 0) <= {p.max_orders} "
                f"and registered_at > {_days_before_as_of(p.within_days)} "
                f"and registered_at <= cast($as_of as timestamptz)"), []
    if isinstance(p, GradeDowngrade):
        if "customer_value_tier_history" not in present:
            return EMPTY, ["customer_value_tier_history"]
        # Grades as ranks: lower is better (A=1 .. E=5; high=1, medium=2, low=3).
        return f"""
            with ranked as (
                select user_id, valid_from, b2b_grade, value_tier,
                       {_rank_sql("b2b_grade", get_args(B2bGrade))} as grade_rank,
                       {_rank_sql("value_tier", get_args(ValueTier))} as tier_rank
                from customer_value_tier_history
                where valid_from <= cast($as_of as timestamptz)
            ),
            changes as (
                select *, lag(grade_rank) over w as prev_grade_rank, lag(tier_rank) over w as prev_tier_rank,
                       lag(b2b_grade) over w as prev_grade, lag(value_tier) over w as prev_tier
                from ranked window w as (partition by user_id order by valid_from)
            )
            select user_id,
                   min(case when grade_rank > prev_grade_rank then 'grade ' || prev_grade || ' -> ' || b2b_grade
                                  else 'tier ' || prev_tier || ' -> ' || value_tier end) as recall_reason
            from changes
            where valid_from > {_days_before_as_of(p.within_days)}
              and (grade_rank > prev_grade_rank or tier_rank > prev_tier_rank)
            group by user_id""", []
    if isinstance(p, OpenSupportComplaint):
        if "events_stitched" not in present:
            return EMPTY, ["events_stitched"]
        return f"""
            with tickets as (
                select user_id, event_name, event_at, properties->>'ticket_id' as ticket_id
                from events_stitched
                where user_id is not null and event_at <= cast($as_of as timestamptz)
                  and event_name in ('support_ticket_opened', 'support_ticket_closed')
            ),
            opened as (
                select * from tickets where event_name = 'support_ticket_opened'
                  and event_at > {_days_before_as_of(p.within_days)}
            )
            select o.user_id,
                   'open support ticket since ' || cast(cast(min(o.event_at) as date) as varchar) as recall_reason
            from opened o
            where not exists (
                select 1 from tickets c
                where c.event_name = 'support_ticket_closed' and c.user_id = o.user_id and c.event_at >= o.event_at
                  and (o.ticket_id is null or c.ticket_id is null or c.ticket_id = o.ticket_id))
            group by o.user_id""", []
    if isinstance(p, LifecycleStage):
        if "customer_lifecycle" not in present:
            return EMPTY, ["customer_lifecycle"]
        return (f"select user_id, 'lifecycle ' || lifecycle_stage as recall_reason from customer_lifecycle "
                f"where lifecycle_stage in {in_list(p.stages)}"), []
    if isinstance(p, InSegment):
        if "customer_segments" not in present:
            return EMPTY, ["customer_segments"]
        return (f"select user_id, 'segment ' || min(segment_family || ':' || segment) as recall_reason "
                f"from customer_segments where segment_family || ':' || segment in {in_list(p.segments)} "
                f"group by user_id"), []
    if isinstance(p, HasTag):
        if "customer_tags" not in present:
            return EMPTY, ["customer_tags"]
        return (f"select user_id, 'tag ' || min(tag) as recall_reason from customer_tags "
                f"where tag in {in_list(p.tags)} group by user_id"), []
    raise TypeError(f"unknown recall predicate {p!r}")


def recall_sql(recall: Recall, present: set[str], params: Params, dialect: str = "duckdb",
               columns: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Predicate plus filters: (SQL yielding distinct user_id, recall_reason; missing tables).

    The filters are the audience language of journeys and banners (crmflow/audience.py): a filter on
    a table that does not exist matches nobody, as there. Their values are bound into `params`, the
    statement's parameters (with $as_of, which relative-time filters count back from)."""
    sql, missing = predicate_sql(recall, present, dialect)
    f = recall.filters
    if f == Audience():
        pass
    elif "customer_profile" not in present:
        return EMPTY, [*missing, "customer_profile"]
    else:
        missing += [m for m in missing_relations(f, present) if m not in missing]
        where = audience_sql(f, "p", columns if columns is not None else dict(PROFILE_COLUMN_TYPES), params, present)
        sql = (f"select r.* from ({sql}) r where exists "
               f"(select 1 from customer_profile p where p.user_id = r.user_id and {where})")
    return f"select user_id, min(recall_reason) as recall_reason from ({sql}) as recalled " \
           f"where user_id is not null group by user_id", missing
