-- One row per identified user and business calendar day with at least one stitched event up to
-- as_of, with the per-day facts every event-driven model needs. A table: this is the one pass over
-- all events (about 20M rows at 1M users) that the activity days, customer_profile's last event
-- and the tag features (mobile_only, cart abandons) used to make separately, each through the
-- events_stitched view.
--   event_count             events that day
--   last_event_at           the latest event time that day
--   device_events           events with a device type (events without one, e.g. server-side
--                           identify calls, are ignored by mobile_only)
--   mobile_events           of those, events from a device type in var seg_mobile_device_types
--   last_cart_abandoned_at  the latest event named in var seg_cart_abandoned_events that day
--
-- Incremental (docs/data-contracts.md section 3): a run recomputes only the (user, day) pairs that
-- events loaded since the previous build can change, and deletes+inserts them. The post-hook keeps
-- the watermark (max raw_events._loaded_at and the row count up to it) in <this>__watermark.
-- Changed events: loaded after the watermark, or with event_at after the table's latest event
-- (loaded earlier but past the previous as_of). Their pairs are recomputed, and for every
-- anonymous_id whose identity_map link now comes from a changed event, the days of its anonymous
-- events for every user it was ever linked to (the old and the new owner). A pair left without
-- events is written with event_count 0 and deleted by the post-hook. Full rebuild (every pair)
-- instead when the watermark is missing, rows were loaded at or before the watermark since (a
-- back-dated ingest), or as_of moved before the table's latest event. Changing business_timezone
-- or the seg_* vars needs --full-refresh.
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'activity_date'],
    on_schema_change='fail',
    post_hook=[] if target.type == 'spark' else [
        "delete from {{ this }} where event_count = 0",
        "{{ replace_table_as(this.incorporate(path={'identifier': this.identifier ~ '__watermark'}),
            'select max(_loaded_at) as loaded_wm, count(*) as rows_loaded from ' ~ source('raw', 'raw_events')) }}",
    ],
) }}

