-- One row per customer_profile user with every field a tag rule can test (catalogue: macro
-- seg_tag_fields, crmflow/tags.py FIELDS), including the behavioural predicates:
--   mobile_only          at least one tracked event with a device type, and every such event came
--                        from a device type in var seg_mobile_device_types (events without a
--                        device type, e.g. server-side identify calls, are ignored)
--   birthday_this_month  month of birth_date = month of the as-of date (business time zone)
--   discount_order_share share of the user's purchases (with item lines) whose amount is below the
--                        sum of their line amounts, i.e. a discount or voucher was applied
--   days_since_unconverted_cart_abandon  business days since the latest cart-abandon event
--                        (var seg_cart_abandoned_events) with no order of the user after it
with profile as (

    select * from {{ ref('customer_profile') }}

), lifecycle as (

    select user_id, lifecycle_stage from {{ ref('customer_lifecycle') }}

), rfm as (

    select user_id, rfm_segment from {{ ref('customer_rfm') }}

), value_tier as (

    select user_id, value_tier, b2b_grade from {{ ref('customer_value_tier') }}

), event_days as (

    -- Per user and day, from the one pass over the stitched events (int_customer__event_days).
    select * from {{ ref('int_customer__event_days') }}

), devices as (

    select
        user_id,
        sum(mobile_events) as mobile_events,
        sum(device_events) as device_events
    from event_days
    group by user_id

), orders as (

    select * from {{ ref('int_customer__orders') }}

), last_order as (

    -- The user's latest order in any status up to as_of.
    select user_id, last_any_order_at as last_ordered_at
    from {{ ref('int_customer__order_facts') }}

), cart_abandons as (

    -- Some abandon has no order after it exactly when the latest one has none, and the latest
    -- such abandon is then the latest abandon itself.
    select abandons.user_id, abandons.last_abandoned_at
    from (
        select user_id, max(last_cart_abandoned_at) as last_abandoned_at
        from event_days
        group by user_id
    ) as abandons
    left join last_order on abandons.user_id = last_order.user_id
    where abandons.last_abandoned_at is not null
        and (last_order.last_ordered_at is null or last_order.last_ordered_at < abandons.last_abandoned_at)

), order_lines as (

    -- Compared in the order's own currency: converting each line and the total separately
    -- would round apart by a cent and flag a discount that was never given.
    select
        items.order_id,
        sum(items.line_amount_original) as line_total_original,
        max(shop_orders.amount_original) as amount_original
    from {{ ref('stg_shop__order_items') }} as items
    inner join {{ ref('stg_shop__orders') }} as shop_orders on items.order_id = shop_orders.order_id
    group by items.order_id

), discounts as (

    select
        orders.user_id,
        sum(case when order_lines.amount_original < order_lines.line_total_original - 0.005 then 1 else 0 end) as discounted_orders,
        count(*) as orders_with_lines
    from orders
    inner join order_lines on orders.order_id = order_lines.order_id
    where orders.is_purchase
    group by orders.user_id

), features as (

    select
        profile.user_id,
        profile.order_count,
        profile.revenue,
        profile.days_since_last_activity,
        profile.days_since_last_purchase,
        profile.employees,
        profile.customer_type,
        profile.country,
        profile.city,
        profile.locale,
        profile.timezone,
        profile.acquisition_channel,
        profile.industry,
        profile.gender,
        profile.favourite_category,
        profile.email_opt_in,
        profile.sms_opt_in,
        profile.push_opt_in,
        {{ dbt.datediff(business_date('profile.registered_at'), as_of_date(), 'day') }} as days_since_registration,
        floor({{ dbt.datediff('profile.birth_date', as_of_date(), 'day') }} / 365.25) as age_years,
        profile.email is not null as has_email,
        profile.phone is not null as has_phone,
        profile.push_token is not null as has_push_token,
        lifecycle.lifecycle_stage,
        {{ seg_slug('rfm.rfm_segment') }} as rfm_segment,
        value_tier.value_tier,
        value_tier.b2b_grade,
        coalesce(devices.device_events > 0 and devices.mobile_events = devices.device_events, false) as mobile_only,
        coalesce(extract(month from profile.birth_date) = extract(month from {{ as_of_date() }}), false)
            as birthday_this_month,
        cast(discounts.discounted_orders as {{ kpi_double() }}) / discounts.orders_with_lines
            as discount_order_share,
        {{ dbt.datediff(business_date('cart_abandons.last_abandoned_at'), as_of_date(), 'day') }}
            as days_since_unconverted_cart_abandon
    from profile
    left join lifecycle on profile.user_id = lifecycle.user_id
    left join rfm on profile.user_id = rfm.user_id
    left join value_tier on profile.user_id = value_tier.user_id
    left join devices on profile.user_id = devices.user_id
    left join cart_abandons on profile.user_id = cart_abandons.user_id
    left join discounts on profile.user_id = discounts.user_id

)

select * from features
