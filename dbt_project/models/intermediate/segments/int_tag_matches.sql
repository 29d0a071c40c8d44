-- Rule-based tags: a user gets a tag when every condition of the tag (tag_rules) holds.
-- Text comparisons ignore case. A missing value (null) never satisfies = != > >= < <= in
-- not_in is_true is_false; only is_null matches it.
with features as (

    select * from {{ ref('int_tag_features') }}

), rules as (

    select * from {{ source('crm_tags', 'tag_rules') }}

), condition_counts as (

    select tag, count(*) as conditions
    from rules
    group by tag

), satisfied as (

    select distinct
        features.user_id,
        rules.tag,
        rules.condition_no
    from features
    inner join rules on features.field = rules.field
    where
        (rules.operator = '=' and (features.value_num = rules.value_num
            or lower(features.value_text) = lower(rules.value_text)))
        or (rules.operator = '!=' and (features.value_num <> rules.value_num
            or lower(features.value_text) <> lower(rules.value_text)))
        or (rules.operator = '>' and features.value_num > rules.value_num)
        or (rules.operator = '>=' and features.value_num >= rules.value_num)
        or (rules.operator = '<' and features.value_num < rules.value_num)
        or (rules.operator = '<=' and features.value_num <= rules.value_num)
        or (rules.operator = 'in' and features.value_text is not null
            and {{ dbt.position("lower('|' || features.value_text || '|')", 'lower(rules.value_text)') }} > 0)
        or (rules.operator = 'not_in' and features.value_text is not null
            and {{ dbt.position("lower('|' || features.value_text || '|')", 'lower(rules.value_text)') }} = 0)
        or (rules.operator = 'is_true' and features.value_bool)
        or (rules.operator = 'is_false' and not features.value_bool)
        or (rules.operator = 'is_null' and features.value_num is null and features.value_text is null
            and features.value_bool is null)
        or (rules.operator = 'is_not_null' and (features.value_num is not null or features.value_text is not null
            or features.value_bool is not null))

), matches as (

    select satisfied.user_id, satisfied.tag
    from satisfied
    inner join condition_counts on satisfied.tag = condition_counts.tag
    group by satisfied.user_id, satisfied.tag, condition_counts.conditions
    having count(*) = condition_counts.conditions

)

select * from matches
