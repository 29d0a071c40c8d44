"""Entry triggers compiled to SQL: each yields (user_id, entry_key, trigger_at) for the window
($start, $as_of], one row per user (the latest trigger)."""

from __future__ import annotations

from crmflow.audience import Params
from crmflow.journeys.durations import sql_interval
from crmflow.journeys.schema import (
    ATTRIBUTE_ORDER,
    DateTrigger,
    EventTrigger,
    SegmentTrigger,
    TransitionTrigger,
)
from crmflow.journeys.sql import TZ_TABLE

HISTORY_TABLE = {
    "lifecycle_stage": "customer_lifecycle_history",
    "value_tier": "customer_value_tier_history",
    "b2b_grade": "customer_value_tier_history",
}


def latest_per_user(candidates_sql: str) -> str:
    """The latest trigger of each user among (user_id, entry_key, trigger_at) rows (no `qualify`:
    PostgreSQL has none); ties on the moment go to the highest entry_key."""
    return f"""
        select user_id, entry_key, trigger_at from (
            select c.user_id, c.entry_key, c.trigger_at,
                   row_number() over (partition by c.user_id
                                      order by c.trigger_at desc nulls last, c.entry_key desc nulls last) as rn
            from ({candidates_sql}) c
        ) ranked where rn = 1"""


def tables_for(trigger: object) -> list[str]:
    if isinstance(trigger, SegmentTrigger):
        return ["customer_segment_history"]
    if isinstance(trigger, TransitionTrigger):
        return [HISTORY_TABLE[trigger.attribute]]
    if isinstance(trigger, EventTrigger):
        return ["events_stitched"] + (["stg_shop__orders"] if trigger.without and trigger.without.order else [])
    return ["customer_profile"]


def entrants_sql(trigger: object, params: Params) -> str:
    if isinstance(trigger, SegmentTrigger):
        return latest_per_user(f"""
            select user_id, cast(valid_from as varchar) as entry_key, valid_from as trigger_at
            from customer_segment_history
            where segment_family = {params.add(trigger.family)} and segment = {params.add(trigger.segment)}
              and valid_from > $start and valid_from <= $as_of
              and (valid_to is null or valid_to > $as_of)""")
    if isinstance(trigger, TransitionTrigger):
        return _transition_sql(trigger, params)
    if isinstance(trigger, EventTrigger):
        return _event_sql(trigger, params)
    assert isinstance(trigger, DateTrigger)
    return _date_sql(trigger, params)


def _transition_sql(trigger: TransitionTrigger, params: Params) -> str:
    table = HISTORY_TABLE[trigger.attribute]
    col = trigger.attribute
    conds = ["valid_from > $start", "valid_from <= $as_of", "prev is not null", "prev is distinct from value"]
    if trigger.from_:
        conds.append(f"prev in {params.add_list(trigger.from_)}")
    if trigger.to:
        conds.append(f"value in {params.add_list(trigger.to)}")
    if trigger.direction != "any":
        op = ">" if trigger.direction == "up" else "<"
        conds.append(f"{_rank_sql('value', col, params)} {op} {_rank_sql('prev', col, params)}")
    return latest_per_user(f"""
        with changed as (
            select distinct user_id from {table} where valid_from > $start and valid_from <= $as_of
        ),
        history as (
            select h.user_id, h.{col} as value, h.valid_from,
                   lag(h.{col}) over (partition by h.user_id order by h.valid_from) as prev
            from {table} h join changed using (user_id)
        )
        select user_id, cast(valid_from as varchar) as entry_key, valid_from as trigger_at
        from history where {' and '.join(conds)}""")


def _rank_sql(expr: str, attribute: str, params: Params) -> str:
    """Position of a value in the attribute's order (1 = lowest), NULL for a value not in it."""
    whens = " ".join(f"when {params.add(v)} then {i}" for i, v in enumerate(ATTRIBUTE_ORDER[attribute], 1))
    return f"(case {expr} {whens} end)"


def _event_sql(trigger: EventTrigger, params: Params) -> str:
    name = params.add(trigger.event)
    # Events arrive in batches after they happen (a day's file lands after the morning tick), so the
    # window reaches `lookback` behind the previous tick; an event seen twice has the same
    # entry_key, hence the same enrolment_id, and does not enrol twice.
    late = sql_interval(trigger.lookback)
    if trigger.without is None:
        return latest_per_user(f"""
            select user_id, message_id as entry_key, event_at as trigger_at
            from events_stitched
            where event_name = {name} and user_id is not null and event_at > $start - {late} and event_at <= $as_of""")
    # "Event, then no follow-up within X": the entry happens X after the event, once X has passed.
    delay = sql_interval(trigger.without.within)
    if trigger.without.order:
        follow = (
            f"select 1 from stg_shop__orders o where o.user_id = ev.user_id "
            f"and o.ordered_at > ev.event_at and o.ordered_at <= ev.event_at + {delay}"
        )
    else:
        follow = (
            f"select 1 from events_stitched f where f.user_id = ev.user_id "
            f"and f.event_name = {params.add(trigger.without.event)} "
            f"and f.event_at > ev.event_at and f.event_at <= ev.event_at + {delay}"
        )
    return latest_per_user(f"""
        select ev.user_id, ev.message_id as entry_key, ev.event_at as trigger_at
        from events_stitched ev
        where ev.event_name = {name} and ev.user_id is not null
          and ev.event_at > $start - {late} - {delay} and ev.event_at <= $as_of - {delay}
          and not exists ({follow})""")


def _date_sql(trigger: DateTrigger, params: Params) -> str:
    at = params.add(trigger.at.strftime("%H:%M:%S"))
    offset = int(trigger.offset_days)
    tz = "coalesce(vtz.name, $default_tz)"
    if trigger.attribute == "registered_at":
        base = f"cast(timezone({tz}, p.registered_at) as date)"
    else:
        base = f"p.{trigger.attribute}"
    profile = f"""
        select p.user_id, {tz} as tz, {base} as d
        from customer_profile p left join {TZ_TABLE} vtz on vtz.name = p.timezone
        where p.{trigger.attribute} is not null"""
    if trigger.mode == "exact":
        dates = "select user_id, tz, d + $offset as target_date from profile_dates"
    else:
        # Anniversary in the years around the as-of (local years differ from UTC by < 1 day);
        # 29 February falls on 28 February in other years.
        min_years = 1 if trigger.attribute == "registered_at" else 0
        month, day = _part("month", "d"), _part("day", "d")
        dates = f"""
            select user_id, tz,
                   make_date(y, {month}, case when {month} = 2 and {day} = 29
                       and not (y % 4 = 0 and (y % 100 <> 0 or y % 400 = 0)) then 28 else {day} end)
                   + $offset as target_date
            from profile_dates,
                 (select {_part("year", "$as_of")} + dy as y from (values (-1), (0), (1)) as around(dy)) years
            where y - {_part("year", "d")} >= {min_years}"""
    params.values["offset"] = offset
    return latest_per_user(f"""
        with profile_dates as ({profile}),
        candidates as ({dates}),
        timed as (
            select user_id, cast(target_date as varchar) as entry_key,
                   timezone(tz, target_date + cast({at} as time)) as trigger_at
            from candidates
        )
        select user_id, entry_key, trigger_at from timed
        where trigger_at > $start and trigger_at <= $as_of""")


def _part(field: str, expr: str) -> str:
    """A date part as an integer (year(), month() and day() are DuckDB-only)."""
    return f"cast(extract({field} from {expr}) as integer)"
