"""Journeys as config: marketer YAML -> validated models -> set-based SQL engine -> send ledger -> dispatch.

Modules: schema (pydantic models), loader (YAML + line-mapped validation), durations, filters (audience
and conditions compiled to SQL with bound parameters), templates (Jinja2, SMS segments), hashing
(holdout / variant buckets), tables (DDL), engine (one tick), policies, dispatch, preview.
"""
