"""Events landing files: field mapping, every quarantine reason, blank lines, dedupe, balance."""

from datetime import UTC, datetime

import pytest
from helpers_ingest import DROP, event, ingest, quarantine, rows, warehouse, write_jsonl


def test_valid_event_fields_are_loaded_faithfully(tmp_path):
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "e1.jsonl", [
        event("m1", properties={"sku": "SKU-1", "price": 12.5}),
        event("m2", type="identify", event=DROP, user_id="u9", anonymous_id="anon-9",
              timestamp="2026-03-01T23:30:00.250-05:00", properties=DROP, context=DROP),
        event("m3", type="page", event=DROP, user_id=DROP, anonymous_id="anon-3",
              timestamp="2026-03-02T00:00:00Z"),
    ])
    with warehouse(tmp_path) as con:
        stats = ingest(con, "events", landing)
        assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (3, 3, 0)
        got = rows(con, """select message_id, type, event, user_id, anonymous_id, event_at,
                                  properties->>'$.price', context->>'$.device.type', _source_file,
                                  _source_line from raw_events order by message_id""")
    assert got[0] == ("m1", "track", "Product Viewed", "u1", "a1",
                      datetime(2026, 3, 1, 9, 0, tzinfo=UTC), "12.5", "mobile", "events/e1.jsonl", 1)
    # offsets are honoured: 23:30:00.250-05:00 is 04:30:00.250 UTC the next day
    assert got[1][:6] == ("m2", "identify", None, "u9", "anon-9",
                          datetime(2026, 3, 2, 4, 30, 0, 250000, tzinfo=UTC))
    assert got[1][6:8] == (None, None)
    assert got[2][:5] == ("m3", "page", None, None, "anon-3")


BAD_EVENT_LINES = [
    # (line written, reason, field)
    ("{not json", "unparseable_json", None),
    ('["an", "array"]', "not_an_object", None),
    (event(DROP), "missing_message_id", "message_id"),
    (event(""), "missing_message_id", "message_id"),
    (event("b2", type="click"), "invalid_type", "type"),
    (event("b3", event=DROP), "missing_event_name", "event"),
    (event("b4", user_id=DROP, anonymous_id=None), "missing_identity", "user_id"),
    (event("b5", type="identify", event=DROP, user_id=DROP), "missing_identity", "user_id"),
    (event("b6", timestamp="yesterday"), "bad_timestamp", "timestamp"),
    (event("b7", timestamp="2026-03-01T10:00:00"), "bad_timestamp", "timestamp"),  # no offset
    (event("b8", timestamp="2026-02-30T10:00:00Z"), "bad_timestamp", "timestamp"),
    (event("b9", timestamp=DROP), "bad_timestamp", "timestamp"),
    (event("b10", timestamp="1899-12-31T23:59:59Z"), "timestamp_out_of_range", "timestamp"),
    (event("b11", timestamp="2100-01-02T00:00:00Z"), "timestamp_out_of_range", "timestamp"),
    (event("b12", properties=[1, 2]), "invalid_properties", "properties"),
    (event("b13", properties="sku=1"), "invalid_properties", "properties"),
    (event("b14", context="mobile"), "invalid_context", "context"),
]


def test_every_event_quarantine_reason_with_file_line_and_field(tmp_path):
    landing = tmp_path / "landing"
    lines = [event("good-1")] + [line for line, _, _ in BAD_EVENT_LINES] + [event("good-2")]
    write_jsonl(landing / "events" / "bad.jsonl", lines)
    with (landing / "events" / "bad.jsonl").open("ab") as f:
        f.write(b'{"message_id": "\xff\xfe broken"}\n')
    with warehouse(tmp_path) as con:
        stats = ingest(con, "events", landing)
        got = quarantine(con, "events")
        raw_utf8 = rows(con, "select raw_content from quarantine_events where reason = 'invalid_utf8'")
        raw_first = rows(con, "select raw_content from quarantine_events where line_number = 2")
        loaded = rows(con, "select message_id from raw_events order by 1")
    expected = [("events/bad.jsonl", i + 2, reason, field) for i, (_, reason, field) in enumerate(BAD_EVENT_LINES)]
    expected.append(("events/bad.jsonl", len(lines) + 1, "invalid_utf8", None))
    assert got == expected
    assert raw_first == [("{not json",)]
    # invalid UTF-8 is kept visibly as hex, never dropped
    assert raw_utf8[0][0].startswith("hex:7B226D6573736167655F6964223A2022FFFE")
    assert loaded == [("good-1",), ("good-2",)]
    assert stats.rows_quarantined == len(BAD_EVENT_LINES) + 1
    assert stats.quarantine_reasons["missing_identity"] == 2
    assert stats.rows_read == stats.rows_loaded + stats.rows_quarantined == len(lines) + 1


