-- Registration -> first purchase -> repeat purchase, by acquisition_channel (null -> 'unknown')
-- plus one row 'all'. Users who registered up to the as-of; purchases counted up to the as-of.
--   first_order_users  registered users with 1+ purchases; repeat_order_users with 2+ purchases
--   registration_to_first_order_rate = first_order_users / registered_users
--   first_to_repeat_order_rate       = repeat_order_users / first_order_users
--   registration_to_repeat_order_rate = repeat_order_users / registered_users
with registered as (

    select
        coalesce(acquisition_channel, 'unknown') as acquisition_channel,
        order_count
    from {{ ref('customer_profile') }}
    where registered_at is not null

), by_channel as (

    select
        acquisition_channel,
        count(*) as registered_users,
        sum(case when order_count >= 1 then 1 else 0 end) as first_order_users,
        sum(case when order_count >= 2 then 1 else 0 end) as repeat_order_users
    from registered
    group by acquisition_channel

), overall as (

    select
        'all' as acquisition_channel,
        count(*) as registered_users,
        sum(case when order_count >= 1 then 1 else 0 end) as first_order_users,
        sum(case when order_count >= 2 then 1 else 0 end) as repeat_order_users
    from registered

), combined as (

    select * from by_channel
    union all
    select * from overall

), final as (

    select
        acquisition_channel,
        registered_users,
        coalesce(first_order_users, 0) as first_order_users,
        coalesce(repeat_order_users, 0) as repeat_order_users,
        {{ round_double('cast(first_order_users as ' ~ kpi_double() ~ ') / nullif(registered_users, 0)', 4) }}
            as registration_to_first_order_rate,
        {{ round_double('cast(repeat_order_users as ' ~ kpi_double() ~ ') / nullif(first_order_users, 0)', 4) }}
            as first_to_repeat_order_rate,
        {{ round_double('cast(repeat_order_users as ' ~ kpi_double() ~ ') / nullif(registered_users, 0)', 4) }}
            as registration_to_repeat_order_rate,
        {{ as_of_ts() }} as as_of
    from combined

)

select * from final
