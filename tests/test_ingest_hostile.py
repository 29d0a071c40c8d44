"""Hostile landing files (issue 17): huge lines, stray CSV quotes, non-scalar ids, control characters
and a file that breaks the parser. Every hostile file is built here; every row stays accounted for."""

from __future__ import annotations

import random

import numpy as np
import pytest
from helpers_ingest import (
    REGISTRATION_HEADER,
    event,
    ingest,
    order,
    quarantine,
    registration,
    rows,
    warehouse,
    write_csv,
    write_jsonl,
)

import connectors.sources.files as files
from connectors.sources.landing_reader import PREVIEW_BYTES, ReadLimits, record_start_lines
from crmflow.settings import load_settings
from crmflow.warehouse import ensure_raw_tables

MB = 1024 * 1024


def test_a_line_over_the_configured_limit_is_quarantined_unparsed(tmp_path):
    landing = tmp_path / "landing"
    huge = event("big", properties={"blob": "é" * 3000})  # ~6 KB, 2-byte characters
    write_jsonl(landing / "events" / "e.jsonl", [event("m1"), huge, event("m2")])
    write_csv(landing / "registrations" / "r.csv", REGISTRATION_HEADER,
              [registration("u1"), registration("u2", first_name="x" * 5000), registration("u3")])
    limits = ReadLimits(max_line_bytes=4000)
    with warehouse(tmp_path) as con:
        events = ingest(con, "events", landing, limits=limits)
        regs = ingest(con, "registrations", landing, limits=limits)
        assert (events.rows_loaded, events.quarantine_reasons) == (2, {"too_large": 1})
        assert (regs.rows_loaded, regs.quarantine_reasons) == (2, {"too_large": 1})
        assert quarantine(con, "events") == [("events/e.jsonl", 2, "too_large", None)]
        assert quarantine(con, "registrations") == [("registrations/r.csv", 3, "too_large", None)]
        preview = rows(con, "select raw_content from quarantine_events")[0][0]
    # the first bytes only, cut at a character boundary (valid text, not hex)
    assert preview.startswith('{"message_id": "big"') and len(preview.encode()) <= PREVIEW_BYTES
    assert len(preview.encode()) > PREVIEW_BYTES - 2


def test_a_few_mb_line_is_over_the_1mb_default_and_the_rest_of_the_file_loads(tmp_path):
    landing = tmp_path / "landing"
    lines = [event(f"m{i}") for i in range(50)]
    lines.insert(20, event("big", properties={"blob": "x" * (3 * MB)}))
    write_jsonl(landing / "events" / "e.jsonl", lines)
    with warehouse(tmp_path) as con:
        stats = ingest(con, "events", landing)  # default limits: the 1 MB setting
        assert (stats.rows_read, stats.rows_loaded, stats.quarantine_reasons) == (51, 50, {"too_large": 1})
        assert quarantine(con, "events") == [("events/e.jsonl", 21, "too_large", None)]


def test_the_line_limit_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMFLOW_INGEST_MAX_LINE_BYTES", "300")
    monkeypatch.setenv("CRMFLOW_INGEST_MAX_CSV_FIELD_LINES", "3")
    assert (load_settings().ingest_max_line_bytes, load_settings().ingest_max_csv_field_lines) == (300, 3)
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "e.jsonl", [event("m1"), event("m2", properties={"p": "x" * 300})])
    with warehouse(tmp_path) as con:
        assert ingest(con, "events", landing).quarantine_reasons == {"too_large": 1}


@pytest.mark.parametrize(("name", "value"), [("CRMFLOW_INGEST_MAX_LINE_BYTES", "1MB"),
                                             ("CRMFLOW_INGEST_MAX_CSV_FIELD_LINES", "0")])
def test_bad_limit_settings_fail_with_one_clear_line(name, value):
    with pytest.raises(ValueError, match=f"^{name}='{value}' is not a whole number >= 1") as error:
        load_settings({name: value})
    assert "\n" not in str(error.value)


def test_a_stray_quote_costs_its_own_line_and_the_records_after_it_load(tmp_path):
    landing = tmp_path / "landing"
    stray = 'u-stray,2026-01-01T09:00:00Z,,"Ann,x@example.com'  # opens a quote that never closes
    after = [registration(f"after{i}") for i in range(20)]
    write_csv(landing / "registrations" / "r.csv", REGISTRATION_HEADER,
              [registration("before", first_name="two\nlines"), stray, *after])
    with warehouse(tmp_path) as con:
        stats = ingest(con, "registrations", landing)
        assert (stats.rows_read, stats.rows_loaded, stats.quarantine_reasons) == (22, 21, {"unclosed_quote": 1})
        assert quarantine(con, "registrations") == [("registrations/r.csv", 4, "unclosed_quote", None)]
        assert rows(con, "select raw_content from quarantine_registrations") == [(stray,)]
        # a quoted field over two lines is still one record; line numbers stay physical
        assert rows(con, "select _source_line from raw_registrations where user_id in ('before', 'after0')"
                    " order by 1") == [(2,), (5,)]


