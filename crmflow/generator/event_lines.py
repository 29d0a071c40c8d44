"""Segment-like JSON lines for the simulated events, plus bad lines and re-delivered duplicates.

A line is the concatenation of fragments (one string array per key, "" when the key is absent), so
each defect is a change of one fragment for the chosen rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmflow.generator.events import (
    BANNER_CLICKED,
    BANNER_VIEWED,
    CAMPAIGNS,
    CART_ABANDONED,
    CHECKOUT_STARTED,
    EVENT_NAMES,
    EVENT_TYPES,
    NO_EVENT,
    ORDER_COMPLETED,
    PAGE,
    PAGES,
    PRODUCT_ADDED,
    PRODUCT_VIEWED,
    SCREEN,
    SCREENS,
    SLOTS,
    Events,
)
from crmflow.generator.format import (
    int_str,
    iso_with_offset,
    join,
    lookup,
    money_str,
    padded,
    to_binary,
    utc_offset_minutes,
)
from crmflow.generator.order_rows import SKU_NAMES
from crmflow.generator.registrations import scramble
from crmflow.generator.table import Batch, pick_dirty
from crmflow.generator.world import CATEGORIES, DEVICES, LOCALES, TIMEZONES, Catalogue, Users

FRAGMENTS = ("open", "message_id", "type", "event", "user_id", "anonymous_id", "timestamp", "properties",
             "context", "close")
Fragments = dict[str, pa.Array]


def _const(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, np.int64)))


def _alternating(first: str, second: str, n: int) -> pa.Array:
    return pa.array([first, second], pa.string()).take(pa.array(np.arange(n) % 2))


DEFECTS: dict[str, Callable[[Fragments, int], None]] = {
    "invalid_utf8": lambda f, n: f.update(open=_const("{", n), properties=_const('"properties":{"note":"\x00"},', n)),
    "unparseable_json": lambda f, n: f.update(close=_const("", n), context=_const('"context":{"locale":', n)),
    "not_an_object": lambda f, n: f.update(open=_const('[{', n), close=_const("}]", n)),
    "missing_message_id": lambda f, n: f.update(message_id=_const("", n)),
    "invalid_type": lambda f, n: f.update(type=_const('"type":"hover",', n)),
    "missing_event_name": lambda f, n: f.update(type=_const('"type":"track",', n), event=_const("", n)),
    "missing_identity": lambda f, n: f.update(user_id=_const("", n), anonymous_id=_const("", n)),
    "bad_timestamp": lambda f, n: f.update(timestamp=_alternating(
        '"timestamp":"2026-02-30T25:61:00+08:00",', '"timestamp":"not a time",', n)),
    "timestamp_out_of_range": lambda f, n: f.update(timestamp=_alternating(
        '"timestamp":"1850-01-01T00:00:00+00:00",', '"timestamp":"2150-06-01T12:00:00+00:00",', n)),
    "invalid_properties": lambda f, n: f.update(properties=_const('"properties":"sku=SKU-0001",', n)),
}
# Placeholder byte in the invalid_utf8 defect, swapped for bytes that are not UTF-8 after encoding.
_BAD_BYTES_MARK = b"\x00"
_BAD_BYTES = b"\xff\xfe\xfa"


def event_fragments(
    ev: Events, users: Users, order_ids: pa.Array, cat: Catalogue, visitor_first: int, first_seq: int,
) -> Fragments:
    n = len(ev)
    known = ev.user >= 0
    safe_user = np.where(known, ev.user, 0)
    seq = np.arange(first_seq, first_seq + n)
    message_id = join("m", int_str(ev.t), "-", pc.utf8_lpad(int_str(seq), 9, "0"))
    user_id = padded("u", users.index[safe_user], 8)
    anon = pc.if_else(pa.array(known), padded("anon-", scramble(users.index[safe_user], 3), 12),
                      padded("anon-v", scramble(visitor_first + np.maximum(ev.visitor, 0), 5), 12))
    name = lookup(EVENT_NAMES, np.maximum(ev.event, 0))
    offsets = utc_offset_minutes(ev.t, ev.tz, TIMEZONES)
    return {
        "open": _const("{", n),
        "message_id": join('"message_id":"', message_id, '",'),
        "type": join('"type":"', lookup(EVENT_TYPES, ev.type), '",'),
        "event": pc.if_else(pa.array(ev.event != NO_EVENT), join('"event":"', name, '",'), _const("", n)),
        "user_id": pc.if_else(pa.array(ev.with_user_id & known), join('"user_id":"', user_id, '",'), _const("", n)),
        "anonymous_id": pc.if_else(pa.array(ev.with_anonymous_id), join('"anonymous_id":"', anon, '",'),
                                   _const("", n)),
        "timestamp": join('"timestamp":"', iso_with_offset(ev.t, offsets), '",'),
        "properties": join('"properties":', _properties(ev, order_ids, cat), ","),
        "context": join('"context":', _context(ev), ""),
        "close": _const("}", n),
    }


def _properties(ev: Events, order_ids: pa.Array, cat: Catalogue) -> pa.Array:
    n = len(ev)
    sku = np.maximum(ev.sku, 0)
    currency = lookup(("USD", "CNY"), ev.zh.astype(np.int64))
    price = cat.price_usd_cents[sku] * np.where(ev.zh, 7, 1)
    product = join('{"sku":"', lookup(SKU_NAMES, sku), '","category":"', lookup(CATEGORIES, cat.category[sku]),
                   '","price":', money_str(price), ',"currency":"', currency, '"}')
    banner = join('{"slot":"', lookup(SLOTS, ev.slot), '","creative_id":"cr-',
                  pc.utf8_lpad(int_str(ev.creative), 3, "0"), '"}')
    value = money_str(np.maximum(ev.cart_cents, 0))
    cart = join('{"cart_value":', value, ',"currency":"', currency, '"}')
    order_id = order_ids.take(pa.array(np.maximum(ev.order, 0))) if len(order_ids) else _const("", n)
    completed = join('{"order_id":"', order_id, '","revenue":', value, ',"currency":"', currency, '"}')
    page = join('{"path":"', lookup(PAGES, ev.page), '"}')
    screen = join('{"name":"', lookup(SCREENS, ev.page % len(SCREENS)), '"}')
    out = _const("{}", n)
    choices = [
        (np.isin(ev.event, [PRODUCT_VIEWED, PRODUCT_ADDED]), product),
        (np.isin(ev.event, [BANNER_VIEWED, BANNER_CLICKED]), banner),
        (np.isin(ev.event, [CART_ABANDONED, CHECKOUT_STARTED]), cart),
        (ev.event == ORDER_COMPLETED, completed),
        (ev.type == PAGE, page),
        (ev.type == SCREEN, screen),
    ]
    for mask, value_array in choices:  # one pass per property shape
        out = pc.if_else(pa.array(mask), value_array, out)
    return out


def _context(ev: Events) -> pa.Array:
    campaign = ["" if not src else f',"campaign":{{"source":"{src}","medium":"{med}","name":"{name}"}}'
                for src, med, name in CAMPAIGNS]
    entity = np.where(ev.user >= 0, ev.user, ev.visitor + 7)
    ip = join("10.", int_str(entity // 65536 % 256), ".", int_str(entity // 256 % 256), ".", int_str(entity % 256))
    return join('{"locale":"', lookup(LOCALES, np.where(ev.zh, 0, 1)), '","timezone":"', lookup(TIMEZONES, ev.tz),
                '","device":{"type":"', lookup(DEVICES, ev.device), '"}', lookup(campaign, ev.campaign),
                ',"ip":"', ip, '"}')


def assemble(fragments: Fragments) -> pa.Array:
    return to_binary(join(*[fragments[k] for k in FRAGMENTS]))


def event_batches(
    rng: np.random.Generator, ev: Events, fragments: Fragments, dirty_fraction: float,
    duplicate_fraction: float = 0.004,
) -> tuple[list[Batch], dict[str, int]]:
    clean = assemble(fragments)
    reasons = list(DEFECTS)
    source, reason = pick_dirty(rng, len(clean), dirty_fraction, reasons)
    lines: list[pa.Array] = [clean]
    times = [ev.t]
    counts: dict[str, int] = {}
    for code, name in enumerate(reasons):  # one pass per reason, not per row
        rows = source[reason == code]
        counts[f"dirty.events.{name}"] = len(rows)
        if not len(rows):
            continue
        idx = pa.array(rows)
        part = {k: v.take(idx) for k, v in fragments.items()}
        part["message_id"] = join(pc.replace_substring(part["message_id"], '",', ""), f'-bad{code}",')
        DEFECTS[name](part, len(rows))
        line = assemble(part)
        if name == "invalid_utf8":
            line = pc.replace_substring(line, _BAD_BYTES_MARK, _BAD_BYTES)
        lines.append(line)
        times.append(ev.t[rows])
    # Re-delivered events: the very same line again (same message_id), not a bad row.
    dup = rng.integers(0, len(clean), int(round(duplicate_fraction * len(clean)))) if len(clean) else []
    dup = np.asarray(dup, dtype=np.int64)
    lines.append(clean.take(pa.array(dup)))
    times.append(ev.t[dup])
    counts["events"] = len(clean)
    counts["event_duplicates"] = len(dup)
    batch = Batch("events", "events", "jsonl", np.concatenate(times), pa.concat_arrays(lines))
    return [batch], counts
