"""Ingestion's own tables beyond migration 1's raw/quarantine tables (no imports: migrations.py reads it).

Migration 50: the HTTP API pull cursor per resource (connectors/sources/http_api.py). `cursor` is
quoted: it is a keyword in PostgreSQL.
"""

CURSORS_TEMPLATE = """
create table if not exists {ops}.source_cursors (
    resource varchar primary key,
    "cursor" varchar,
    updated_at timestamptz not null
);
"""
