"""Incremental, idempotent ingestion: skipped files, renamed copies, changed files, empty folders."""

import shutil
from datetime import datetime

import pytest
from helpers_ingest import (
    AS_OF,
    ORDER_HEADER,
    REGISTRATION_HEADER,
    event,
    ingest,
    order,
    registration,
    rows,
    warehouse,
    write_csv,
    write_jsonl,
)

from connectors.sources.files import ingest_source


def _landing(tmp_path):
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "e.jsonl", [event("m1"), event("m2"), "garbage"])
    write_csv(landing / "registrations" / "r.csv", REGISTRATION_HEADER,
              [registration("u1"), registration("u2"), registration("u3", email="x")])
    write_jsonl(landing / "orders" / "o.jsonl", [order("o1"), order("o2"), order("o3", currency="???")])
    return landing


@pytest.mark.parametrize("source", ["events", "registrations", "orders"])
def test_same_file_twice_adds_nothing(tmp_path, source):
    landing = _landing(tmp_path)
    with warehouse(tmp_path) as con:
        first = ingest(con, source, landing)
        assert first.files_ingested == 1 and first.rows_loaded == 2 and first.rows_quarantined == 1
        before = rows(con, f"select count(*) from raw_{source}") + rows(con, f"select count(*) from quarantine_{source}")
        second = ingest(con, source, landing)
        assert (second.files_ingested, second.files_skipped, second.rows_read) == (0, 1, 0)
        after = rows(con, f"select count(*) from raw_{source}") + rows(con, f"select count(*) from quarantine_{source}")
        assert before == after


@pytest.mark.parametrize("source", ["events", "registrations", "orders"])
def test_renamed_copy_is_all_duplicates(tmp_path, source):
    landing = _landing(tmp_path)
    with warehouse(tmp_path) as con:
        ingest(con, source, landing)
        original = next((landing / source).iterdir())
        shutil.copy(original, original.with_name("zz-redelivered" + original.suffix))
        again = ingest(con, source, landing)
        assert (again.files_ingested, again.files_skipped) == (1, 1)
        # valid rows are duplicates; the bad row is quarantined again under the new file's name
        assert (again.rows_read, again.rows_loaded, again.duplicates_skipped, again.rows_quarantined) == (3, 0, 2, 1)
        assert rows(con, f"select count(*) from raw_{source}") == [(2,)]
        assert rows(con, f"select count(distinct source_file) from quarantine_{source}") == [(2,)]


def test_changed_file_is_reread(tmp_path):
    landing = tmp_path / "landing"
    path = write_jsonl(landing / "events" / "e.jsonl", [event("m1")])
    with warehouse(tmp_path) as con:
        ingest(con, "events", landing)
        write_jsonl(path, [event("m1"), event("m2")])  # same path, appended content
        again = ingest(con, "events", landing)
        assert (again.files_ingested, again.rows_read, again.rows_loaded, again.duplicates_skipped) == (1, 2, 1, 1)
        assert rows(con, "select count(*), count(distinct content_hash) from ingested_files") == [(2, 2)]


def test_missing_and_empty_folders_and_ignored_names(tmp_path):
    landing = tmp_path / "landing"
    (landing / "orders").mkdir(parents=True)  # empty folder; events/registrations missing entirely
    write_jsonl(landing / "registrations" / "_partial.jsonl", [registration("hidden")])
    write_jsonl(landing / "registrations" / ".tmp-upload.jsonl", [registration("hidden2")])
    write_jsonl(landing / "registrations" / "_staging" / "r.jsonl", [registration("hidden3")])
    (landing / "registrations" / "notes.txt").write_text("not a landing format")
    (landing / "registrations" / "empty.csv").write_text("")
    with warehouse(tmp_path) as con:
        for source in ("events", "registrations", "orders"):
            stats = ingest(con, source, landing)
            assert (stats.rows_read, stats.rows_loaded) == (0, 0)
        # the empty file is recorded (so it is not re-read), with zero rows
        assert rows(con, "select path, rows_read from ingested_files") == [("registrations/empty.csv", 0)]
        assert rows(con, "select count(*) from raw_registrations") == [(0,)]
        assert ingest(con, "events", tmp_path / "does-not-exist").files_ingested == 0


