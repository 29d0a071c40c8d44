-- anonymous_id -> user_id from every event up to as_of that carries both (identify calls and any
-- other call sent after login). When one anonymous_id was linked to several users (shared device),
-- the first link by time wins (ties: smallest user_id), so an anonymous_id maps to exactly one user
-- and later links never re-attribute history.
with links as (

    -- One row per (anonymous_id, user_id) pair with its first time, then the earliest pair per
    -- anonymous_id: hash aggregates over the links instead of a window sorting them all.
    select
        anonymous_id,
        user_id,
        min(event_at) as first_linked_at
    from {{ ref('stg_tracking__events') }}
    where anonymous_id is not null
        and user_id is not null
        and event_at <= {{ as_of_ts() }}
    group by anonymous_id, user_id

), first_links as (

    select anonymous_id, min(first_linked_at) as first_linked_at
    from links
    group by anonymous_id

), identity_map as (

    select links.anonymous_id, min({{ binary_collation('links.user_id') }}) as user_id, first_links.first_linked_at
    from links
    inner join first_links
        on links.anonymous_id = first_links.anonymous_id
        and links.first_linked_at = first_links.first_linked_at
    group by links.anonymous_id, first_links.first_linked_at

)

select * from identity_map
