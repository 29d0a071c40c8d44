"""Journeys as config: marketer YAML -> validated models -> set-based SQL engine -> send ledger -> dispatch.

Modules: schema (pydantic models), loader (YAML + line-mapped validation, crmflow/yaml_config.py),
durations, filters (step conditions compiled to SQL with bound parameters; audiences compile in
crmflow/audience.py, shared with banners and task recall), templates (Jinja2, SMS segments), hashing
(holdout / variant buckets), tables (DDL), engine (one tick), policies, dispatch, preview.
"""
