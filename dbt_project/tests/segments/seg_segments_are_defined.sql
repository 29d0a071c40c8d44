-- Every segment a customer is in is documented in the seed segment_definitions (cluster segments
-- are numbered by the model, so only their family is checked).
select distinct segments.segment_family, segments.segment
from {{ ref('customer_segments') }} as segments
left join {{ ref('segment_definitions') }} as definitions
    on segments.segment_family = definitions.segment_family
    and segments.segment = definitions.segment
where definitions.segment is null
    and segments.segment_family <> 'cluster'
