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
with events as (

    select
        user_id,
        event_name,
        event_at,
        lower(device_type) as device_type
    from {{ ref('events_stitched') }}
    where user_id is not null

), event_days as (

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

    from events
    group by user_id, {{ business_date('event_at') }}

)

select * from event_days
