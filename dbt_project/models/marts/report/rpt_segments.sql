{#- Customers per segment of each family. -#}
select segment_family, segment, count(*) as users
from {{ ref('customer_segments') }}
group by segment_family, segment
