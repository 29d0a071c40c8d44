-- anonymous_id -> user_id from every event up to as_of that carries both (identify calls and any
-- other call sent after login). When one anonymous_id was linked to several users (shared device),
-- the first link by time wins (ties: smallest user_id), so an anonymous_id maps to exactly one user
-- and later links never re-attribute history.
with links as (

    select
        anonymous_id,
        user_id,
        event_at
    from {{ ref('stg_tracking__events') }}
    where anonymous_id is not null
        and user_id is not null
        and event_at <= {{ as_of_ts() }}

), ranked as (

    select
        anonymous_id,
        user_id,
        event_at as first_linked_at,
        row_number() over (partition by anonymous_id order by event_at, user_id) as link_rank

    from links

), identity_map as (

    select anonymous_id, user_id, first_linked_at
    from ranked
    where link_rank = 1

)

select * from identity_map
