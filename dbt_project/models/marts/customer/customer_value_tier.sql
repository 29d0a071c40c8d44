-- Value tier per user as of var('as_of').
-- Individuals: value_tier by revenue percentile among paying individuals, cume_dist() over
-- revenue (equal revenue = equal tier): above value_tier_high_min_percentile -> high, above
-- value_tier_medium_min_percentile -> medium, else low. Individuals without purchases are low.
-- Business customers: value_tier null; b2b_score (int_customer__b2b_scores) graded by seed
-- b2b_grade_bands into A..E, with the grade's rights from seed b2b_grade_rights. Individuals
-- have no B2B rights (discount_pct, sla_hours, support_level null).
with profile as (

    select user_id, customer_type, revenue from {{ ref('customer_profile') }}

), paying_individuals as (

    select
        user_id,
        cume_dist() over (order by revenue) as revenue_percentile
    from profile
    where customer_type = 'individual' and revenue > 0

), scores as (

    select * from {{ ref('int_customer__b2b_scores') }}

), grade_bands as (

    select * from {{ ref('b2b_grade_bands') }}

), grade_rights as (

    select * from {{ ref('b2b_grade_rights') }}

), graded as (

    select scores.user_id, scores.b2b_score, grade_bands.b2b_grade
    from scores
    inner join grade_bands
        on {{ in_band('scores.b2b_score', 'grade_bands.min_score', 'grade_bands.max_score') }}

), final as (

    select
        profile.user_id,
        profile.customer_type,
        case
            when profile.customer_type = 'business' then null
            when paying_individuals.revenue_percentile > {{ var('value_tier_high_min_percentile') }} then 'high'
            when paying_individuals.revenue_percentile > {{ var('value_tier_medium_min_percentile') }} then 'medium'
            else 'low'
        end as value_tier,
        graded.b2b_score,
        graded.b2b_grade,
        grade_rights.discount_pct,
        grade_rights.sla_hours,
        grade_rights.support_level,
        {{ as_of_ts() }} as as_of

    from profile
    left join paying_individuals on profile.user_id = paying_individuals.user_id
    left join graded on profile.user_id = graded.user_id
    left join grade_rights on graded.b2b_grade = grade_rights.b2b_grade

)

select * from final
