{#- The header cards on the customer base: one row. -#}
select
    (select count(*) from {{ ref('customer_profile') }}) as customers,
    (select count(*) from {{ ref('customer_lifecycle') }}
     where lifecycle_stage in ('new', 'active', 'reactivated')) as active_customers
