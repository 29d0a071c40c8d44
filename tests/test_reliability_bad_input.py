"""Bad input, property-based: malformed rows for every source (broken JSON, wrong types, huge values,
control characters, invalid UTF-8, far-future/past timestamps, duplicate ids with conflicting
content) never crash ingest_source, and every row is accounted for:
rows in = loaded + duplicates + quarantined, and the tables hold exactly what the stats say."""

import json
import os
import tempfile
from pathlib import Path

import duckdb
from helpers_ingest import AS_OF, ORDER_HEADER, REGISTRATION_HEADER, csv_cell
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.sources.contracts import CONTRACTS
from connectors.sources.files import ingest_source

# `make soak` raises the example count (CRMFLOW_HYPOTHESIS_EXAMPLES); make test keeps it fast.
SETTINGS = settings(max_examples=int(os.environ.get("CRMFLOW_HYPOTHESIS_EXAMPLES", "20")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

nasty_text = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=30)
timestamps = st.sampled_from([
    "2026-03-01T10:00:00Z", "2026-03-01T10:00:00+05:30", "2026-03-01 10:00:00", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "2026-13-45T25:61:00Z", "yesterday", "", "1e308",
    "2026-03-01T10:00:00.123456789Z",
])
scalars = st.one_of(
    st.none(), st.booleans(), nasty_text, timestamps,
    st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=False, allow_infinity=False),
    st.just("x" * 5000), st.just("\x00\x01\x1b[31m"), st.sampled_from(["true", "yes", "0", "-1", "1.005"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(nasty_text, scalars, max_size=3))
GOOD = {
    "events": {"type": "track", "event": "Viewed", "user_id": "u1", "timestamp": "2026-03-01T10:00:00Z",
               "properties": {}, "context": {}},
    "registrations": {"registered_at": "2026-01-01T00:00:00Z", "customer_type": "individual",
                      "email_opt_in": "true", "sms_opt_in": "false", "push_opt_in": "true", "email": "a@b.co"},
    "orders": {"user_id": "u1", "ordered_at": "2026-01-01T00:00:00Z", "status": "paid", "amount": "10.00",
               "currency": "EUR", "items": "[]"},
}


@st.composite
def row(draw, source: str) -> dict:
    contract = CONTRACTS[source]
    base = dict(GOOD[source])
    base[contract.key] = draw(st.sampled_from(["k1", "k2", "k3", ""]))  # duplicates, conflicting content
    for name in draw(st.lists(st.sampled_from([*contract.fields, *contract.json_fields, "extra"]), max_size=4)):
        base[name] = draw(values)
    for name in draw(st.lists(st.sampled_from(list(base)), max_size=2)):
        base.pop(name, None)  # missing fields
    return base


@st.composite
def jsonl_line(draw, source: str) -> bytes:
    kind = draw(st.sampled_from(["row", "row", "row", "broken", "bytes", "not_object"]))
    if kind == "row":
        return json.dumps(draw(row(source))).encode()
    if kind == "broken":
        text = json.dumps(draw(row(source)))
        return text[: draw(st.integers(1, max(1, len(text) - 1)))].encode()
    if kind == "not_object":
        return json.dumps(draw(values)).encode()
    raw = draw(st.binary(min_size=1, max_size=40)).replace(b"\n", b"").replace(b"\r", b"")
    return b"\xff" + raw  # invalid UTF-8


@st.composite
def csv_line(draw, source: str, header: str) -> bytes:
    data = draw(row(source))
    cells = [csv_cell(data.get(c)) for c in header.split(",")]
    if draw(st.booleans()):
        cells = cells[: draw(st.integers(0, len(cells)))]  # wrong column count
    line = ",".join(cells).replace("\n", " ").replace("\r", " ")
    return line.encode() if draw(st.integers(0, 9)) else b"\xfe" + line.encode()


def ingest_lines(source: str, fmt: str, lines: list[bytes], header: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp)
        folder = landing / source
        folder.mkdir()
        body = b"".join(line + b"\n" for line in lines if line.strip())
        (folder / f"batch.{fmt}").write_bytes((header.encode() + b"\n" if header else b"") + body)
        con = duckdb.connect()
        try:
            con.execute("set TimeZone = 'UTC'")
            stats = ingest_source(con, source, landing, loaded_at=AS_OF)
            assert stats.balanced, stats
            raw = con.execute(f"select count(*) from raw_{source}").fetchone()[0]
            quarantined = con.execute(f"select count(*) from quarantine_{source}").fetchone()[0]
            assert raw == stats.rows_loaded and quarantined == stats.rows_quarantined, (stats, raw, quarantined)
            if fmt == "jsonl":
                assert stats.rows_read == sum(1 for line in lines if line.strip()), stats
            # every quarantined row says why and where
            assert con.execute(f"select count(*) from quarantine_{source} where reason is null or line_number < 1"
                               ).fetchone()[0] == 0
            # a key is never loaded twice
            key = CONTRACTS[source].key
            assert con.execute(f"select count(*) - count(distinct {key}) from raw_{source}").fetchone()[0] == 0
        finally:
            con.close()


@SETTINGS
@given(st.lists(jsonl_line("events"), min_size=1, max_size=12))
def test_events_jsonl_never_crash_and_balance(lines: list[bytes]) -> None:
    ingest_lines("events", "jsonl", lines)


@SETTINGS
@given(st.lists(jsonl_line("registrations"), min_size=1, max_size=12),
       st.lists(csv_line("registrations", REGISTRATION_HEADER), max_size=8))
def test_registrations_jsonl_and_csv_never_crash_and_balance(lines: list[bytes], csv: list[bytes]) -> None:
    ingest_lines("registrations", "jsonl", lines)
    if csv:
        ingest_lines("registrations", "csv", csv, REGISTRATION_HEADER)


@SETTINGS
@given(st.lists(jsonl_line("orders"), min_size=1, max_size=12),
       st.lists(csv_line("orders", ORDER_HEADER), max_size=8))
def test_orders_jsonl_and_csv_never_crash_and_balance(lines: list[bytes], csv: list[bytes]) -> None:
    ingest_lines("orders", "jsonl", lines)
    if csv:
        ingest_lines("orders", "csv", csv, ORDER_HEADER)


# ---- manual tags CSV, task outcomes CSV, delivery webhook envelopes ---------------------------
def csv_lines(draw, cells: list[str]) -> bytes:
    """One CSV line from `cells`, sometimes with a wrong column count or an invalid UTF-8 byte."""
    cells = [csv_cell(c) for c in cells]
    if draw(st.integers(0, 4)) == 0:
        cells = cells[: draw(st.integers(0, len(cells)))] if draw(st.booleans()) else [*cells, "extra"]
    line = ",".join(cells).replace("\n", " ").replace("\r", " ")
    return line.encode() if draw(st.integers(0, 9)) else b"\xfe" + line.encode()


cell = st.one_of(nasty_text, timestamps, st.just(""), st.just("x" * 3000), st.just("\x00\x01\x1b[31m"))


@st.composite
def tag_line(draw) -> bytes:
    return csv_lines(draw, [draw(st.sampled_from(["u1", "u2", " u3 ", ""]) | nasty_text),
                            draw(st.sampled_from(["vip", "VIP ", "bad tag!", "", "a" * 70]) | nasty_text),
                            draw(st.sampled_from(["ops@example.com", ""]) | nasty_text), draw(timestamps | cell)])


def write_landing(folder: Path, name: str, header: str, lines: list[bytes]) -> list[bytes]:
    """Write the file; returns the data lines as written (empty ones dropped)."""
    kept = [line for line in lines if line.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(header.encode() + b"\n" + b"".join(line + b"\n" for line in kept))
    return kept


@SETTINGS
@given(st.lists(tag_line(), min_size=1, max_size=12))
def test_manual_tags_csv_never_crash_and_balance(lines: list[bytes]) -> None:
    from connectors.sources.manual_tags import ingest_manual_tags

    with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        kept = write_landing(Path(tmp) / "manual_tags", "tags.csv", "user_id,tag,added_by,added_at", lines)
        stats = ingest_manual_tags(con, tmp, AS_OF)
        assert stats.balanced, stats
        # a line of four empty cells is a blank line, not a row; every other line is counted
        assert stats.rows_read == sum(1 for line in kept if line != b",,,"), stats
        assert con.execute("select count(*) from raw_manual_tags").fetchone()[0] == stats.rows_loaded
        assert con.execute("select count(*) from quarantine_manual_tags").fetchone()[0] == stats.rows_quarantined
        assert con.execute("select count(*) from quarantine_manual_tags where reason is null or line_number < 1"
                           ).fetchone()[0] == 0
        assert con.execute("select count(*) - count(distinct (user_id, tag)) from raw_manual_tags").fetchone()[0] == 0


@st.composite
def outcome_line(draw) -> bytes:
    return csv_lines(draw, [draw(st.sampled_from(["t1", "t2", "t-unknown", ""]) | nasty_text),
                            draw(st.sampled_from(["done", "no_answer", " Converted ", "maybe", ""])),
                            draw(timestamps), draw(st.sampled_from(["30", "-5", "1e3", "", "99999999999999999999"])),
                            draw(st.sampled_from(["op1", ""])), draw(cell)])


@SETTINGS
@given(st.lists(outcome_line(), min_size=1, max_size=12))
@example([b"t1,done,2026-03-01T10:00:00Z,30,op1,", b"t1,done,2026-03-01T10:00:00Z,30,op1,note"])  # same outcome twice
def test_task_outcomes_csv_never_crash_and_balance(lines: list[bytes]) -> None:
    from crmflow.tasks.outcomes import ingest_task_outcomes
    from crmflow.tasks.schema import ensure_task_tables

    with tempfile.TemporaryDirectory() as tmp, duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        ensure_task_tables(con)
        for task in ("t1", "t2"):
            con.execute("""insert into operator_tasks (task_id, user_id, rule, policy, source, priority, created_at,
                           due_at, expires_at, status, status_updated_at)
                           values (?, 'u1', 'r', 'r', 'recall', 1, ?, ?, ?, 'open', ?)""", [task, *[AS_OF] * 4])
        kept = write_landing(Path(tmp) / "task_outcomes", "outcomes.csv",
                             "task_id,outcome,handled_at,handling_seconds,operator_id,notes", lines)
        stats = ingest_task_outcomes(con, Path(tmp), AS_OF)
        # this loader's invariant: every row is loaded or quarantined (a repeat is quarantined as duplicate)
        assert stats.rows_read == len(kept) == stats.rows_loaded + stats.rows_quarantined, stats
        assert con.execute("select count(*) from task_outcomes").fetchone()[0] == stats.rows_loaded
        assert con.execute("select count(*) from quarantine_task_outcomes").fetchone()[0] == stats.rows_quarantined
        assert con.execute("select count(*) from quarantine_task_outcomes where reason is null").fetchone()[0] == 0
