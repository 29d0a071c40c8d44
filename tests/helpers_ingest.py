"""Shared helpers for the ingestion tests: write landing files, run an ingest, read tables back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from connectors.sources.files import IngestStats, ingest_source
from crmflow.warehouse import connect

AS_OF = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)

REGISTRATION_HEADER = (
    "user_id,registered_at,updated_at,email,phone,first_name,country,city,locale,timezone,"
    "acquisition_channel,customer_type,company_name,industry,employees,email_opt_in,sms_opt_in,"
    "push_opt_in,push_token,birth_date,gender,contract_end_date,referred_by"
)
ORDER_HEADER = "order_id,user_id,ordered_at,updated_at,status,amount,currency,items,channel"


def event(message_id: str = "m1", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "message_id": message_id,
        "type": "track",
        "event": "Product Viewed",
        "user_id": "u1",
        "anonymous_id": "a1",
        "timestamp": "2026-03-01T10:00:00+01:00",
        "properties": {"sku": "SKU-1"},
        "context": {"locale": "de-DE", "timezone": "Europe/Berlin", "device": {"type": "mobile"}},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


def registration(user_id: str = "u1", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "user_id": user_id, "registered_at": "2026-01-01T09:00:00Z", "updated_at": "2026-01-01T09:00:00Z",
        "email": f"{user_id}@example.com", "phone": "+4915112345678", "first_name": "Ann", "country": "DE",
        "city": "Berlin", "locale": "de-DE", "timezone": "Europe/Berlin", "acquisition_channel": "seo",
        "customer_type": "individual", "company_name": None, "industry": None, "employees": None,
        "email_opt_in": True, "sms_opt_in": False, "push_opt_in": True, "push_token": "fcm-1",
        "birth_date": "1990-02-03", "gender": "f", "contract_end_date": None, "referred_by": None,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


def order(order_id: str = "o1", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "order_id": order_id, "user_id": "u1", "ordered_at": "2026-02-01T12:00:00Z",
        "updated_at": "2026-02-01T12:00:00Z", "status": "paid", "amount": "25.00", "currency": "EUR",
        "items": [{"sku": "SKU-1", "category": "shoes", "quantity": 2, "unit_price": 12.5}],
        "channel": "web",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


class _Drop:
    """Marker: leave the key out of the row entirely."""


_DROP = _Drop()
DROP: Any = _DROP


def write_jsonl(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    """Rows as JSON lines; a str row is written verbatim (for broken lines and blank lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = json.dumps(value) if isinstance(value, list | dict) else str(value)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv(path: Path, header: str, rows: list[dict[str, Any] | str]) -> Path:
    """CSV with the given header; dict rows follow the header's column order, str rows are verbatim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = header.split(",")
    lines = [header] + [
        r if isinstance(r, str) else ",".join(csv_cell(r.get(c)) for c in columns) for r in rows
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@contextmanager
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "warehouse.duckdb") as con:
        yield con


def ingest(con: duckdb.DuckDBPyConnection, source: str, landing: Path, **kwargs: Any) -> IngestStats:
    stats = ingest_source(con, source, landing, loaded_at=AS_OF, **kwargs)
    assert stats.balanced, stats
    return stats


def quarantine(con: duckdb.DuckDBPyConnection, source: str) -> list[tuple[str, int, str, str | None]]:
    """(source_file, line_number, reason, field) in file/line order."""
    return con.execute(
        f"select source_file, line_number, reason, field from quarantine_{source} order by 1, 2"
    ).fetchall()


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()
