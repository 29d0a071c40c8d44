-- sum(customer_profile.revenue) equals the sum of purchase amounts in staging up to as_of, to the
-- cent: no purchase is lost or double counted by the user union and joins. Returns a row on mismatch.
with profile_revenue as (

    select coalesce(sum(revenue), 0) as total from {{ ref('customer_profile') }}

), staging_revenue as (

    select coalesce(sum(amount), 0) as total
    from {{ ref('stg_shop__orders') }}
    where ordered_at <= {{ as_of_ts() }}
        and status in {{ sql_in_list(var('paid_order_statuses')) }}
        and amount > 0

)

select profile_revenue.total as profile_total, staging_revenue.total as staging_total
from profile_revenue
cross join staging_revenue
where cast(profile_revenue.total as decimal(18, 2)) <> cast(staging_revenue.total as decimal(18, 2))
