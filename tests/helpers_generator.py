"""Reference checks for generated landing files: an independent, slow-but-obvious row classifier.

It re-derives the quarantine reason of every line the way the contract describes, so the tests can
compare it with the generator's manifest (row-by-row Python is fine here: test data is tiny).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.sources.contracts import ORDER_STATUSES

EVENT_TYPES = {"track", "identify", "page", "screen"}
LOW = datetime(1900, 1, 1, tzinfo=UTC)
HIGH = datetime(2100, 1, 1, tzinfo=UTC)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
REG_COLUMNS = [
    "user_id", "registered_at", "updated_at", "email", "phone", "first_name", "country", "city", "locale",
    "timezone", "acquisition_channel", "customer_type", "company_name", "industry", "employees",
    "email_opt_in", "sms_opt_in", "push_opt_in", "push_token", "birth_date", "gender",
    "contract_end_date", "referred_by",
]
ORDER_COLUMNS = ["order_id", "user_id", "ordered_at", "updated_at", "status", "amount", "currency", "items", "channel"]


def parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def classify_event(raw: bytes) -> tuple[str | None, dict | None]:
    """(reason or None, parsed object)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return "unparseable_json", None
    if not isinstance(obj, dict):
        return "not_an_object", None
    if not obj.get("message_id"):
        return "missing_message_id", obj
    if obj.get("type") not in EVENT_TYPES:
        return "invalid_type", obj
    if obj["type"] == "track" and not obj.get("event"):
        return "missing_event_name", obj
    if not obj.get("user_id") and not obj.get("anonymous_id"):
        return "missing_identity", obj
    ts = parse_ts(obj.get("timestamp"))
    if ts is None:
        return "bad_timestamp", obj
    if not LOW <= ts < HIGH:
        return "timestamp_out_of_range", obj
    if not isinstance(obj.get("properties"), dict):
        return "invalid_properties", obj
    return None, obj


def _is_bool(value: object, from_csv: bool) -> bool:
    return value in ("true", "false") if from_csv else isinstance(value, bool)


def classify_registration(row: dict, from_csv: bool) -> str | None:
    if not row.get("user_id"):
        return "missing_user_id"
    if parse_ts(row.get("registered_at")) is None or parse_ts(row.get("updated_at")) is None:
        return "bad_timestamp"
    if not EMAIL.match(row.get("email") or ""):
        return "invalid_email"
    if row.get("phone") and not E164.match(row["phone"]):
        return "invalid_phone"
    if row.get("customer_type") not in ("individual", "business"):
        return "invalid_customer_type"
    if not all(_is_bool(row.get(k), from_csv) for k in ("email_opt_in", "sms_opt_in", "push_opt_in")):
        return "invalid_boolean"
    employees = row.get("employees")
    if employees not in (None, "") and not (isinstance(employees, int) or str(employees).isdigit()):
        return "invalid_number"
    for key in ("birth_date", "contract_end_date"):
        if row.get(key):
            try:
                date.fromisoformat(row[key])
            except ValueError:
                return "invalid_date"
    try:
        ZoneInfo(row.get("timezone") or "")
    except (ValueError, KeyError, Exception):
        return "invalid_timezone"
    return None


def classify_order(row: dict) -> str | None:
    if not row.get("order_id"):
        return "missing_order_id"
    if not row.get("user_id"):
        return "missing_user_id"
    if parse_ts(row.get("ordered_at")) is None or parse_ts(row.get("updated_at")) is None:
        return "bad_timestamp"
    try:
        amount = Decimal(str(row.get("amount")))
    except InvalidOperation:
        return "invalid_amount"
    if amount < 0:
        return "negative_amount"
    if row.get("status") not in ORDER_STATUSES:
        return "unknown_status"
    if row.get("currency") not in ("CNY", "USD"):
        return "invalid_currency"
    items = row.get("items")
    if isinstance(items, str):
        try:
            items = json.loads(items)
        except json.JSONDecodeError:
            return "invalid_items"
    if not isinstance(items, list):
        return "invalid_items"
    return None


def read_table_rows(folder: Path, columns: list[str]) -> list[tuple[str, dict | None, bool]]:
    """(reason placeholder '' / 'wrong_column_count', row, from_csv) for every data row in CSV and JSONL."""
    out: list[tuple[str, dict | None, bool]] = []
    for path in sorted(folder.glob("*.csv")):
        reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8")))
        header = next(reader)
        assert header == columns, f"{path}: header {header}"
        for fields in reader:
            if len(fields) != len(columns):
                out.append(("wrong_column_count", None, True))
            else:
                out.append(("", {k: (v if v != "" else None) for k, v in zip(columns, fields, strict=True)}, True))
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            out.append(("", json.loads(line), False))
    return out


def event_census(folder: Path) -> tuple[Counter, int, list[dict]]:
    """(bad lines per reason, duplicate lines, good events)."""
    reasons: Counter = Counter()
    seen: set[str] = set()
    duplicates = 0
    good: list[dict] = []
    for path in sorted(folder.glob("*.jsonl")):
        for raw in path.read_bytes().splitlines():
            reason, obj = classify_event(raw)
            if reason:
                reasons[reason] += 1
            elif obj["message_id"] in seen:
                duplicates += 1
            else:
                seen.add(obj["message_id"])
                good.append(obj)
    return reasons, duplicates, good
