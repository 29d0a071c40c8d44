-- B2B points per business customer: base points from the revenue band (seed b2b_amount_bands)
-- plus the bonus / penalty points of every b2b_score_items band the customer's metric falls in.
-- Bands are [min, max): min inclusive, max exclusive, an empty bound is open.
with metrics as (

    select * from {{ ref('int_customer__b2b_metrics') }}

), amount_bands as (

    select * from {{ ref('b2b_amount_bands') }}

), score_items as (

    select * from {{ ref('b2b_score_items') }}

), metric_values as (

    -- Long form so each score item joins on its metric name (set-based unpivot).
    select user_id, 'referrals_made' as metric, cast(referrals_made as {{ dbt.type_numeric() }}) as metric_value from metrics
    union all
    select user_id, 'distinct_categories', cast(distinct_categories as {{ dbt.type_numeric() }}) from metrics
    union all
    select user_id, 'tenure_days', cast(tenure_days as {{ dbt.type_numeric() }}) from metrics
    union all
    select user_id, 'refunded_orders', cast(refunded_orders as {{ dbt.type_numeric() }}) from metrics
    union all
    select user_id, 'cancelled_orders', cast(cancelled_orders as {{ dbt.type_numeric() }}) from metrics

), item_points as (

    select metric_values.user_id, sum(score_items.points) as item_points
    from metric_values
    inner join score_items
        on metric_values.metric = score_items.metric
        and {{ in_band('metric_values.metric_value', 'score_items.min_value', 'score_items.max_value') }}
    group by metric_values.user_id

), base_points as (

    select metrics.user_id, amount_bands.base_points
    from metrics
    inner join amount_bands
        on {{ in_band('metrics.revenue', 'amount_bands.min_amount', 'amount_bands.max_amount') }}

), scores as (

    select
        metrics.user_id,
        coalesce(base_points.base_points, 0) as base_points,
        coalesce(item_points.item_points, 0) as item_points,
        coalesce(base_points.base_points, 0) + coalesce(item_points.item_points, 0) as b2b_score

    from metrics
    left join base_points on metrics.user_id = base_points.user_id
    left join item_points on metrics.user_id = item_points.user_id

)

select * from scores
