{#- LTV per value segment and for all customers. -#}
select dimension, dimension_value, users,
       cast(ltv_per_customer as {{ type_double() }}) as ltv_per_customer,
       cast(ltv_per_user as {{ type_double() }}) as ltv_per_user
from {{ ref('kpi_ltv') }}
where dimension in ('value_segment', 'all')