{%- set mode = 'full' -%}
{%- if is_incremental() and execute -%}
    {%- set wm_rel = adapter.get_relation(database=this.database, schema=this.schema,
                                          identifier=this.identifier ~ '__watermark') -%}
    {%- if wm_rel is not none -%}
        {%- set wm = run_query(
            "select cast(w.loaded_wm as varchar), cast(t.event_wm as varchar),
                    w.loaded_wm is not null and t.event_wm is not null
                    and t.event_wm <= " ~ as_of_ts() ~ "
                    and (select count(*) from " ~ source('raw', 'raw_events') ~ " where _loaded_at <= w.loaded_wm) = w.rows_loaded
             from " ~ wm_rel ~ " w, (select max(last_event_at) as event_wm from " ~ this ~ ") t").rows[0] -%}
        {%- if wm[2] -%}
            {%- set mode = 'incremental' -%}
            {%- set loaded_wm = wm[0] -%}
            {%- set event_wm = wm[1] -%}
        {%- else -%}
            {%- set mode = 'rebuild' -%}
        {%- endif -%}
    {%- else -%}
        {%- set mode = 'rebuild' -%}
    {%- endif -%}
{%- endif -%}

{%- set pairs_ctes -%}
events as {{ cte_not_materialized() }} (

    select user_id, anonymous_id, event_name, event_at, device_type, _loaded_at
    from {{ ref('stg_tracking__events') }}
    where event_at <= {{ as_of_ts() }}

), identity_map as (

    select anonymous_id, user_id, first_linked_at from {{ ref('identity_map') }}

), changed as (

    select user_id, anonymous_id, event_at from events
    where _loaded_at > cast('{{ loaded_wm }}' as {{ type_timestamptz() }})
        or event_at > cast('{{ event_wm }}' as {{ type_timestamptz() }})

), relinked_events as (

    -- every event of an anonymous_id whose winning link is a changed event
    select anonymous_id, user_id, event_at from events
    where anonymous_id in (
        select changed.anonymous_id from changed
        inner join identity_map
            on changed.anonymous_id = identity_map.anonymous_id
            and changed.event_at = identity_map.first_linked_at
        where changed.user_id is not null
    )

), pair_events as (

    select coalesce(changed.user_id, identity_map.user_id) as user_id, changed.event_at
    from changed
    left join identity_map on changed.anonymous_id = identity_map.anonymous_id
    union all
    select linked.user_id, anon.event_at
    from relinked_events as anon
    inner join (select distinct anonymous_id, user_id from relinked_events where user_id is not null) as linked
        on anon.anonymous_id = linked.anonymous_id
    where anon.user_id is null

)
{%- endset -%}

{%- if mode == 'incremental' -%}
    {%- set bounds = run_query("with " ~ pairs_ctes ~ " select cast(" ~ dbt.dateadd('day', -2, 'min(event_at)')
        ~ " as varchar), cast(" ~ dbt.dateadd('day', 2, 'max(event_at)')
        ~ " as varchar) from pair_events where user_id is not null").rows[0] -%}
    {%- if bounds[0] is none -%}
        {%- set mode = 'nothing' -%}
    {%- endif -%}
{%- endif -%}

with
{%- if mode in ('incremental', 'nothing') %}
{{ pairs_ctes }}, pairs as (

    select distinct user_id, {{ business_date('event_at') }} as activity_date
    from pair_events where user_id is not null

), scoped as (

    select
        coalesce(events.user_id, identity_map.user_id) as user_id,
        events.event_name,
        events.event_at,
        lower(events.device_type) as device_type,
        {{ business_date('events.event_at') }} as activity_date
    from events
    left join identity_map on events.anonymous_id = identity_map.anonymous_id
    {%- if mode == 'incremental' %}
    where events.event_at >= cast('{{ bounds[0] }}' as {{ type_timestamptz() }})
        and events.event_at <= cast('{{ bounds[1] }}' as {{ type_timestamptz() }})
    {%- else %}
    where false
    {%- endif %}

), stitched as (

    -- exists on plain columns: DuckDB plans it as a semi join (on an expression, a mark join)
    select scoped.* from scoped
    where exists (
        select 1 from pairs
        where pairs.user_id = scoped.user_id and pairs.activity_date = scoped.activity_date
    )

),
{%- else %} stitched as (

    select user_id, event_name, event_at, lower(device_type) as device_type
    from {{ ref('events_stitched') }}
    where user_id is not null

),
{%- endif %} event_days as (

    select
        user_id,
        {{ business_date('event_at') }} as activity_date,
        count(*) as event_count,
        max(event_at) as last_event_at,
        sum(case when device_type is not null then 1 else 0 end) as device_events,
        sum(case when device_type in {{ sql_in_list(var('seg_mobile_device_types', ['mobile', 'ios', 'android', 'tablet'])) }}
            then 1 else 0 end) as mobile_events,
        max(case when event_name in {{ sql_in_list(var('seg_cart_abandoned_events', ['cart_abandoned', 'Cart Abandoned'])) }}
            then event_at end) as last_cart_abandoned_at

    from stitched
    group by user_id, {{ business_date('event_at') }}

)
{%- if mode == 'full' %}

select * from event_days
{%- else %}
{%- if mode == 'rebuild' %}, pairs as (

    select user_id, activity_date from {{ this }}

)
{%- endif %}

-- pairs left without events: written with event_count 0 (the delete+insert removes the old row),
-- then deleted by the post-hook
select
    pairs.user_id,
    pairs.activity_date,
    coalesce(event_days.event_count, 0) as event_count,
    event_days.last_event_at,
    coalesce(event_days.device_events, 0) as device_events,
    coalesce(event_days.mobile_events, 0) as mobile_events,
    event_days.last_cart_abandoned_at
from pairs
left join event_days
    on pairs.user_id = event_days.user_id and pairs.activity_date = event_days.activity_date
union all
select event_days.* from event_days
where not exists (
    select 1 from pairs where pairs.user_id = event_days.user_id and pairs.activity_date = event_days.activity_date
)
{%- endif %}
