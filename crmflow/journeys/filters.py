"""Journey step conditions compiled to SQL; audiences compile in crmflow/audience.py (the one audience
language journeys, banners and task recall share).

Marketer text never becomes SQL: values are bound parameters ($p0, $p1, ...) and identifiers come
only from the validated profile column list, double-quoted.
"""

from __future__ import annotations

from crmflow.audience import Params, field_filter_sql, segments_sql
from crmflow.audience import quote_ident as quote_ident  # re-exported: dispatch quotes profile columns
from crmflow.journeys.schema import Condition

ENGAGEMENT_EVENTS = {"delivered": ("delivered", "open", "click"), "opened": ("open", "click"), "clicked": ("click",)}


def condition_sql(cond: Condition, enrol_alias: str, columns: dict[str, str], params: Params) -> str:
    """A boolean SQL expression for an active enrolment row `enrol_alias` of journey $jid (needs $jid
    and $as_of bound).

    Events and orders count from the enrolment's trigger moment up to the as-of time. Each condition is
    an uncorrelated `in (select ...)` over the set of enrolments (or users) it holds for, never a
    subquery correlated with the row: these expressions sit inside CASE and OR, where PostgreSQL runs a
    correlated subquery once per row (a scan of the events or orders each time: 308 s for one tick at
    50k users) but hashes an uncorrelated one once. NULL keys are left out of every set, so `in` is
    exactly the `exists` it replaces."""
    e = enrol_alias
    active = "x.journey_id = $jid and x.status = 'active'"
    if cond.event is not None:
        return (
            f"{e}.enrolment_id in (select x.enrolment_id from journey_enrolments x "
            f"join events_stitched ev on ev.user_id = x.user_id "
            f"where {active} and ev.event_name = {params.add(cond.event.name)} "
            f"and ev.event_at > x.trigger_at and ev.event_at <= $as_of "
            f"group by x.enrolment_id having count(*) >= {int(cond.event.min_count)})"
        )
    if cond.order is not None:
        return (
            f"{e}.enrolment_id in (select x.enrolment_id from journey_enrolments x "
            f"join stg_shop__orders o on o.user_id = x.user_id "
            f"where {active} and o.status in {params.add_list(cond.order.status)} "
            f"and o.ordered_at > x.trigger_at and o.ordered_at <= $as_of)"
        )
    if cond.segment is not None:
        return segments_sql([cond.segment], f"{e}.user_id", params)
    if cond.profile is not None:
        inner = " and ".join(field_filter_sql(f, "cp", columns, params) for f in cond.profile)
        return f"{e}.user_id in (select cp.user_id from customer_profile cp where cp.user_id is not null and {inner})"
    assert cond.engagement is not None
    events = params.add_list(list(ENGAGEMENT_EVENTS[cond.engagement.action]))
    step = params.add(cond.engagement.step)
    engaged = (f"where sl.journey_id = $jid and sl.enrolment_id is not null and sl.step_id = {step} "
               f"and d.event in {events} and d.occurred_at <= $as_of")
    return (
        f"({e}.enrolment_id in (select sl.enrolment_id from send_ledger sl "
        f"join delivery_events d on d.message_key = sl.message_key {engaged}) "
        f"or {e}.enrolment_id in (select sl.enrolment_id from send_ledger sl join delivery_events d "
        f"on d.provider_message_id = sl.provider_message_id and d.message_key is null {engaged}))"
    )
