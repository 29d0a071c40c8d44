-- The lifecycle rules assume new <= silent < churned and reactivated <= silent (see
-- customer_lifecycle.sql); a marketer's threshold change that breaks this fails the build.
-- It reads only vars; the dependency makes it an asset check on customer_lifecycle in Dagster.
-- depends_on: {{ ref('customer_lifecycle') }}
select
    {{ var('lifecycle_new_days') }} as new_days,
    {{ var('lifecycle_silent_days') }} as silent_days,
    {{ var('lifecycle_churned_days') }} as churned_days,
    {{ var('lifecycle_reactivated_days') }} as reactivated_days
where not (
    {{ var('lifecycle_new_days') }} <= {{ var('lifecycle_silent_days') }}
    and {{ var('lifecycle_silent_days') }} < {{ var('lifecycle_churned_days') }}
    and {{ var('lifecycle_reactivated_days') }} <= {{ var('lifecycle_silent_days') }}
)
