-- RFM as of var('as_of'), one row per user with at least one purchase up to as_of.
-- The unit is the purchase day (business time zone; orders on one day are summed):
--   frequency                = distinct purchase days - 1 (repeat purchase days)
--   recency_days             = days between first and last purchase day
--   tenure_days              = days between first purchase day and the as-of date
--   monetary_value           = mean per-day total over repeat days (first day excluded), 0 if none
--   days_since_last_purchase = tenure_days - recency_days
-- Scores 1..5 are rank-based quintiles in which equal values always get equal scores:
--   score = 1 + floor(5 * (rank() - 1) / users), rank() ascending in "better" order, so a tie
--   group takes the score of its lowest position. Recency ranks days_since_last_purchase
--   descending (fewer days = better = 5).
with purchase_days as (

    select * from {{ ref('int_customer__purchase_days') }}

), first_day as (

    select user_id, min(purchase_date) as first_purchase_date
    from purchase_days
    group by user_id

), per_user as (

    select
        purchase_days.user_id,
        first_day.first_purchase_date,
        max(purchase_days.purchase_date) as last_purchase_date,
        count(*) as purchase_day_count,
        sum(case when purchase_days.purchase_date > first_day.first_purchase_date
            then purchase_days.day_amount else 0 end) as repeat_amount

    from purchase_days
    inner join first_day on purchase_days.user_id = first_day.user_id
    group by purchase_days.user_id, first_day.first_purchase_date

), metrics as (

    select
        user_id,
        purchase_day_count - 1 as frequency,
        {{ dbt.datediff('first_purchase_date', 'last_purchase_date', 'day') }} as recency_days,
        {{ dbt.datediff('first_purchase_date', as_of_date(), 'day') }} as tenure_days,
        -- exact cents on every engine (macro mean_amount), not a double division
        case when purchase_day_count > 1 then {{ mean_amount('repeat_amount', 'purchase_day_count - 1') }}
            else cast(0 as decimal(18, 2)) end as monetary_value,
        {{ dbt.datediff('last_purchase_date', as_of_date(), 'day') }} as days_since_last_purchase

    from per_user

), scored as (

    select
        user_id,
        frequency,
        recency_days,
        tenure_days,
        monetary_value,
        days_since_last_purchase,
        cast(1 + floor(5.0 * (rank() over (order by days_since_last_purchase desc) - 1)
            / count(*) over ()) as {{ dbt.type_int() }}) as r_score,
        cast(1 + floor(5.0 * (rank() over (order by frequency) - 1)
            / count(*) over ()) as {{ dbt.type_int() }}) as f_score,
        cast(1 + floor(5.0 * (rank() over (order by monetary_value) - 1)
            / count(*) over ()) as {{ dbt.type_int() }}) as m_score

    from metrics

), segment_map as (

    select * from {{ ref('rfm_segment_map') }}

), final as (

    select
        scored.user_id,
        scored.frequency,
        scored.recency_days,
        scored.tenure_days,
        scored.monetary_value,
        scored.days_since_last_purchase,
        scored.r_score,
        scored.f_score,
        scored.m_score,
        {{ dbt.concat([
            dbt.cast('scored.r_score', dbt.type_string()),
            dbt.cast('scored.f_score', dbt.type_string()),
            dbt.cast('scored.m_score', dbt.type_string())
        ]) }} as rfm_score,
        segment_map.rfm_segment,
        {{ as_of_ts() }} as as_of

    from scored
    left join segment_map
        on scored.r_score = segment_map.r_score
        and scored.f_score = segment_map.f_score

)

select * from final
