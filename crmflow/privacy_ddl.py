"""The privacy table (migration 20), portable DDL rendered per engine."""

PRIVACY_TEMPLATE = """
create table if not exists {ops}.privacy_erasures (
    identifier_sha256 varchar primary key, -- sha256 of an erased user_id or anonymous_id (not the id itself)
    kind varchar not null,                 -- user_id | anonymous_id
    pseudonym varchar not null,            -- what the person's rows carry as user_id from now on
    erased_at timestamptz not null
);
"""
