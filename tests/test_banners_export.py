"""The banner JSONL export (string-built lines) is byte-identical to DuckDB's own JSON of
json_group_object(slot, json_object(...)): same keys, escaping, nulls and timestamp format."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from crmflow.banners.publish import write_export

AS_OF = datetime(2026, 11, 21, 1, tzinfo=UTC)


def test_jsonl_export_equals_duckdb_json_of_grouped_slots(tmp_path: Path):
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("""create table banner_assignments as select * from (values
        ('u2', 'home_hero', 'a', 'targeted', null, timestamptz '2026-11-30 23:00:00+00', $as_of, 'en',
         'https://x/a.jpg', 'Say "hi" \\ now', 'app://a'),
        ('u2', 'cart_sidebar', 'c', 'default', null, null, $as_of, 'de', null, 'Grüße', 'app://c'),
        ('u1', 'home_hero', 'b', 'journey_override', 'j1', null, $as_of, 'en', 'https://x/b.jpg', 'B', 'app://b'),
        ('u1', 'cart_sidebar', 'c', 'default', null, null, $as_of, 'de', null, 'Grüße', 'app://c'),
        ('u3', 'cart_sidebar', 'c', 'default', null, null, $as_of, 'de', null, 'Grüße', 'app://c'))
        as t(user_id, slot, creative_id, reason, journey_id, valid_until, as_of, content_locale, image_url,
             text, deep_link)""", {"as_of": AS_OF})
    assert write_export(con, tmp_path, force=True)
    reference = tmp_path / "reference.jsonl"
    con.execute("set threads = 1")  # the reference keeps each user's rows in slot order
    con.execute(f"""copy (
            select user_id, any_value(as_of) as as_of,
                   json_group_object(slot, json_object('creative_id', creative_id, 'locale', content_locale,
                       'image_url', image_url, 'text', text, 'deep_link', deep_link,
                       'valid_until', valid_until)) as slots
            from (select * from banner_assignments order by user_id, slot) group by user_id order by user_id) to '{reference}' (format json)""")
    written = (tmp_path / "banners" / "banner_assignments.jsonl").read_bytes()
    assert written == reference.read_bytes()
    assert written.count(b"\n") == 3
    parquet = con.execute(f"select count(*) from '{tmp_path}/banners/banner_assignments.parquet'").fetchone()
    assert parquet[0] == 5
