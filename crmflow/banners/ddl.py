"""Banner tables owned by the project (migration 30), portable DDL rendered per engine.

banner_assignments itself is not here: each run builds it whole and renames it into place.
"""

CHANGES_TEMPLATE = """
create table if not exists {exports}.banner_assignment_changes (
    user_id varchar not null,
    slot varchar not null,
    change_type varchar not null,      -- added | changed | removed
    old_creative_id varchar,
    new_creative_id varchar,
    changed_at timestamptz not null,   -- the run's as-of
    pushed_at timestamptz              -- when the HTTP push delivered it; null = not (yet) pushed
);
alter table {exports}.banner_assignment_changes add column if not exists pushed_at timestamptz;
"""
