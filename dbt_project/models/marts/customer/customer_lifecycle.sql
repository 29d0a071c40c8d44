-- One lifecycle stage per user (every customer_profile row) as of var('as_of'). Days are business
-- calendar days; "activity" = any stitched event or order (int_customer__activity_days).
-- Thresholds (vars): N = lifecycle_new_days, S = lifecycle_silent_days,
-- C = lifecycle_churned_days, R = lifecycle_reactivated_days; they must satisfy N <= S < C, R <= S
-- (checked by the singular test assert_lifecycle_thresholds_ordered).
-- First matching rule wins, so stages are mutually exclusive and exhaustive:
--   prospect     no purchase up to as_of
--   churned      days since last activity >= C
--   silent       days since last activity >= S
--   new          days since first purchase < N
--   reactivated  the latest "return" (an activity day >= S days after the previous activity day)
--                came after the first purchase, and the first purchase on/after that return was
--                < R days ago
--   active       everything else
-- stage_since is the date the rule became true: prospect = registration (or first activity) date,
-- churned = last activity + C, silent = last activity + S, new = first purchase,
-- reactivated = the reactivating purchase, active = the later of first purchase + N and the end
-- of the latest return (return purchase + R, or the return day itself when it had no purchase).
{%- set n = var('lifecycle_new_days') %}
{%- set s = var('lifecycle_silent_days') %}
{%- set c = var('lifecycle_churned_days') %}
{%- set r = var('lifecycle_reactivated_days') %}
with profile as (

    select user_id, registered_at from {{ ref('customer_profile') }}

), activity_days as (

    select * from {{ ref('int_customer__activity_days') }}

), activity_gaps as (

    select
        user_id,
        activity_date,
        is_purchase_day,
        lag(activity_date) over (partition by user_id order by activity_date) as previous_activity_date

    from activity_days

), returns as (

    -- Days the user came back after being silent for at least S days.
    select user_id, max(activity_date) as last_return_date
    from activity_gaps
    where previous_activity_date is not null
        and {{ dbt.datediff('previous_activity_date', 'activity_date', 'day') }} >= {{ s }}
    group by user_id

), activity_summary as (

    select
        user_id,
        min(activity_date) as first_activity_date,
        max(activity_date) as last_activity_date,
        min(case when is_purchase_day then activity_date end) as first_purchase_date

    from activity_days
    group by user_id

), return_purchase as (

    -- The first purchase on or after the latest return.
    select activity_days.user_id, min(activity_days.activity_date) as return_purchase_date
    from activity_days
    inner join returns on activity_days.user_id = returns.user_id
    where activity_days.is_purchase_day
        and activity_days.activity_date >= returns.last_return_date
    group by activity_days.user_id

), facts as (

    select
        profile.user_id,
        coalesce({{ business_date('profile.registered_at') }}, activity_summary.first_activity_date) as first_seen_date,
        activity_summary.last_activity_date,
        activity_summary.first_purchase_date,
        returns.last_return_date,
        return_purchase.return_purchase_date,
        {{ dbt.datediff('activity_summary.last_activity_date', as_of_date(), 'day') }} as days_since_last_activity,
        {{ dbt.datediff('activity_summary.first_purchase_date', as_of_date(), 'day') }} as days_since_first_purchase,
        {{ dbt.datediff('return_purchase.return_purchase_date', as_of_date(), 'day') }} as days_since_return_purchase,
        returns.last_return_date > activity_summary.first_purchase_date as returned_after_first_purchase

    from profile
    left join activity_summary on profile.user_id = activity_summary.user_id
    left join returns on profile.user_id = returns.user_id
    left join return_purchase on profile.user_id = return_purchase.user_id

), staged as (

    select
        user_id,
        case
            when first_purchase_date is null then 'prospect'
            when days_since_last_activity >= {{ c }} then 'churned'
            when days_since_last_activity >= {{ s }} then 'silent'
            when days_since_first_purchase < {{ n }} then 'new'
            when returned_after_first_purchase and days_since_return_purchase < {{ r }} then 'reactivated'
            else 'active'
        end as lifecycle_stage,
        first_seen_date,
        last_activity_date,
        first_purchase_date,
        last_return_date,
        return_purchase_date,
        returned_after_first_purchase

    from facts

), final as (

    select
        user_id,
        lifecycle_stage,
        case lifecycle_stage
            when 'prospect' then first_seen_date
            when 'churned' then {{ dbt.dateadd('day', c, 'last_activity_date') }}
            when 'silent' then {{ dbt.dateadd('day', s, 'last_activity_date') }}
            when 'new' then first_purchase_date
            when 'reactivated' then return_purchase_date
            else case
                when returned_after_first_purchase and return_purchase_date is not null
                    and {{ dbt.dateadd('day', r, 'return_purchase_date') }} > {{ dbt.dateadd('day', n, 'first_purchase_date') }}
                    then {{ dbt.dateadd('day', r, 'return_purchase_date') }}
                when returned_after_first_purchase and return_purchase_date is null
                    and last_return_date > {{ dbt.dateadd('day', n, 'first_purchase_date') }}
                    then last_return_date
                else {{ dbt.dateadd('day', n, 'first_purchase_date') }}
            end
        end as stage_since_raw,
        {{ as_of_ts() }} as as_of

    from staged

)

select
    user_id,
    lifecycle_stage,
    cast(stage_since_raw as date) as stage_since,
    as_of
from final
