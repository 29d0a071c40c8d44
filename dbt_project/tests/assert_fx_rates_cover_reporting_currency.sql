-- The reporting currency (var reporting_currency) has a positive rate in seed fx_rates, and every
-- rate is positive: without them every non-reporting-currency order would lose its amount.
select '{{ var("reporting_currency") }}' as currency, 'reporting currency missing from fx_rates' as problem
where not exists (
    select 1 from {{ ref('fx_rates') }}
    where upper(trim(currency)) = upper(trim('{{ var("reporting_currency") }}')) and rate_to_reporting > 0
)
union all
select currency, 'rate_to_reporting must be > 0' as problem
from {{ ref('fx_rates') }}
where rate_to_reporting is null or rate_to_reporting <= 0
