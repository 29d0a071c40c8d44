"""The measurement relations by name: the dbt models, then the two tables Python writes.

A module of its own (no pandas, no scipy) because the Dagster definitions name these tables at
import, and importing crmflow.measurement.tables would load the statistics stack (issue 20).
"""

MEASUREMENT_MODELS = ("journey_order_attribution", "journey_attribution", "journey_conversion_trend",
                      "journey_uplift_inputs", "journey_ab_inputs")
STATISTICS_TABLES = ("journey_uplift", "journey_ab_results")
MEASUREMENT_TABLES = ("journey_order_attribution", "journey_attribution", "journey_conversion_trend",
                      *STATISTICS_TABLES)
# dbt's selector for the measurement models (and their data and unit tests).
MEASUREMENT_SELECTOR = "path:dbt_project/models/marts/measurement"
