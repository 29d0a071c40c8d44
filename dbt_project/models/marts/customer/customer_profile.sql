-- One row per user as of var('as_of'): registered users plus users only seen in orders (and, in a
-- shop without registrations, users only seen in identified events).
-- Registrations after as_of are ignored; order-only users default to customer_type individual and
-- no consent. Purchases, revenue and activity only count rows up to as_of.
with registrations as (

    select * from {{ ref('stg_app__registrations') }}
    where registered_at <= {{ as_of_ts() }}

), order_facts as (

    select * from {{ ref('int_customer__order_facts') }}

), users as (

    select user_id from registrations
    union
    select user_id from order_facts
    union
    -- No registration feed (an events-only shop, or events and orders): identified event users are
    -- customers too, so lifecycle, tiers and segments cover them. With registrations, customers
    -- stay the registered users and the buyers.
    select user_id from {{ ref('int_customer__event_days') }}
    where not exists (select 1 from registrations)

), last_event as (

    select user_id, max(last_event_at) as last_event_at
    from {{ ref('int_customer__event_days') }}
    group by user_id

), favourite_category as (

    -- Most spent category; ties go to the alphabetically first category so reruns agree.
    select user_id, category
    from (
        select
            user_id,
            category,
            row_number() over (partition by user_id order by spend desc, {{ binary_collation('category') }}) as spend_rank
        from {{ ref('int_customer__category_spend') }}
    ) as ranked
    where spend_rank = 1

), joined as (

    select
        users.user_id,
        registrations.email,
        registrations.phone,
        registrations.push_token,
        registrations.first_name,
        coalesce(registrations.email_opt_in, false) as email_opt_in,
        coalesce(registrations.sms_opt_in, false) as sms_opt_in,
        coalesce(registrations.push_opt_in, false) as push_opt_in,
        registrations.locale,
        registrations.timezone,
        registrations.country,
        registrations.city,
        coalesce(registrations.customer_type, 'individual') as customer_type,
        registrations.company_name,
        registrations.industry,
        registrations.employees,
        registrations.birth_date,
        registrations.gender,
        registrations.contract_end_date,
        registrations.referred_by,
        registrations.acquisition_channel,
        registrations.registered_at,
        order_facts.first_order_at,
        order_facts.last_order_at,
        coalesce(order_facts.order_count, 0) as order_count,
        cast(coalesce(order_facts.revenue, 0) as decimal(18, 2)) as revenue,
        case
            when last_event.last_event_at is null then order_facts.last_any_order_at
            when order_facts.last_any_order_at is null then last_event.last_event_at
            when order_facts.last_any_order_at > last_event.last_event_at then order_facts.last_any_order_at
            else last_event.last_event_at
        end as last_activity_at,
        favourite_category.category as favourite_category

    from users
    left join registrations on users.user_id = registrations.user_id
    left join order_facts on users.user_id = order_facts.user_id
    left join last_event on users.user_id = last_event.user_id
    left join favourite_category on users.user_id = favourite_category.user_id

), final as (

    select
        user_id,
        email,
        phone,
        push_token,
        first_name,
        email_opt_in,
        sms_opt_in,
        push_opt_in,
        locale,
        timezone,
        country,
        city,
        customer_type,
        company_name,
        industry,
        employees,
        birth_date,
        gender,
        contract_end_date,
        referred_by,
        acquisition_channel,
        registered_at,
        first_order_at,
        last_order_at,
        order_count,
        revenue,
        last_activity_at,
        {{ dbt.datediff(business_date('last_activity_at'), as_of_date(), 'day') }} as days_since_last_activity,
        {{ dbt.datediff(business_date('last_order_at'), as_of_date(), 'day') }} as days_since_last_purchase,
        favourite_category,
        {{ as_of_ts() }} as as_of

    from joined

)

select * from final
