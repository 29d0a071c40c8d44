-- The measures B2B grading scores, one row per business customer as of var('as_of'):
-- revenue (purchases), referrals made (registered users up to as_of whose referred_by is this
-- user), breadth (distinct categories bought), tenure (days since registration, else first
-- order), refunded and cancelled/overdue order counts.
with business as (

    select user_id, registered_at, first_order_at, revenue
    from {{ ref('customer_profile') }}
    where customer_type = 'business'

), referrals as (

    select referred_by as user_id, count(*) as referrals_made
    from {{ ref('stg_app__registrations') }}
    where referred_by is not null
        and registered_at <= {{ as_of_ts() }}
    group by referred_by

), breadth as (

    select user_id, count(*) as distinct_categories
    from {{ ref('int_customer__category_spend') }}
    group by user_id

), order_facts as (

    select user_id, refunded_orders, cancelled_orders
    from {{ ref('int_customer__order_facts') }}

), metrics as (

    select
        business.user_id,
        business.revenue,
        coalesce(referrals.referrals_made, 0) as referrals_made,
        coalesce(breadth.distinct_categories, 0) as distinct_categories,
        coalesce({{ dbt.datediff(business_date('coalesce(business.registered_at, business.first_order_at)'),
            as_of_date(), 'day') }}, 0) as tenure_days,
        coalesce(order_facts.refunded_orders, 0) as refunded_orders,
        coalesce(order_facts.cancelled_orders, 0) as cancelled_orders

    from business
    left join referrals on business.user_id = referrals.user_id
    left join breadth on business.user_id = breadth.user_id
    left join order_facts on business.user_id = order_facts.user_id

)

select * from metrics