def test_a_quote_closed_only_after_more_than_n_lines_is_two_unclosed_lines(tmp_path):
    """Two stray quotes 15 lines apart would pair up into one 15-line record; above the limit
    (10 lines by default) each is quarantined alone and the records between them load."""
    landing = tmp_path / "landing"
    middle = [registration(f"mid{i}") for i in range(14)]
    write_csv(landing / "registrations" / "r.csv", REGISTRATION_HEADER,
              ['s1,2026-01-01T09:00:00Z,,"x', *middle, 's2,2026-01-01T09:00:00Z,,"y', registration("last")])
    with warehouse(tmp_path) as con:
        stats = ingest(con, "registrations", landing)
        assert (stats.rows_loaded, stats.quarantine_reasons) == (15, {"unclosed_quote": 2})
        assert [r[1:3] for r in quarantine(con, "registrations")] == [(2, "unclosed_quote"), (17, "unclosed_quote")]
        # with a limit of 20 lines the same two quotes make one (malformed) record, as RFC 4180 reads it
        con.execute("delete from ingested_files; delete from raw_registrations; delete from quarantine_registrations")
        stats = ingest(con, "registrations", landing, limits=ReadLimits(max_field_lines=20))
        assert (stats.rows_read, stats.rows_loaded) == (2, 1)


def _reference_record_starts(quotes_per_line: list[int], max_lines: int) -> tuple[list[int], list[int]]:
    """The rule written as a loop per line: the reference for the segment-wise numpy walk."""
    starts, unclosed, line, n = [], [], 0, len(quotes_per_line)
    while line < n:
        starts.append(line)
        count, end = 0, None
        for e in range(line, min(n, line + max_lines)):
            count += quotes_per_line[e]
            if count % 2 == 0:
                end = e
                break
        if end is None:
            unclosed.append(line)
            line += 1
        else:
            line = end + 1
    return starts, unclosed


@pytest.mark.parametrize("seed", range(40))
def test_record_start_lines_equal_a_line_by_line_reading(seed):
    rng = random.Random(seed)
    n = rng.randint(0, 60)
    quotes_per_line = [rng.choice([0, 0, 0, 0, 1, 2, 3]) for _ in range(n)]
    max_lines = rng.randint(1, 6)
    starts, unclosed = record_start_lines(np.cumsum(quotes_per_line, dtype=np.int64), max_lines)
    assert (starts.tolist(), unclosed.tolist()) == _reference_record_starts(quotes_per_line, max_lines)


def test_ids_must_be_strings_or_numbers(tmp_path):
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "e.jsonl", [
        event("m1", user_id=["x"]),
        {**event("m2"), "message_id": {"a": 1}},
        event("m3", anonymous_id=True),
        event("m4", user_id="[not json, just text"),  # a string that looks like an array is a string
        event("m5", user_id=42, anonymous_id=1.5),
    ])
    write_jsonl(landing / "registrations" / "r.jsonl", [registration("r1", referred_by={"id": "u9"}),
                                                        registration(["r2"])])
    write_jsonl(landing / "orders" / "o.jsonl", [order({"id": 1}), order("o2", user_id=[1, 2])])
    with warehouse(tmp_path) as con:
        for source in ("events", "registrations", "orders"):
            ingest(con, source, landing)
        assert [r[1:] for r in quarantine(con, "events")] == [
            (1, "invalid_id", "user_id"), (2, "invalid_id", "message_id"), (3, "invalid_id", "anonymous_id")]
        assert rows(con, "select message_id, user_id, anonymous_id from raw_events order by 1") == [
            ("m4", "[not json, just text", "a1"), ("m5", "42", "1.5")]
        assert [r[1:] for r in quarantine(con, "registrations")] == [
            (1, "invalid_id", "referred_by"), (2, "invalid_id", "user_id")]
        assert [r[1:] for r in quarantine(con, "orders")] == [(1, "invalid_id", "order_id"),
                                                              (2, "invalid_id", "user_id")]


