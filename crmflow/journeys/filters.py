"""Audience filters and step conditions compiled to SQL.

Marketer text never becomes SQL: values are bound parameters ($p0, $p1, ...) and identifiers come
only from the validated profile column list, double-quoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmflow.journeys.durations import sql_interval
from crmflow.journeys.schema import RELATIVE_OPS, Audience, Condition, FieldFilter, SegmentRef

# Tags a user has now: the tags mart plus the journeys' own add_tag/remove_tag rows.
ACTIVE_TAGS_SQL = (
    "(select user_id, tag from customer_tags "
    "union all select user_id, tag from journey_tags where removed_at is null)"
)
ENGAGEMENT_EVENTS = {"delivered": ("delivered", "open", "click"), "opened": ("open", "click"), "clicked": ("click",)}


@dataclass
class Params:
    """Collects bound parameters under unique names while SQL fragments are built."""

    values: dict[str, Any] = field(default_factory=dict)
    prefix: str = "p"

    def add(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.values)}"
        self.values[name] = value
        return f"${name}"

    def add_list(self, values: list[Any]) -> str:
        return "(" + ", ".join(self.add(v) for v in values) + ")"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed(params: Params, value: Any, column_type: str) -> str:
    # Parameters arrive as VARCHAR/INTEGER etc.; cast to the column's type so dates and
    # timestamps compare as such (neither engine compares DATE with VARCHAR implicitly).
    return f"cast({params.add(value)} as {column_type})"


def _moment_of(column_type: str) -> str | None:
    """How to turn a TIMESTAMPTZ moment `{}` into the column's own type (so the column side stays
    bare and can use min/max statistics), or None for a column that is not a date or a timestamp."""
    ctype = column_type.upper()
    if ctype == "DATE":
        return "cast(timezone('UTC', {}) as date)"  # dates compare with the UTC date of the moment
    if ctype.startswith("TIMESTAMP") and ("WITH TIME ZONE" in ctype or ctype == "TIMESTAMPTZ"):
        return "{}"
    if ctype.startswith("TIMESTAMP"):
        return "timezone('UTC', {})"  # a naive timestamp is read as UTC
    return None


def is_time_column(column_type: str) -> bool:
    return _moment_of(column_type) is not None


def relative_time_sql(flt: FieldFilter, col: str, column_type: str) -> str:
    """`within` / `older_than` against the tick's as-of ($as_of; never the wall clock). within 7d:
    as_of - 7d <= col <= as_of (a future value is not "within the last 7 days"); older_than 30d:
    col < as_of - 30d. NULL matches neither."""
    moment = _moment_of(column_type)
    if moment is None:
        raise ValueError(f"operator '{flt.op}' needs a date or timestamp field; {flt.field!r} is {column_type}")
    since = moment.format(f"($as_of - {sql_interval(flt.age())})")
    if flt.op == "older_than":
        return f"{col} < {since}"
    return f"{col} >= {since} and {col} <= {moment.format('$as_of')}"


def field_filter_sql(flt: FieldFilter, alias: str, columns: dict[str, str], params: Params) -> str:
    if flt.field not in columns:
        raise ValueError(f"unknown profile field {flt.field!r}")
    col = f"{alias}.{quote_ident(flt.field)}"
    ctype = columns[flt.field]
    if flt.op in RELATIVE_OPS:
        return relative_time_sql(flt, col, ctype)
    if flt.op == "is null":
        return f"{col} is null"
    if flt.op == "is not null":
        return f"{col} is not null"
    if flt.op in ("in", "not in"):
        items = ", ".join(_typed(params, v, ctype) for v in flt.value)  # type: ignore[union-attr]
        return f"{col} {flt.op} ({items})"
    if flt.op == "between":
        low, high = flt.value  # type: ignore[misc]
        return f"{col} between {_typed(params, low, ctype)} and {_typed(params, high, ctype)}"
    return f"{col} {flt.op} {_typed(params, flt.value, ctype)}"


def _segments_sql(segments: list[SegmentRef], user_expr: str, params: Params) -> str:
    ors = " or ".join(
        f"(s.segment_family = {params.add(s.family)} and s.segment = {params.add(s.segment)})" for s in segments
    )
    return f"exists (select 1 from customer_segments s where s.user_id = {user_expr} and ({ors}))"


def audience_sql(audience: Audience, alias: str, columns: dict[str, str], params: Params,
                 clusters_available: bool = True) -> str:
    """A boolean SQL expression over customer_profile row `alias`; 'true' when no filters.

    customer_clusters is written by the intelligence stage and may not exist yet: then a
    `clusters` filter matches nobody (`clusters_available=False`; the caller reports why)."""
    uid = f"{alias}.user_id"
    parts: list[str] = []
    if audience.clusters:
        if clusters_available:
            values = params.add_list(list(audience.clusters))
            parts.append(
                f"exists (select 1 from customer_clusters cl where cl.user_id = {uid} "
                f"and (cast(cl.cluster_id as varchar) in {values} or cl.cluster_label in {values}))"
            )
        else:
            parts.append("false")
    if audience.segments:
        parts.append(_segments_sql(audience.segments, uid, params))
    if audience.lifecycle_stages:
        parts.append(
            f"exists (select 1 from customer_lifecycle lc where lc.user_id = {uid} "
            f"and lc.lifecycle_stage in {params.add_list(list(audience.lifecycle_stages))})"
        )
    if audience.value_tiers:
        parts.append(
            f"exists (select 1 from customer_value_tier vt where vt.user_id = {uid} "
            f"and vt.value_tier in {params.add_list(list(audience.value_tiers))})"
        )
    if audience.b2b_grades:
        parts.append(
            f"exists (select 1 from customer_value_tier vg where vg.user_id = {uid} "
            f"and vg.b2b_grade in {params.add_list(list(audience.b2b_grades))})"
        )
    if audience.tags:
        tags = audience.tags
        if tags.any:
            parts.append(
                f"exists (select 1 from {ACTIVE_TAGS_SQL} t where t.user_id = {uid} "
                f"and t.tag in {params.add_list(tags.any)})"
            )
        if tags.all:
            parts.append(
                f"(select count(distinct t.tag) from {ACTIVE_TAGS_SQL} t where t.user_id = {uid} "
                f"and t.tag in {params.add_list(tags.all)}) = {len(set(tags.all))}"
            )
        if tags.none:
            parts.append(
                f"not exists (select 1 from {ACTIVE_TAGS_SQL} t where t.user_id = {uid} "
                f"and t.tag in {params.add_list(tags.none)})"
            )
    for flt in audience.fields:
        parts.append(field_filter_sql(flt, alias, columns, params))
    return " and ".join(f"({p})" for p in parts) if parts else "true"


def condition_sql(cond: Condition, enrol_alias: str, columns: dict[str, str], params: Params) -> str:
    """A boolean SQL expression for one enrolment row `enrol_alias` (needs $as_of bound).

    Events and orders count from the enrolment's trigger moment up to the as-of time."""
    e = enrol_alias
    if cond.event is not None:
        return (
            f"(select count(*) from events_stitched ev where ev.user_id = {e}.user_id "
            f"and ev.event_name = {params.add(cond.event.name)} and ev.event_at > {e}.trigger_at "
            f"and ev.event_at <= $as_of) >= {int(cond.event.min_count)}"
        )
    if cond.order is not None:
        return (
            f"exists (select 1 from stg_shop__orders o where o.user_id = {e}.user_id "
            f"and o.status in {params.add_list(cond.order.status)} and o.ordered_at > {e}.trigger_at "
            f"and o.ordered_at <= $as_of)"
        )
    if cond.segment is not None:
        return _segments_sql([cond.segment], f"{e}.user_id", params)
    if cond.profile is not None:
        inner = " and ".join(field_filter_sql(f, "cp", columns, params) for f in cond.profile)
        return f"exists (select 1 from customer_profile cp where cp.user_id = {e}.user_id and {inner})"
    assert cond.engagement is not None
    events = params.add_list(list(ENGAGEMENT_EVENTS[cond.engagement.action]))
    step = params.add(cond.engagement.step)
    return (
        f"(exists (select 1 from send_ledger sl join delivery_events d on d.message_key = sl.message_key "
        f"where sl.enrolment_id = {e}.enrolment_id and sl.step_id = {step} and d.event in {events} "
        f"and d.occurred_at <= $as_of) "
        f"or exists (select 1 from send_ledger sl join delivery_events d "
        f"on d.provider_message_id = sl.provider_message_id and d.message_key is null "
        f"where sl.enrolment_id = {e}.enrolment_id and sl.step_id = {step} and d.event in {events} "
        f"and d.occurred_at <= $as_of))"
    )
