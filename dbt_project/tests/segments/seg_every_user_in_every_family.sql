-- Coverage: every customer_profile user has a segment in every system family (families from the
-- seed segment_definitions; 'cluster' unless var include_cluster_family is false).
with families as (

    select distinct segment_family
    from {{ ref('segment_definitions') }}
    {% if not var('include_cluster_family', true) %}where segment_family <> 'cluster'{% endif %}

), expected as (

    select profile.user_id, families.segment_family
    from {{ ref('customer_profile') }} as profile
    cross join families

)

select expected.user_id, expected.segment_family
from expected
left join {{ ref('customer_segments') }} as segments
    on expected.user_id = segments.user_id
    and expected.segment_family = segments.segment_family
where segments.user_id is null
