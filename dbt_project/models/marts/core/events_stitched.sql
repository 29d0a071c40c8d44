-- A view, not a table: copying every event (with its JSON) each run was the slowest dbt model
-- (about 26 s at 100k users; the rows and their JSON already sit in raw_events), while its readers
-- use a few narrow columns and the join to identity_map is cheap. Same rows as the table was.
{{ config(materialized='view') }}
-- Every event up to as_of with user_id resolved: the event's own user_id, else the user its
-- anonymous_id was first linked to (identity_map). user_id stays null for never-identified devices.
with events as (

    select * from {{ ref('stg_tracking__events') }}
    where event_at <= {{ as_of_ts() }}

), identity_map as (

    select * from {{ ref('identity_map') }}

), stitched as (

    select
        events.message_id,
        coalesce(events.user_id, identity_map.user_id) as user_id,
        events.anonymous_id,
        events.event_type,
        events.event_name,
        events.event_at,
        events.device_type,
        events.properties,
        events.context

    from events
    left join identity_map on events.anonymous_id = identity_map.anonymous_id

)

select * from stitched
