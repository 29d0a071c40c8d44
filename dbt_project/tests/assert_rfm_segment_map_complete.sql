-- Every (r_score, f_score) pair 1..5 x 1..5 has a segment in seed rfm_segment_map, so editing the
-- seed can never leave a customer without an rfm_segment. Returns the missing pairs.
with scores as (

    select 1 as score union all select 2 union all select 3 union all select 4 union all select 5

), pairs as (

    select r.score as r_score, f.score as f_score
    from scores as r
    cross join scores as f

)

select pairs.r_score, pairs.f_score
from pairs
left join {{ ref('rfm_segment_map') }} as segment_map
    on pairs.r_score = segment_map.r_score and pairs.f_score = segment_map.f_score
where segment_map.rfm_segment is null
