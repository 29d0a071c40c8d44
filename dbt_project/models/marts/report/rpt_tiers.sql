{#- Customers per customer type and grade: the value tier of individuals, the B2B grade of business
    customers, 'unscored' without either. -#}
select customer_type, coalesce(value_tier, b2b_grade, 'unscored') as grade, count(*) as users
from {{ ref('customer_value_tier') }}
group by customer_type, coalesce(value_tier, b2b_grade, 'unscored')
