"""Order rows: web/store/sales-rep orders as CSV, app orders as JSONL, refunds as later CSV rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmflow.generator.format import (
    int_str,
    iso_utc,
    iso_with_offset,
    join,
    lookup,
    money_str,
    padded,
    utc_offset_minutes,
)
from crmflow.generator.table import Batch, TextTable, alternate, clean_and_dirty_batches, set_value
from crmflow.generator.world import CATEGORIES, ORDER_CHANNELS, ORDER_STATUS, TIMEZONES, Catalogue, Orders

COLUMNS = ["order_id", "user_id", "ordered_at", "updated_at", "status", "amount", "currency", "items", "channel"]
SKU_NAMES = [f"SKU-{i:04d}" for i in range(200)]
APP = ORDER_CHANNELS.index("app")

DEFECTS = {
    "missing_order_id": lambda t, r: set_value(t, "order_id", None),
    "missing_user_id": lambda t, r: set_value(t, "user_id", None),
    "bad_timestamp": lambda t, r: alternate(t, "ordered_at", "2026-02-30 99:00", "last tuesday"),
    "negative_amount": lambda t, r: set_value(t, "amount", "-12.50"),
    "invalid_amount": lambda t, r: alternate(t, "amount", "12,50", "abc", quoted=True),
    "unknown_status": lambda t, r: set_value(t, "status", "lost_in_transit"),
    "invalid_currency": lambda t, r: alternate(t, "currency", "US$", "yuan"),
    "invalid_items": lambda t, r: _not_an_array(t),
    "wrong_column_count": lambda t, r: setattr(t, "extra_csv_field", np.ones(len(t), dtype=bool)),
}


def _not_an_array(table: TextTable) -> None:
    """Half the rows: the string "not-json"; half: a JSON object where an array belongs."""
    alternate(table, "items", "not-json", '{"sku":"SKU-0001"}')
    table.quoted_overrides["items"] = np.arange(len(table)) % 2 == 0


def order_ids(orders: Orders, first_seq: int) -> pa.Array:
    """o<ordered epoch>-<sequence>: unique in a run, and never reused by a later day's run."""
    seq = np.arange(first_seq, first_seq + len(orders))
    return join("o", int_str(orders.ordered_s), "-", pc.utf8_lpad(int_str(seq), 8, "0"))


def items_json(orders: Orders, cat: Catalogue) -> pa.Array:
    sku = orders.item_sku
    item = join(
        '{"sku":"', lookup(SKU_NAMES, sku), '","category":"', lookup(CATEGORIES, cat.category[sku]),
        '","quantity":', int_str(orders.item_qty), ',"unit_price":', money_str(orders.item_unit_cents), "}",
    )
    grouped = pa.ListArray.from_arrays(pa.array(orders.item_offsets.astype(np.int32)), item)
    return join("[", pc.binary_join(grouped, ","), "]")


def order_batches(
    rng: np.random.Generator, orders: Orders, ids: pa.Array, user_ids: pa.Array, guest_first: int,
    cat: Catalogue, dirty_fraction: float, with_items: bool = True,
) -> tuple[list[Batch], dict[str, int]]:
    n = len(orders)
    member = orders.user >= 0
    uid = pc.if_else(pa.array(member), user_ids.take(pa.array(np.where(member, orders.user, 0))),
                     padded("g", guest_first + np.maximum(orders.guest, 0), 8))
    as_jsonl = orders.channel == APP
    offsets = utc_offset_minutes(orders.ordered_s, orders.tz, TIMEZONES)
    jsonl_flag = pa.array(as_jsonl)
    first_status = np.where(orders.status == ORDER_STATUS.index("refunded"), 0, orders.status)
    values = {
        "order_id": ids,
        "user_id": uid,
        "ordered_at": pc.if_else(jsonl_flag, iso_with_offset(orders.ordered_s, offsets), iso_utc(orders.ordered_s)),
        "updated_at": pc.if_else(jsonl_flag, iso_with_offset(orders.updated_s, offsets), iso_utc(orders.updated_s)),
        "status": lookup(ORDER_STATUS, first_status),
        "amount": money_str(orders.amount_cents),
        "currency": lookup(("USD", "CNY"), orders.zh.astype(np.int64)),
        "items": items_json(orders, cat) if with_items else pa.nulls(n, pa.string()),
        "channel": lookup(ORDER_CHANNELS, orders.channel),
    }
    kinds = {c: "str" for c in COLUMNS} | {"amount": "raw", "items": "raw"}
    clean = TextTable(COLUMNS, values, kinds)

    refunded = np.flatnonzero(orders.refund_s < np.iinfo(np.int64).max)
    refunds = clean.take(refunded)
    refunds.values["status"] = lookup(ORDER_STATUS, np.full(len(refunded), ORDER_STATUS.index("refunded")))
    refunds.values["ordered_at"] = iso_utc(orders.ordered_s[refunded])
    refunds.values["updated_at"] = iso_utc(orders.refund_s[refunded])

    batches, dirty_counts = clean_and_dirty_batches(
        rng, "orders", clean, orders.ordered_s, as_jsonl, dirty_fraction, DEFECTS, "order_id")
    batches.append(Batch("orders", "orders-refunds", "csv", orders.refund_s[refunded], refunds.csv_lines(),
                         refunds.header()))
    counts = {"orders": n, "order_refund_rows": len(refunded), "guest_orders": int((~member).sum())}
    counts.update(dirty_counts)
    return batches, counts
