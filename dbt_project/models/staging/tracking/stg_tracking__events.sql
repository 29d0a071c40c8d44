-- Tracking events renamed to the contract; context fields (Segment spec paths) lifted to columns.
-- Blank ids become null so identity stitching never links on an empty string.
with source as (

    select * from {{ source('raw', 'raw_events') }}

), renamed as (

    select
        message_id,
        lower(type) as event_type,
        event as event_name,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(anonymous_id), '') as anonymous_id,
        event_at,
        properties,
        context,
        {{ json_text('context', ['locale']) }} as locale,
        {{ json_text('context', ['timezone']) }} as timezone,
        {{ json_text('context', ['device', 'type']) }} as device_type,
        coalesce(
            {{ json_text('context', ['campaign', 'source']) }},
            {{ json_text('properties', ['utm_source']) }}
        ) as utm_source,
        coalesce(
            {{ json_text('context', ['campaign', 'name']) }},
            {{ json_text('properties', ['utm_campaign']) }}
        ) as utm_campaign,
        _source_file,
        _loaded_at

    from source

)

select * from renamed