def test_header_only_csv_and_orders_for_unknown_users(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "orders" / "a.csv", ORDER_HEADER, [])
    write_csv(landing / "orders" / "b.csv", ORDER_HEADER, [order("o1", user_id="guest-7")])
    with warehouse(tmp_path) as con:
        stats = ingest(con, "orders", landing)
        assert (stats.files_ingested, stats.rows_read, stats.rows_loaded) == (2, 1, 1)
        assert rows(con, "select user_id from raw_orders") == [("guest-7",)]


def test_bad_arguments_fail_clearly(tmp_path):
    with warehouse(tmp_path) as con:
        with pytest.raises(ValueError, match="unknown source 'clicks'"):
            ingest_source(con, "clicks", tmp_path, AS_OF)
        with pytest.raises(ValueError, match="timezone-aware"):
            ingest_source(con, "events", tmp_path, datetime(2026, 1, 1))


def test_unchanged_files_are_skipped_by_size_and_mtime_without_reading(tmp_path, monkeypatch):
    import os

    import connectors.sources.files as files

    landing = tmp_path / "landing"
    path = write_jsonl(landing / "events" / "e.jsonl", [event("m1"), event("m2")])
    with warehouse(tmp_path) as con:
        ingest(con, "events", landing)
        st = path.stat()
        assert rows(con, "select file_size, mtime_ns from ingested_files") == [(st.st_size, st.st_mtime_ns)]
        read = []
        real_read = files.read_bytes
        monkeypatch.setattr(files, "read_bytes", lambda p: read.append(p.name) or real_read(p))
        assert ingest(con, "events", landing).files_skipped == 1 and read == []
        # touched (new mtime, same bytes): read and hashed once, skipped, its stat recorded
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        again = ingest(con, "events", landing)
        assert (again.files_ingested, again.files_skipped, read) == (0, 1, ["e.jsonl"])
        assert rows(con, "select mtime_ns from ingested_files") == [(st.st_mtime_ns + 10**9,)]
        assert ingest(con, "events", landing).files_skipped == 1 and read == ["e.jsonl"]
        # documented limitation: rewritten in place with the same size and mtime -> not noticed
        write_jsonl(path, [event("m3"), event("m4")])
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        assert ingest(con, "events", landing).files_ingested == 0
        # any other change of size or mtime -> re-read by content
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
        changed = ingest(con, "events", landing)
        assert (changed.files_ingested, changed.rows_loaded) == (1, 2)


def test_overlapping_redeliveries_never_duplicate_a_message_id(tmp_path):
    """raw_events has no PRIMARY KEY: the first-copy-wins dedupe (its lookup limited to the pass's
    [min, max] of message ids) is what keeps message_id unique, across runs, files and passes."""
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "a.jsonl", [event(f"m{i:03d}") for i in range(0, 60)])
    with warehouse(tmp_path) as con:
        ingest(con, "events", landing)
        # overlaps the stored ids at both ends and in the middle, with ids outside their range and
        # copies inside the file; tiny batches so it runs in several passes
        ids = ["a000", "m000", "m059", "m030", "z999", "m030", "m100", "m100", "m059"]
        write_jsonl(landing / "events" / "b.jsonl", [event(i) for i in ids])
        write_jsonl(landing / "events" / "c.jsonl", [event(i) for i in reversed(ids)])
        again = ingest(con, "events", landing, batch_bytes=600)
        assert (again.rows_read, again.rows_loaded, again.duplicates_skipped) == (18, 3, 15)
        assert rows(con, "select count(*), count(distinct message_id) from raw_events") == [(63, 63)]
        assert rows(con, "select message_id, _source_file from raw_events where message_id in "
                         "('a000', 'm100', 'z999', 'm030') order by 1") == [
            ("a000", "events/b.jsonl"), ("m030", "events/a.jsonl"), ("m100", "events/b.jsonl"),
            ("z999", "events/b.jsonl")]
