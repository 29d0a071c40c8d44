-- Manual tags whose user is not in customer_profile are left out of customer_tags: warn so an
-- operator sees them (they stay in raw_manual_tags).
{{ config(severity='warn') }}
select manual.user_id, manual.tag
from {{ source('crm_tags', 'raw_manual_tags') }} as manual
left join {{ ref('customer_profile') }} as profile on manual.user_id = profile.user_id
where profile.user_id is null