def test_first_failing_rule_wins(tmp_path):
    landing = tmp_path / "landing"
    # missing message_id AND bad type AND bad timestamp: the earliest rule is reported
    write_jsonl(landing / "events" / "e.jsonl", [
        event(DROP, type="nope", timestamp="x"),
        event("m2", type="track", event=DROP, timestamp="x"),
    ])
    with warehouse(tmp_path) as con:
        ingest(con, "events", landing)
        assert [r[2:] for r in quarantine(con, "events")] == [
            ("missing_message_id", "message_id"), ("missing_event_name", "event")]


def test_blank_lines_and_crlf_are_not_rows(tmp_path):
    landing = tmp_path / "landing"
    path = landing / "events" / "e.jsonl"
    path.parent.mkdir(parents=True)
    import json
    body = ("\n   \n" + json.dumps(event("m1")) + "\r\n\t\n" + json.dumps(event("m2")))  # no final newline
    path.write_bytes(body.encode())
    with warehouse(tmp_path) as con:
        stats = ingest(con, "events", landing)
        got = rows(con, "select message_id, _source_line from raw_events order by 1")
    assert stats.rows_read == 2 and stats.rows_loaded == 2
    assert got == [("m1", 3), ("m2", 5)]


def test_duplicate_message_ids_first_copy_wins_within_and_across_files(tmp_path):
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "a.jsonl", [event("m1", event="First"), event("m1", event="Second"),
                                                 event("m2")])
    write_jsonl(landing / "events" / "b.jsonl", [event("m1", event="Third"), event("m3")])
    with warehouse(tmp_path) as con:
        stats = ingest(con, "events", landing)
        assert (stats.rows_read, stats.rows_loaded, stats.duplicates_skipped) == (5, 3, 2)
        assert rows(con, "select event, _source_file, _source_line from raw_events where message_id = 'm1'") == [
            ("First", "events/a.jsonl", 1)]
        write_jsonl(landing / "events" / "c.jsonl", [event("m2", event="Later"), event("m4")])
        again = ingest(con, "events", landing)
        assert (again.files_ingested, again.files_skipped) == (1, 2)
        assert (again.rows_read, again.rows_loaded, again.duplicates_skipped) == (2, 1, 1)
        assert rows(con, "select count(*) from raw_events") == [(4,)]


@pytest.mark.parametrize("batch_bytes", [1, 10_000_000])
def test_batches_give_the_same_result(tmp_path, batch_bytes):
    """Many small files, loaded one file per SQL pass or all in one pass: same rows, same stats."""
    landing = tmp_path / "landing"
    for i in range(4):
        write_jsonl(landing / "events" / f"part-{i}.jsonl",
                    [event(f"m{i}-{j}") for j in range(3)] + [event("shared"), "oops"])
    with warehouse(tmp_path) as con:
        stats = ingest(con, "events", landing, batch_bytes=batch_bytes)
        assert (stats.files_ingested, stats.rows_read, stats.rows_loaded, stats.duplicates_skipped,
                stats.rows_quarantined) == (4, 20, 13, 3, 4)
        assert rows(con, "select _source_file from raw_events where message_id = 'shared'") == [
            ("events/part-0.jsonl",)]
        assert rows(con, "select sum(rows_read), sum(rows_loaded), sum(duplicates_skipped) from ingested_files") == [
            (20, 13, 3)]


def test_block_wise_line_scan_equals_one_block(monkeypatch):
    """split_lines / split_csv_records scan the bytes in blocks (bounded temporaries); any block size
    gives the same lines, line numbers and ASCII flags as one block."""
    import connectors.sources.landing_reader as reader

    data = (b"\xef\xbb\xbf" + b"".join(b'{"n": %d, "s": "\xc3\xa9"}\n' % i if i % 7 == 0 else b'{"n": %d}\n' % i
                                       for i in range(500)) + b'"a\nb",\xff\n"c""d",e')
    whole = reader.split_lines(data, 0), reader.split_csv_records(data, 0)
    for block in (1, 7, 64, 1000):
        monkeypatch.setattr(reader, "SCAN_BLOCK", block)
        assert reader.split_lines(data, 0).equals(whole[0]) and reader.split_csv_records(data, 0).equals(whole[1])
    assert not all(whole[0].column("ascii").to_pylist()) and any(whole[0].column("ascii").to_pylist())
