-- Orders whose currency has no rate in seed fx_rates (or a missing rate for the reporting
-- currency itself): stg_shop__orders leaves their amount null, so they count as no purchase and add
-- no revenue anywhere (profile, RFM, tiers, KPIs, intelligence, attribution). Warning, not error:
-- the rest of the pipeline stays right; a data engineer adds the rate to
-- dbt_project/seeds/fx_rates.csv and the next run picks the orders up. Lists the orders.
{{ config(severity='warn') }}

select order_id, user_id, ordered_at, status, currency, amount_original
from {{ ref('stg_shop__orders') }}
where amount is null
