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

), events as (

    -- Same identity resolution as events_stitched, on the staging view that carries device_type.
    select
        coalesce(events.user_id, identity_map.user_id) as user_id,
        events.event_name,
        events.event_at,
        lower(events.device_type) as device_type
    from {{ ref('stg_tracking__events') }} as events
    left join {{ ref('identity_map') }} as identity_map
        on events.anonymous_id = identity_map.anonymous_id
    where events.event_at <= {{ as_of_ts() }}

), devices as (

    select
        user_id,
        sum(case when device_type in {{ sql_in_list(var('seg_mobile_device_types', ['mobile', 'ios', 'android', 'tablet'])) }}
            then 1 else 0 end) as mobile_events,
        count(*) as device_events
    from events
    where user_id is not null and device_type is not null
    group by user_id

), orders as (

    select * from {{ ref('int_customer__orders') }}

), last_order as (

    select user_id, max(ordered_at) as last_ordered_at
    from orders
    group by user_id

), cart_abandons as (

    select events.user_id, max(events.event_at) as last_abandoned_at
    from events
    left join last_order on events.user_id = last_order.user_id
    where events.user_id is not null
        and events.event_name in {{ sql_in_list(var('seg_cart_abandoned_events', ['cart_abandoned', 'Cart Abandoned'])) }}
        and (last_order.last_ordered_at is null or last_order.last_ordered_at < events.event_at)
    group by events.user_id

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
