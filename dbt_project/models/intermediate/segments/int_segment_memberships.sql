-- One row per customer_profile user and segment family: the user's one segment in that family.
-- Every family starts from customer_profile and left-joins its source, with an explicit fallback
-- segment, so membership is exclusive (one row per user and family) and exhaustive (every user in
-- every family). Segment names and their rules in words: seed segment_definitions.
--
-- The cluster family reads this run's customer_clusters (source crm_intelligence, written by the
-- customer_clusters asset, which runs before this model: models/_python_outputs__sources.yml).
-- Before clustering has ever run the table is empty (migration 42) and every user is 'unclustered'.
-- Off with --vars '{include_cluster_family: false}'.
{%- set include_clusters = var('include_cluster_family', true) %}
with profile as (

    select
        user_id,
        customer_type,
        email,
        phone,
        push_token,
        email_opt_in,
        sms_opt_in,
        push_opt_in
    from {{ ref('customer_profile') }}

), lifecycle as (

    select user_id, lifecycle_stage from {{ ref('customer_lifecycle') }}

), value_tier as (

    select user_id, value_tier, b2b_grade from {{ ref('customer_value_tier') }}

), rfm as (

    select user_id, rfm_segment from {{ ref('customer_rfm') }}

{% if include_clusters %}
), clusters as (

    select user_id, cluster_id from {{ source('crm_intelligence', 'customer_clusters') }}

{% endif %}
), lifecycle_family as (

    select
        profile.user_id,
        'lifecycle' as segment_family,
        coalesce(lifecycle.lifecycle_stage, 'unknown') as segment
    from profile
    left join lifecycle on profile.user_id = lifecycle.user_id

), value_family as (

    select
        profile.user_id,
        'value' as segment_family,
        case
            when profile.customer_type = 'business'
                then coalesce('grade_' || value_tier.b2b_grade, 'grade_unassigned')
            else coalesce('value_' || value_tier.value_tier, 'value_unassigned')
        end as segment
    from profile
    left join value_tier on profile.user_id = value_tier.user_id

), rfm_family as (

    -- customer_rfm holds only users with at least one purchase.
    select
        profile.user_id,
        'rfm' as segment_family,
        case
            when rfm.user_id is null then 'no_purchase'
            else coalesce({{ seg_slug('rfm.rfm_segment') }}, 'rfm_unmapped')
        end as segment
    from profile
    left join rfm on profile.user_id = rfm.user_id

), customer_type_family as (

    select
        user_id,
        'customer_type' as segment_family,
        coalesce(customer_type, 'unknown') as segment
    from profile

), channel_family as (

    -- The first reachable channel in the house order email > push > sms: consent and an address.
    select
        user_id,
        'channel_preference' as segment_family,
        case
            when email_opt_in and email is not null then 'email'
            when push_opt_in and push_token is not null then 'push'
            when sms_opt_in and phone is not null then 'sms'
            else 'unreachable'
        end as segment
    from profile

{% if include_clusters %}
), cluster_family as (

    select
        profile.user_id,
        'cluster' as segment_family,
        coalesce('cluster_' || cast(clusters.cluster_id as {{ dbt.type_string() }}), 'unclustered') as segment
    from profile
    left join clusters on profile.user_id = clusters.user_id

{% endif %}
), memberships as (

    select * from lifecycle_family
    union all
    select * from value_family
    union all
    select * from rfm_family
    union all
    select * from customer_type_family
    union all
    select * from channel_family
{% if include_clusters %}
    union all
    select * from cluster_family
{% endif %}

)

select * from memberships
