-- Banner click-through per slot, creative and customer segment, from banner_viewed / banner_clicked
-- tracking events up to as_of (properties.slot, properties.creative_id). Segment = the customer's
-- current segment per family (customer_segments); the family 'all' row counts every event, including
-- anonymous visitors and users without a segment, so totals never depend on the join.
with banner_events as (

    select
        user_id,
        coalesce(user_id, 'anon:' || anonymous_id) as viewer_id,
        event_name,
        event_at,
        {{ json_text('properties', ['slot']) }} as slot,
        {{ json_text('properties', ['creative_id']) }} as creative_id
    from {{ ref('events_stitched') }}
    where event_name in ('banner_viewed', 'banner_clicked')
      and event_at <= {{ as_of_ts() }}

), identified as (

    select * from banner_events
    where slot is not null and creative_id is not null

), viewer_events as (

    -- One row per slot, creative and viewer first, so the segment join and the distinct counts
    -- work on viewers rather than on every event (a viewer has one segment per family).
    select
        slot,
        creative_id,
        viewer_id,
        user_id,
        count(case when event_name = 'banner_viewed' then 1 end) as impressions,
        count(case when event_name = 'banner_clicked' then 1 end) as clicks,
        min(event_at) as first_event_at,
        max(event_at) as last_event_at
    from identified
    group by slot, creative_id, viewer_id, user_id

), by_segment as (

    select
        viewer_events.*,
        segments.segment_family,
        segments.segment
    from viewer_events
    inner join {{ ref('customer_segments') }} as segments on viewer_events.user_id = segments.user_id

), all_events as (

    select viewer_events.*, 'all' as segment_family, 'all' as segment
    from viewer_events

), combined as (

    select * from all_events
    union all
    select * from by_segment

), aggregated as (

    -- Rows are unique per viewer within a group, so counting viewers is counting distinct viewers.
    select
        slot,
        creative_id,
        segment_family,
        segment,
        cast(sum(impressions) as {{ dbt.type_bigint() }}) as impressions,
        cast(sum(clicks) as {{ dbt.type_bigint() }}) as clicks,
        count(case when impressions > 0 then viewer_id end) as unique_viewers,
        count(case when clicks > 0 then viewer_id end) as unique_clickers,
        min(first_event_at) as first_event_at,
        max(last_event_at) as last_event_at
    from combined
    group by slot, creative_id, segment_family, segment

)

select
    slot,
    creative_id,
    segment_family,
    segment,
    impressions,
    clicks,
    unique_viewers,
    unique_clickers,
    case when impressions > 0 then cast(clicks as {{ type_double() }}) / impressions end as ctr,
    case when unique_viewers > 0 then cast(unique_clickers as {{ type_double() }}) / unique_viewers end as viewer_ctr,
    first_event_at,
    last_event_at,
    {{ as_of_ts() }} as as_of
from aggregated
