-- Lifecycle, value tier and profile cover exactly the same users (one stage and one tier each).
select user_id, 'missing from customer_lifecycle' as problem
from {{ ref('customer_profile') }}
where user_id not in (select user_id from {{ ref('customer_lifecycle') }})
union all
select user_id, 'missing from customer_value_tier'
from {{ ref('customer_profile') }}
where user_id not in (select user_id from {{ ref('customer_value_tier') }})
