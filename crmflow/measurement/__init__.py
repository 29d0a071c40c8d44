"""Measurement: last-touch attribution, holdout uplift and A/B significance (contract:
docs/data-contracts.md section 9, method: docs/measurement.md). Plain functions, no Dagster."""
