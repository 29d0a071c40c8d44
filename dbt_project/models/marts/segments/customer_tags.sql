-- Customer tags, many per user and not exclusive: rule-based tags (marketing/tags.yaml, evaluated
-- as of var('as_of'); added_at = the as-of of this run) and manual tags (raw_manual_tags, added
-- up to the as-of, for users in customer_profile; added_at = when the operator added it).
with profile as (

    select user_id from {{ ref('customer_profile') }}

), rule_tags as (

    select
        user_id,
        tag,
        'rule' as tag_source,
        {{ as_of_ts() }} as added_at
    from {{ ref('int_tag_matches') }}

), manual_tags as (

    select
        manual.user_id,
        manual.tag,
        'manual' as tag_source,
        manual.added_at
    from {{ source('crm_tags', 'raw_manual_tags') }} as manual
    inner join profile on manual.user_id = profile.user_id
    where manual.added_at <= {{ as_of_ts() }}

), final as (

    select * from rule_tags
    union all
    select * from manual_tags

)

select * from final
