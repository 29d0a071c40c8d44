{#- The registration -> first order -> repeat order funnel over all acquisition channels. -#}
select registered_users, first_order_users, repeat_order_users
from {{ ref('kpi_funnel') }}
where acquisition_channel = 'all'
