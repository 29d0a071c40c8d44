"""A small vectorised simulator of the dbt tables the intelligence models read.

With signal=True customers have their own purchase rate and a hidden "lifetime": after it they stop
buying, and their app/web activity fades out ~3 weeks before that. So churn is predictable, and a
model that sees frequency and engagement should beat plain "days since last purchase". With
signal=False everyone buys at the same memoryless rate forever: nothing predicts the future.
Products come in taste groups (a customer buys inside a few groups), so co-purchase carries signal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from crmflow.warehouse import Warehouse, as_warehouse

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
CATEGORIES = ("shoes", "outerwear", "kids", "home", "beauty", "sports")
GROUPS_PER_CATEGORY = 2
SKUS_PER_GROUP = 6


def _ts(base: datetime, days: np.ndarray) -> pd.Series:
    return pd.Series(pd.Timestamp(base) + pd.to_timedelta(days, unit="D")).dt.floor("s")


def simulate_tables(
    users: int = 3000,
    days: int = 540,
    end: datetime = AS_OF,
    seed: int = 0,
    signal: bool = True,
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    uid = np.array([f"u{i:06d}" for i in range(users)], dtype=object)
    reg = rng.uniform(0, days - 30, users)  # registration day offset from start
    if signal:
        rate = rng.gamma(1.5, 1 / 45, users)  # orders per day, heterogeneous
        life = rng.exponential(220, users)
        engagement = rng.gamma(2.0, 0.25, users)  # events per day while alive
    else:
        rate = np.full(users, 1 / 30)
        life = np.full(users, 1e9)
        engagement = np.full(users, 0.4)
    death = np.minimum(reg + life, days)
    window = np.maximum(death - reg, 0)

    # Orders: a Poisson process per user over its alive window, times uniform in the window.
    n_orders = rng.poisson(rate * window)
    o_user = np.repeat(np.arange(users), n_orders)
    o_day = reg[o_user] + rng.uniform(0, 1, o_user.size) * window[o_user]
    basket = rng.lognormal(3.5, 0.5, users)
    amount = np.round(basket[o_user] * rng.lognormal(0, 0.3, o_user.size), 2)
    mobile = rng.beta(1, 1, users)
    status = np.where(rng.uniform(size=o_user.size) < 0.05, "cancelled", "paid")
    order_id = np.array([f"o{i:07d}" for i in range(o_user.size)], dtype=object)
    orders = pd.DataFrame({
        "order_id": order_id,
        "user_id": uid[o_user],
        "ordered_at": _ts(start, o_day),
        "status": status,
        "amount": amount,
        "currency": "EUR",
        "channel": np.where(rng.uniform(size=o_user.size) < mobile[o_user], "app", "web"),
    })
    orders["updated_at"] = orders["ordered_at"]

    # Order lines: 1-3 per order; each user shops in two taste groups (one favourite).
    n_groups = len(CATEGORIES) * GROUPS_PER_CATEGORY
    fav = rng.integers(0, n_groups, users)
    second = rng.integers(0, n_groups, users)
    n_lines = rng.integers(1, 4, o_user.size)
    l_order = np.repeat(np.arange(o_user.size), n_lines)
    l_user = o_user[l_order]
    group = np.where(rng.uniform(size=l_order.size) < 0.7, fav[l_user], second[l_user])
    sku_in_group = np.minimum(rng.zipf(1.6, l_order.size) - 1, SKUS_PER_GROUP - 1)
    sku_num = group * SKUS_PER_GROUP + sku_in_group
    line_number = np.arange(l_order.size) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
    items = pd.DataFrame({
        "order_id": order_id[l_order],
        "user_id": uid[l_user],
        "ordered_at": orders["ordered_at"].to_numpy()[l_order],
        "status": status[l_order],
        "line_number": line_number,
        "sku": np.array([f"SKU{n:03d}" for n in range(n_groups * SKUS_PER_GROUP)], dtype=object)[sku_num],
        "category": np.array(CATEGORIES, dtype=object)[group // GROUPS_PER_CATEGORY],
        "quantity": 1,
        "unit_price": np.round(amount[l_order] / n_lines[l_order], 2),
    })
    items["line_amount"] = items["unit_price"] * items["quantity"]

    # Events: activity fades out three weeks before the customer's last possible order.
    e_end = np.maximum(death - (21 if signal else 0), reg)
    n_events = rng.poisson(engagement * (e_end - reg))
    e_user = np.repeat(np.arange(users), n_events)
    e_day = reg[e_user] + rng.uniform(0, 1, e_user.size) * (e_end - reg)[e_user]
    events = pd.DataFrame({
        "message_id": np.array([f"m{i:08d}" for i in range(e_user.size)], dtype=object),
        "user_id": uid[e_user],
        "anonymous_id": None,
        "event_type": "track",
        "event_name": "Product Viewed",
        "event_at": _ts(start, e_day),
        "properties": "{}",
        "context": "{}",
    })

    profile = pd.DataFrame({
        "user_id": uid,
        "registered_at": _ts(start, reg),
        "customer_type": np.where(rng.uniform(size=users) < 0.1, "business", "individual"),
        "acquisition_channel": rng.choice(np.array(["organic", "paid_search", "referral"], dtype=object), users),
        "email": [f"{u}@example.test" for u in uid],
    })
    return {"customer_profile": profile, "stg_shop__orders": orders, "stg_shop__order_items": items,
            "events_stitched": events}


# Arrow types of the simulated columns that pandas cannot tell (timestamps in UTC, money as decimal).
_ARROW_TYPES = {
    "ordered_at": pa.timestamp("us", tz="UTC"), "updated_at": pa.timestamp("us", tz="UTC"),
    "registered_at": pa.timestamp("us", tz="UTC"), "event_at": pa.timestamp("us", tz="UTC"),
    "amount": pa.decimal128(18, 2), "anonymous_id": pa.string(),
}


def load_tables(con: Warehouse | duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame]) -> None:
    """Write the simulated tables through the warehouse interface (DuckDB or PostgreSQL alike)."""
    wh = as_warehouse(con)
    for name, frame in tables.items():
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        schema = pa.schema([pa.field(f.name, _ARROW_TYPES.get(f.name, f.type)) for f in arrow.schema])
        wh.write_arrow(arrow.cast(schema), name, mode="replace")


def simulate_warehouse(con: Warehouse | duckdb.DuckDBPyConnection, **kwargs) -> dict[str, pd.DataFrame]:
    tables = simulate_tables(**kwargs)
    load_tables(con, tables)
    return tables


def blob_features(per_cluster: int = 400, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """A feature frame (as build_features returns) with four well-separated kinds of customer.

    `shift` nudges every value by a few percent: the same population a day later.
    """
    rng = np.random.default_rng(seed)
    # frequency, monetary/order, recency, tenure, events_90d, active_days, mobile share, cat_shoes
    kinds = np.array([
        [0.0, 0.0, 0.0, 60, 2, 1, 0.0, 0.0],      # prospects
        [20, 30, 10, 500, 150, 20, 0.9, 0.1],     # frequent mobile buyers, small baskets
        [3, 400, 200, 700, 5, 1, 0.1, 0.9],       # rare, big-basket shoe buyers, lapsed
        [6, 80, 40, 300, 40, 8, 0.5, 0.3],        # the middle
    ])
    rows = np.repeat(kinds, per_cluster, axis=0)
    noise = rng.lognormal(0, 0.15, rows.shape) * (1 + shift)
    values = rows * noise
    values[:, 6:] = np.clip(values[:, 6:], 0, 1)
    frequency = np.round(values[:, 0])
    users = np.array([f"b{i:05d}" for i in range(len(rows))], dtype=object)
    return pd.DataFrame({
        "user_id": users,
        "frequency": frequency,
        "monetary": frequency * values[:, 1],
        "avg_basket": np.where(frequency > 0, values[:, 1], 0.0),
        "recency_days": np.where(frequency > 0, values[:, 2], np.nan),
        "tenure_days": values[:, 3],
        "events_90d": values[:, 4],
        "active_days_30d": values[:, 5],
        "mobile_order_share": values[:, 6],
        "cat_shoes": values[:, 7],
    })
