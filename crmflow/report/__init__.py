"""The self-contained HTML report (docs/measurement.md): charts of the customer base, journeys,
A/B tests, operators and delivery health, from the warehouse marts and measurement tables."""
