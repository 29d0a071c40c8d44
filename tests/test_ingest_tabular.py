"""Registrations and orders from CSV and JSONL: types, quarantine reasons, last-write-wins."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from helpers_ingest import (
    DROP,
    ORDER_HEADER,
    REGISTRATION_HEADER,
    ingest,
    order,
    quarantine,
    registration,
    rows,
    warehouse,
    write_csv,
    write_jsonl,
)

REG_COLUMNS = REGISTRATION_HEADER.replace(",", ", ")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_registration_fields_and_types(tmp_path, fmt):
    landing = tmp_path / "landing"
    regs = [
        registration("u1", first_name='Ann, "the" first', email_opt_in=True, sms_opt_in=False,
                     push_opt_in=DROP),
        registration("u2", customer_type="business", company_name="ACME GmbH", industry="retail",
                     employees=120, email_opt_in="yes", sms_opt_in="0", birth_date=None, gender=None,
                     contract_end_date="2027-06-30", referred_by="u1", updated_at=None,
                     registered_at="2026-01-02T10:00:00+02:00"),
    ]
    if fmt == "csv":
        write_csv(landing / "registrations" / "r.csv", REGISTRATION_HEADER, regs)
    else:
        write_jsonl(landing / "registrations" / "r.jsonl", regs)
    with warehouse(tmp_path) as con:
        stats = ingest(con, "registrations", landing)
        assert (stats.rows_read, stats.rows_loaded) == (2, 2)
        got = rows(con, f"select {REG_COLUMNS}, _source_line from raw_registrations order by user_id")
    utc = UTC
    assert got[0] == (
        "u1", datetime(2026, 1, 1, 9, tzinfo=utc), datetime(2026, 1, 1, 9, tzinfo=utc), "u1@example.com",
        "+4915112345678", 'Ann, "the" first', "DE", "Berlin", "de-DE", "Europe/Berlin", "seo", "individual",
        None, None, None, True, False, False, "fcm-1", date(1990, 2, 3), "f", None, None,
        2 if fmt == "csv" else 1,
    )
    # updated_at missing -> the registration time; offsets converted to UTC
    assert got[1][1:3] == (datetime(2026, 1, 2, 8, tzinfo=utc), datetime(2026, 1, 2, 8, tzinfo=utc))
    assert got[1][11:18] == ("business", "ACME GmbH", "retail", 120, True, False, True)
    assert got[1][21:23] == (date(2027, 6, 30), "u1")


BAD_REGISTRATIONS = [
    (registration(None), "missing_user_id", "user_id"),
    (registration("r1", registered_at="yesterday"), "bad_timestamp", "registered_at"),
    (registration("r2", registered_at=None), "bad_timestamp", "registered_at"),
    (registration("r3", updated_at="2026-13-01T00:00:00Z"), "bad_timestamp", "updated_at"),
    (registration("r4", registered_at="1899-12-31T23:59:59Z"), "timestamp_out_of_range", "registered_at"),
    (registration("r5", email="not-an-email"), "invalid_email", "email"),
    (registration("r6", phone="015112345678"), "invalid_phone", "phone"),
    (registration("r7", customer_type="reseller"), "invalid_customer_type", "customer_type"),
    (registration("r8", customer_type=None), "invalid_customer_type", "customer_type"),
    (registration("r9", sms_opt_in="maybe"), "invalid_boolean", "sms_opt_in"),
    (registration("r10", employees="12.5"), "invalid_number", "employees"),
    (registration("r11", employees="-3"), "invalid_number", "employees"),
    (registration("r12", birth_date="1990-02-30"), "invalid_date", "birth_date"),
    (registration("r13", contract_end_date="next year"), "invalid_date", "contract_end_date"),
    (registration("r14", timezone="Mars/Olympus"), "invalid_timezone", "timezone"),
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_registration_quarantine_reason(tmp_path, fmt):
    landing = tmp_path / "landing"
    good = registration("good")
    lines = [good] + [r for r, _, _ in BAD_REGISTRATIONS]
    name = f"registrations/bad.{fmt}"
    if fmt == "csv":
        lines += ["only,three,columns", 'u-q,"unterminated,quote', 'u-m,"a"b,c']
        write_csv(landing / name, REGISTRATION_HEADER, lines)
        first = 3  # header is line 1, the good row line 2
    else:
        lines += ["{broken", "42"]
        write_jsonl(landing / name, lines)
        first = 2
    with warehouse(tmp_path) as con:
        stats = ingest(con, "registrations", landing)
        got = quarantine(con, "registrations")
        assert rows(con, "select user_id from raw_registrations") == [("good",)]
    expected = [(name, first + i, reason, field) for i, (_, reason, field) in enumerate(BAD_REGISTRATIONS)]
    n = len(BAD_REGISTRATIONS)
    if fmt == "csv":
        expected += [(name, first + n, "wrong_column_count", None), (name, first + n + 1, "unclosed_quote", None),
                     (name, first + n + 2, "malformed_csv", None)]
    else:
        expected += [(name, first + n, "unparseable_json", None), (name, first + n + 1, "not_an_object", None)]
    assert got == expected
    assert stats.rows_read == len(lines) and stats.rows_quarantined == len(lines) - 1


def test_csv_quoted_newlines_keep_physical_line_numbers(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "registrations" / "r.csv", REGISTRATION_HEADER, [
        registration("u1", first_name="two\nlines"),
        registration("u2", email="bad"),
        registration("u3"),
    ])
    with warehouse(tmp_path) as con:
        ingest(con, "registrations", landing)
        assert quarantine(con, "registrations") == [("registrations/r.csv", 4, "invalid_email", "email")]
        assert rows(con, "select user_id, first_name, _source_line from raw_registrations order by 1") == [
            ("u1", "two\nlines", 2), ("u3", "Ann", 5)]


def test_csv_header_order_extra_columns_bom_crlf_and_invalid_utf8(tmp_path):
    landing = tmp_path / "landing"
    path = landing / "orders" / "o.csv"
    path.parent.mkdir(parents=True)
    body = (
        "\ufeffStatus,Order_ID,user_id,ordered_at,amount,currency,note\r\n"
        "paid,o1,u1,2026-02-01 12:00:00,10.5,EUR,hello\r\n"
        "\r\n"
    ).encode() + b"paid,o2,u1,2026-02-01 12:00:00,1,EUR,caf\xe9\r\n"
    path.write_bytes(body)
    with warehouse(tmp_path) as con:
        stats = ingest(con, "orders", landing)
        assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (2, 1, 1)
        assert rows(con, "select order_id, status, amount, ordered_at, items, channel from raw_orders") == [
            ("o1", "paid", Decimal("10.50"), datetime(2026, 2, 1, 12, tzinfo=UTC), None, None)]
        assert quarantine(con, "orders") == [("orders/o.csv", 4, "invalid_utf8", None)]
        assert rows(con, "select raw_content from quarantine_orders")[0][0].endswith("636166E90D")


BAD_ORDERS = [
    (order(None), "missing_order_id", "order_id"),
    (order("b1", user_id=None), "missing_user_id", "user_id"),
    (order("b2", ordered_at="2026-02-30 99:00"), "bad_timestamp", "ordered_at"),
    (order("b3", updated_at="last tuesday"), "bad_timestamp", "updated_at"),
    (order("b4", ordered_at="2150-01-01T00:00:00Z"), "timestamp_out_of_range", "ordered_at"),
    (order("b5", status="shipped"), "unknown_status", "status"),
    (order("b6", amount="12,50"), "invalid_amount", "amount"),
    (order("b7", amount=None), "invalid_amount", "amount"),
    (order("b8", amount="1.005"), "invalid_amount", "amount"),
    (order("b9", amount="-12.50"), "negative_amount", "amount"),
    (order("b10", currency="eur"), "invalid_currency", "currency"),
    (order("b11", currency="XYZ"), "invalid_currency", "currency"),
    (order("b12", items="not-json"), "invalid_items", "items"),
    (order("b13", items={"sku": "SKU-1"}), "invalid_items", "items"),
    (order("b14", items=[{"sku": "S", "quantity": 0, "unit_price": 1}]), "invalid_items", "items"),
    (order("b15", items=[{"sku": "", "quantity": 1, "unit_price": 1}]), "invalid_items", "items"),
    (order("b16", items=[{"sku": "S", "quantity": 1, "unit_price": -1}]), "invalid_items", "items"),
    (order("b17", items=[{"sku": "S", "quantity": 1.5, "unit_price": 1}]), "invalid_items", "items"),
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_order_quarantine_reason(tmp_path, fmt):
    landing = tmp_path / "landing"
    lines = [order("good", items=DROP, channel=DROP)] + [o for o, _, _ in BAD_ORDERS]
    name = f"orders/bad.{fmt}"
    if fmt == "csv":
        write_csv(landing / name, ORDER_HEADER, lines + ["o-x,u1"])
        first = 3
    else:
        write_jsonl(landing / name, lines)
        first = 2
    with warehouse(tmp_path) as con:
        ingest(con, "orders", landing)
        got = quarantine(con, "orders")
        assert rows(con, "select order_id, items, channel from raw_orders") == [("good", None, None)]
    expected = [(name, first + i, reason, field) for i, (_, reason, field) in enumerate(BAD_ORDERS)]
    if fmt == "csv":
        expected.append((name, first + len(BAD_ORDERS), "wrong_column_count", None))
    assert got == expected


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_order_items_and_amount_types(tmp_path, fmt):
    landing = tmp_path / "landing"
    items = [{"sku": "SKU-1", "category": "shoes", "quantity": 2, "unit_price": 12.5},
             {"sku": "SKU-2", "category": None, "quantity": 1, "unit_price": 0}]
    data = [order("o1", items=items, amount="25"), order("o2", items=[], amount=0, currency="JPY")]
    if fmt == "csv":
        write_csv(landing / "orders" / "o.csv", ORDER_HEADER, data)
    else:
        write_jsonl(landing / "orders" / "o.jsonl", data)
    with warehouse(tmp_path) as con:
        ingest(con, "orders", landing)
        got = rows(con, """select order_id, amount, currency, json_array_length(items),
                                  items->>'$[0].sku', (items->'$[0].quantity')::int from raw_orders order by 1""")
    assert got == [("o1", Decimal("25.00"), "EUR", 2, "SKU-1", 2), ("o2", Decimal("0.00"), "JPY", 0, None, None)]


def test_last_write_wins_by_updated_at_then_file_then_line(tmp_path):
    landing = tmp_path / "landing"
    # a.csv: the newest version of u1 is line 3; u2 has two versions with the same updated_at
    write_csv(landing / "registrations" / "a.csv", REGISTRATION_HEADER, [
        registration("u1", city="Old", updated_at="2026-01-05T00:00:00Z"),
        registration("u1", city="New", updated_at="2026-01-06T00:00:00Z"),
        registration("u2", city="Tie-a1", updated_at="2026-01-05T00:00:00Z"),
        registration("u2", city="Tie-a2", updated_at="2026-01-05T00:00:00Z"),
    ])
    # b.jsonl sorts after a.csv: wins the u2 tie; its u1 row is older and loses
    write_jsonl(landing / "registrations" / "b.jsonl", [
        registration("u1", city="Older", updated_at="2026-01-04T00:00:00Z"),
        registration("u2", city="Tie-b", updated_at="2026-01-05T00:00:00Z"),
    ])
    with warehouse(tmp_path) as con:
        stats = ingest(con, "registrations", landing)
        assert (stats.rows_read, stats.rows_loaded, stats.duplicates_skipped) == (6, 2, 4)
        assert rows(con, "select user_id, city from raw_registrations order by 1") == [
            ("u1", "New"), ("u2", "Tie-b")]
        # a later delivery: a newer version updates (loaded), an older one is a duplicate
        write_csv(landing / "registrations" / "c.csv", REGISTRATION_HEADER, [
            registration("u1", city="Newest", updated_at="2026-02-01T00:00:00Z"),
            registration("u2", city="Stale", updated_at="2026-01-01T00:00:00Z"),
        ])
        again = ingest(con, "registrations", landing)
        assert (again.rows_read, again.rows_loaded, again.duplicates_skipped) == (2, 1, 1)
        assert rows(con, "select user_id, city, _source_file from raw_registrations order by 1") == [
            ("u1", "Newest", "registrations/c.csv"), ("u2", "Tie-b", "registrations/b.jsonl")]


def test_order_refund_update_replaces_paid_version(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "orders" / "orders-2026-02.csv", ORDER_HEADER, [order("o1"), order("o2", user_id="guest")])
    with warehouse(tmp_path) as con:
        ingest(con, "orders", landing)
        write_jsonl(landing / "orders" / "orders-refunds-2026-02.jsonl", [
            order("o1", status="refunded", updated_at="2026-02-10T00:00:00Z"),
            order("o2", user_id="guest"),  # identical re-delivery, other format
        ])
        stats = ingest(con, "orders", landing)
        assert (stats.rows_loaded, stats.duplicates_skipped) == (1, 1)
        assert rows(con, "select order_id, user_id, status, updated_at from raw_orders order by 1") == [
            ("o1", "u1", "refunded", datetime(2026, 2, 10, tzinfo=UTC)),
            ("o2", "guest", "paid", datetime(2026, 2, 1, 12, tzinfo=UTC)),  # no registration: kept
        ]


def test_csv_well_formed_check_equals_a_full_match_of_the_field_grammar():
    """The parser decides well-formedness from whether its field matches tile the line (one regex
    pass); it must agree with a full match of (,field)* and give the same cells."""
    import duckdb
    import pyarrow as pa

    from connectors.sources.sql_parts import CSV_FIELD_RE, csv_fields_sql, sql_str

    lines = ['a,b,c', 'a,"b""c",d', 'a,"b"c', 'a,"unterminated', '"x"y,z', 'a,b"c', ',,', '""', '"a,b",""',
             'a,"b""",c', '"""",x', '"a""b', 'é,"ü""",ß', ' a , "b" ,c', '"a\nb",c']
    header = b"h\n"
    data = header + b"".join(line.encode() + b"\n" for line in lines)
    ends = [len(header)]
    for line in lines:
        ends.append(ends[-1] + len(line.encode()) + 1)
    records = pa.table({"file_id": pa.array([0] * (len(lines) + 1), pa.int32()),
                        "line_number": pa.array(range(1, len(lines) + 2), pa.int64()),
                        "line": pa.array([data[s:e] for s, e in zip([0, *ends[:-1]], ends, strict=True)],
                                         pa.large_binary()),
                        "ascii": pa.array([all(b < 128 for b in data[s:e]) for s, e in
                                           zip([0, *ends[:-1]], ends, strict=True)]),
                        "problem": pa.nulls(len(lines) + 1, pa.string()),
                        "preview": pa.nulls(len(lines) + 1, pa.large_binary()),
                        "ctrl": pa.array([False] * (len(lines) + 1))})
    con = duckdb.connect()
    con.register("_records", records)
    got = con.execute(f"select line_number, pre_reason = 'malformed_csv' from ({csv_fields_sql('_records', ('h',))})"
                      " order by 1").fetchall()
    expected = [not con.execute(f"select regexp_full_match(',' || ?, '(?:' || {sql_str(CSV_FIELD_RE)} || ')*')",
                                [line]).fetchone()[0] for line in lines]
    assert [bool(m) for _, m in got] == expected
    assert any(expected) and not all(expected)


def test_order_items_missing_a_required_field_are_invalid(tmp_path):
    """Bug fixed with the one-parse items check: an item without sku, quantity or unit_price passed
    (a NULL from the missing path made the whole check NULL, read as valid)."""
    landing = tmp_path / "landing"
    full = {"sku": "S", "category": None, "quantity": 1, "unit_price": 2}
    items = [[{k: v for k, v in full.items() if k != drop}] for drop in ("sku", "quantity", "unit_price", "category")]
    write_jsonl(landing / "orders" / "o.jsonl", [order(f"o{i}", items=it) for i, it in enumerate(items)]
                + [order("o9", items=[full, 3]), order("o8", items=[full, None])])
    with warehouse(tmp_path) as con:
        ingest(con, "orders", landing)
        assert rows(con, "select order_id from raw_orders") == [("o3",)]  # category is optional
        assert {r[2] for r in quarantine(con, "orders")} == {"invalid_items"}