def test_control_characters_are_rejected_by_the_documented_rule(tmp_path):
    """A value with a control character other than tab, LF, CR is quarantined naming the field: a
    text field, and a JSON field (properties, context) holding one as an escape (PostgreSQL's jsonb
    cannot store \\u0000); a backslash that only looks like an escape of one (C:\\bin) is not one.
    A line holding a raw NUL byte is kept in quarantine as hex (PostgreSQL text cannot hold NUL)."""
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "e.jsonl", [
        event("m1", event="View\u0000ed"),
        event("m2", user_id="u\u001b[31m"),
        event("m3", anonymous_id="a\u007f"),
        event("m4", event="Form\bfeed"),
        event("m5", event="C:\\bin\\files", properties={"path": "C:\\bin", "tab": "a\tb"}),
        event("m6", event="tab\tand\nnewline"),
        event("m7", properties={"note": "nul \u0000 inside json"}),
        event("m8", context={"ua": "esc \u001b[0m"}),
    ])
    write_csv(landing / "registrations" / "r.csv", REGISTRATION_HEADER, [
        registration("u1", first_name="An\x01n"), registration("u2", city="Ber\x00lin"),
        registration("u3", first_name="Ann\tMarie")])
    with warehouse(tmp_path) as con:
        ingest(con, "events", landing)
        ingest(con, "registrations", landing)
        assert [r[1:] for r in quarantine(con, "events")] == [
            (1, "control_character", "event"), (2, "control_character", "user_id"),
            (3, "control_character", "anonymous_id"), (4, "control_character", "event"),
            (7, "control_character", "properties"), (8, "control_character", "context")]
        assert rows(con, "select message_id, event, properties->>'$.path' from raw_events order by 1") == [
            ("m5", "C:\\bin\\files", "C:\\bin"), ("m6", "tab\tand\nnewline", None)]
        assert [r[1:] for r in quarantine(con, "registrations")] == [
            (2, "control_character", "first_name"), (3, "control_character", "city")]
        nul_line = rows(con, "select raw_content from quarantine_registrations where line_number = 3")[0][0]
        assert nul_line.startswith("hex:") and bytes.fromhex(nul_line[4:]).decode().startswith("u2,")
        assert rows(con, "select first_name from raw_registrations") == [("Ann\tMarie",)]


def test_a_file_that_breaks_the_parser_is_quarantined_whole_and_the_batch_loads(tmp_path, monkeypatch):
    """The issue's poison file: a valid event whose properties run DuckDB out of memory. With the
    line limit above it (configured) and a small memory limit, it breaks the parser; it is
    quarantined whole with the error and recorded, the other files of the batch load, and the next
    run does not stumble on it again."""
    monkeypatch.setattr(files, "MEMORY_LIMIT", "48MB")
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "a.jsonl", [event("a1"), event("a2")])
    write_jsonl(landing / "events" / "b-poison.jsonl", [event("b1"), event("b2", properties={"blob": "x" * (16 * MB)})])
    write_jsonl(landing / "events" / "c.jsonl", [event("c1")])
    limits = ReadLimits(max_line_bytes=64 * MB)
    with warehouse(tmp_path) as con:
        stats = ingest(con, "events", landing, limits=limits)
        assert (stats.files_ingested, stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (3, 4, 3, 1)
        assert stats.quarantine_reasons == {"unreadable_file": 1}
        assert rows(con, "select message_id from raw_events order by 1") == [("a1",), ("a2",), ("c1",)]
        ((path, line, error, reason, field),) = rows(
            con, "select source_file, line_number, raw_content, reason, field from quarantine_events")
        assert (path, line, reason, field) == ("events/b-poison.jsonl", 0, "unreadable_file", None)
        assert error.startswith("OutOfMemoryException: Out of Memory Error") and "\n" not in error
        assert rows(con, "select path, rows_read, rows_quarantined from ingested_files order by 1") == [
            ("events/a.jsonl", 2, 0), ("events/b-poison.jsonl", 1, 1), ("events/c.jsonl", 1, 0)]
        again = ingest(con, "events", landing, limits=limits)
        assert (again.files_skipped, again.rows_read) == (3, 0)


def test_a_warehouse_failure_is_not_blamed_on_the_file(tmp_path):
    """Only the parse is caught: a write that fails (here a CHECK constraint on raw_events) still
    fails the run, naming the file, and records nothing."""
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "a.jsonl", [event("a1")])
    with warehouse(tmp_path) as con:
        ensure_raw_tables(con)
        ddl = con.execute("select sql from duckdb_tables() where table_name = 'raw_events'").fetchone()[0]
        con.execute("drop table raw_events")
        con.execute(ddl.rstrip().rstrip(";").rstrip()[:-1] + ", check (message_id <> 'a1'));")
        with pytest.raises(RuntimeError, match=r"ingesting events files failed \(events/a.jsonl\)"):
            ingest(con, "events", landing)
        assert rows(con, "select count(*) from ingested_files") + rows(con, "select count(*) from quarantine_events") \
            == [(0,), (0,)]
