"""The simulated customer world behind the sample data: users, activity spells, orders and events.

Everything is numpy arrays (one element per user / order / item / event); no Python loop runs per
row. The behaviour is built so that the downstream models find real signal:

- registrations grow over the window (exponential cohort growth);
- order frequency is log-normal and B2B baskets are several times larger, so revenue is heavy
  tailed (about 20% of buyers bring about 80% of revenue);
- each user has category affinity (a primary and a secondary category), so co-purchases cluster;
- churn hazard depends on observable behaviour (low frequency, few categories, low engagement) and
  activity fades over the weeks before a user churns, so a model can beat recency alone;
- some churned users come back (a second, quieter activity spell).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 86_400

TIMEZONES: tuple[str, ...] = (
    "Asia/Shanghai", "Asia/Singapore", "America/New_York", "America/Los_Angeles", "Europe/London", "UTC",
)
# Standard (non-DST) offsets, used only to place activity in local daytime.
TZ_STD_OFFSET_H = np.array([8, 8, -5, -8, 0, 0])
TZ_P_ZH = np.array([0.82, 0.18, 0, 0, 0, 0])
TZ_P_EN = np.array([0, 0.08, 0.34, 0.26, 0.2, 0.12])
# Per zone: (country, city) choices.
TZ_PLACES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("CN", "Shanghai"), ("CN", "Beijing"), ("CN", "Hangzhou"), ("CN", "Shenzhen")),
    (("SG", "Singapore"),),
    (("US", "New York"), ("US", "Boston"), ("US", "Atlanta")),
    (("US", "Los Angeles"), ("US", "Seattle"), ("US", "San Francisco")),
    (("GB", "London"), ("GB", "Manchester")),
    (("IS", "Reykjavik"), ("GH", "Accra")),
)
LOCALES: tuple[str, ...] = ("zh-CN", "en-US")
ACQUISITION: tuple[str, ...] = ("organic", "paid_search", "social", "referral", "email", "offline_event")
ACQUISITION_P = np.array([0.34, 0.22, 0.2, 0.1, 0.08, 0.06])
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
DEVICE_P = np.array([0.56, 0.34, 0.10])

CATEGORIES: tuple[str, ...] = (
    "electronics", "home", "kitchen", "beauty", "fashion", "sports",
    "toys", "books", "grocery", "pets", "garden", "office",
)
N_SKUS = 200
CNY_PER_USD = 7

# Hour-of-day (local) weights for browsing: quiet nights, lunch bump, evening peak.
HOUR_WEIGHTS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 4, 4.5,
                         5, 4.5, 4, 4, 4.2, 4.5, 5, 6, 6.5, 6, 4, 2], dtype=float)
HOUR_P = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()

ORDER_STATUS: tuple[str, ...] = ("paid", "refunded", "cancelled", "overdue")
OVERDUE_AFTER_DAYS = 30  # B2B invoices are due 30 days after the order; unpaid after that = overdue
ORDER_CHANNELS: tuple[str, ...] = ("web", "app", "store", "sales_rep")


@dataclass(frozen=True)
class Catalogue:
    category: np.ndarray  # per SKU: category code
    price_usd_cents: np.ndarray  # per SKU
    cat_start: np.ndarray  # per category: first SKU index (SKUs are grouped by category)
    cat_size: np.ndarray


def build_catalogue() -> Catalogue:
    """A fixed catalogue (independent of the seed, so recommendations compare across runs)."""
    rng = np.random.default_rng(20260101)
    weights = rng.uniform(0.6, 1.4, len(CATEGORIES))
    sizes = np.maximum(8, np.floor(weights / weights.sum() * N_SKUS)).astype(np.int64)
    sizes[-1] += N_SKUS - sizes.sum()
    category = np.repeat(np.arange(len(CATEGORIES)), sizes)
    cat_price = np.array([120, 45, 30, 28, 40, 35, 25, 15, 8, 20, 30, 18], dtype=float)
    price = np.round(cat_price[category] * rng.lognormal(0, 0.45, N_SKUS), 2)
    cents = np.maximum(99, np.round(price * 100)).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return Catalogue(category=category, price_usd_cents=cents, cat_start=start, cat_size=sizes)


@dataclass
class Users:
    index: np.ndarray  # global user number (user_id = u%08d)
    registered_s: np.ndarray
    is_business: np.ndarray
    zh: np.ndarray  # locale zh-CN (else en-US)
    tz: np.ndarray
    place: np.ndarray  # index into TZ_PLACES[tz]
    acquisition: np.ndarray
    device: np.ndarray
    rate: np.ndarray  # orders per 30 active days
    basket: np.ndarray  # quantity scale
    breadth: np.ndarray  # number of categories explored (1..4)
    primary_cat: np.ndarray
    secondary_cat: np.ndarray
    engagement: np.ndarray  # browsing-session multiplier
    churn_s: np.ndarray  # moment the user goes silent (may be after the window)
    react_s: np.ndarray  # moment a churned user comes back (inf when never)
    email_opt_in: np.ndarray
    sms_opt_in: np.ndarray
    push_opt_in: np.ndarray
    pre_login: np.ndarray  # has an anonymous session before registering
    jsonl_source: np.ndarray  # registered through the app backend (JSONL export)

    def __len__(self) -> int:
        return len(self.index)


def simulate_users(rng: np.random.Generator, first_index: int, n: int, start_s: int, days: int) -> Users:
    growth = 1.1  # cohorts grow about 3x over the window
    u = rng.random(n)
    reg_days = days * np.log1p(u * np.expm1(growth)) / growth
    registered_s = start_s + (reg_days * DAY).astype(np.int64)
    is_business = rng.random(n) < 0.15
    zh = rng.random(n) < 0.5
    tz = np.where(zh, rng.choice(6, n, p=TZ_P_ZH), rng.choice(6, n, p=TZ_P_EN))
    place = rng.integers(0, 1_000_000, n)  # reduced modulo the zone's place count when formatted
    rate = rng.lognormal(np.log(0.42), 0.85, n) * np.where(is_business, 1.5, 1.0)
    basket = rng.lognormal(0, 0.55, n) * np.where(is_business, 6.0, 1.0)
    breadth = 1 + rng.binomial(3, 0.35, n)
    primary = rng.choice(len(CATEGORIES), n, p=_category_popularity())
    secondary = (primary + rng.integers(1, len(CATEGORIES), n)) % len(CATEGORIES)
    engagement = rng.lognormal(0, 0.5, n)
    email_opt_in = rng.random(n) < 0.7
    # Daily churn hazard: low frequency, narrow interest, low engagement and no email consent all
    # raise it; the base gives a median lifetime of roughly five months.
    hazard = (1 / 150) * (rate / 0.42) ** -0.55 * (1.45 - 0.2 * breadth) * engagement ** -0.6
    hazard *= np.where(email_opt_in, 0.85, 1.25)
    churn_s = registered_s + (rng.exponential(1.0, n) / hazard * DAY).astype(np.int64)
    comes_back = rng.random(n) < 0.22
    react_s = np.where(comes_back, churn_s + ((14 + rng.exponential(80, n)) * DAY).astype(np.int64),
                       np.iinfo(np.int64).max)
    return Users(
        index=np.arange(first_index, first_index + n, dtype=np.int64),
        registered_s=registered_s,
        is_business=is_business,
        zh=zh,
        tz=tz,
        place=place,
        acquisition=rng.choice(len(ACQUISITION), n, p=ACQUISITION_P),
        device=rng.choice(3, n, p=DEVICE_P),
        rate=rate,
        basket=basket,
        breadth=breadth,
        primary_cat=primary,
        secondary_cat=secondary,
        engagement=engagement,
        churn_s=churn_s,
        react_s=react_s,
        email_opt_in=email_opt_in,
        sms_opt_in=rng.random(n) < 0.4,
        push_opt_in=rng.random(n) < 0.5,
        pre_login=rng.random(n) < 0.6,
        jsonl_source=rng.random(n) < 0.15,
    )


def _category_popularity() -> np.ndarray:
    weights = np.array([1.4, 1.2, 1.1, 1.2, 1.5, 0.9, 0.7, 0.8, 1.3, 0.6, 0.5, 0.8])
    return weights / weights.sum()


@dataclass
class Spells:
    """Periods in which a user is active: [start, end) with a rate multiplier and fade-out point."""

    user: np.ndarray  # position in Users
    start_s: np.ndarray
    end_s: np.ndarray
    multiplier: np.ndarray
    churn_s: np.ndarray  # activity fades over FADE_DAYS before this (int64 max: no fade)


FADE_DAYS = 45


def activity_spells(users: Users, end_s: int) -> Spells:
    n = len(users)
    first_end = np.minimum(users.churn_s, end_s)
    second = users.react_s < end_s
    pos = np.arange(n)
    return Spells(
        user=np.concatenate([pos, pos[second]]),
        start_s=np.concatenate([users.registered_s, users.react_s[second]]),
        end_s=np.concatenate([first_end, np.full(second.sum(), end_s, dtype=np.int64)]),
        multiplier=np.concatenate([np.ones(n), np.full(second.sum(), 0.6)]),
        churn_s=np.concatenate([users.churn_s, np.full(second.sum(), np.iinfo(np.int64).max)]),
    )


def fade_keep(rng: np.random.Generator, t: np.ndarray, churn_s: np.ndarray) -> np.ndarray:
    """Thinning mask: activity falls linearly to 15% over the weeks before churn."""
    days_left = (churn_s - t) / DAY
    keep_p = np.clip(days_left / FADE_DAYS, 0.15, 1.0)
    return rng.random(len(t)) < keep_p


def times_in_spells(rng: np.random.Generator, spells: Spells, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poisson number of moments per spell, uniform inside it, thinned by the fade. -> (spell, t)."""
    counts = rng.poisson(np.maximum(expected, 0))
    spell = np.repeat(np.arange(len(spells.user)), counts)
    length = (spells.end_s - spells.start_s)[spell]
    t = spells.start_s[spell] + (rng.random(len(spell)) * np.maximum(length, 0)).astype(np.int64)
    keep = fade_keep(rng, t, spells.churn_s[spell]) & (length > 0)
    return spell[keep], t[keep]


def local_daytime(rng: np.random.Generator, t: np.ndarray, tz: np.ndarray) -> np.ndarray:
    """Move instants to a realistic local hour on the same (local) day."""
    offset = TZ_STD_OFFSET_H[tz] * 3600
    local_day = (t + offset) // DAY * DAY
    hour = rng.choice(24, len(t), p=HOUR_P)
    return local_day - offset + hour * 3600 + rng.integers(0, 3600, len(t))


@dataclass
class Orders:
    user: np.ndarray  # position in Users, or -1 for guests (see guest)
    guest: np.ndarray  # guest number (>= 0) for guest buyers, else -1
    ordered_s: np.ndarray
    zh: np.ndarray
    tz: np.ndarray
    status: np.ndarray  # code into ORDER_STATUS (final status)
    refund_s: np.ndarray  # when the refund row is written (int64 max: none)
    updated_s: np.ndarray
    channel: np.ndarray
    amount_cents: np.ndarray
    item_offsets: np.ndarray  # items of order i are item_* [offsets[i], offsets[i+1])
    item_sku: np.ndarray
    item_qty: np.ndarray
    item_unit_cents: np.ndarray

    def __len__(self) -> int:
        return len(self.ordered_s)


def simulate_orders(
    rng: np.random.Generator, users: Users, spells: Spells, cat: Catalogue,
    n_guests: int, start_s: int, end_s: int,
) -> Orders:
    # Repeat purchases inside active spells, plus a first purchase soon after registering.
    expected = users.rate[spells.user] * spells.multiplier * (spells.end_s - spells.start_s) / (30 * DAY)
    spell, t = times_in_spells(rng, spells, expected)
    member = spells.user[spell]
    converts = rng.random(len(users)) < 0.55
    first_t = users.registered_s + (rng.exponential(2.0, len(users)) * DAY).astype(np.int64)
    first_ok = converts & (first_t < np.minimum(users.churn_s, end_s))
    member = np.concatenate([member, np.flatnonzero(first_ok)])
    t = np.concatenate([t, first_t[first_ok]])
    # Guest buyers: no registration, one or two orders anywhere in the window.
    g_counts = 1 + rng.poisson(0.3, n_guests)
    guest = np.repeat(np.arange(n_guests), g_counts)
    g_t = start_s + (rng.random(len(guest)) * (end_s - start_s)).astype(np.int64)
    g_zh = rng.random(n_guests) < 0.5
    g_tz = np.where(g_zh, 0, rng.choice([2, 3, 4], n_guests))

    n_member, n_guest = len(member), len(guest)
    user = np.concatenate([member, np.full(n_guest, -1)])
    guest_no = np.concatenate([np.full(n_member, -1), guest])
    ordered_s = np.concatenate([t, g_t])
    zh = np.concatenate([users.zh[member], g_zh[guest]])
    tz = np.concatenate([users.tz[member], g_tz[guest]])
    business = np.concatenate([users.is_business[member], np.zeros(n_guest, dtype=bool)])
    n = n_member + n_guest

    # Items: count, category by affinity, SKU, quantity.
    breadth = np.concatenate([users.breadth[member], np.full(n_guest, 2)])
    n_items = 1 + rng.poisson(0.35 + 0.15 * breadth + np.where(business, 1.5, 0.0))
    offsets = np.concatenate([[0], np.cumsum(n_items)]).astype(np.int64)
    order_of_item = np.repeat(np.arange(n), n_items)
    primary = np.concatenate([users.primary_cat[member], rng.integers(0, 12, n_guest)])[order_of_item]
    secondary = np.concatenate([users.secondary_cat[member], rng.integers(0, 12, n_guest)])[order_of_item]
    r = rng.random(len(order_of_item))
    p_random = 0.04 * breadth[order_of_item]
    category = np.where(r < 0.68, primary, np.where(r < 1 - p_random, secondary,
                                                     rng.integers(0, len(CATEGORIES), len(r))))
    sku = cat.cat_start[category] + (rng.random(len(r)) * cat.cat_size[category]).astype(np.int64)
    basket = np.concatenate([users.basket[member], rng.lognormal(0, 0.5, n_guest)])[order_of_item]
    qty = 1 + rng.poisson(np.where(business[order_of_item], basket, 0.25 * basket))
    unit = cat.price_usd_cents[sku] * np.where(zh[order_of_item], CNY_PER_USD, 1)
    amount = np.bincount(order_of_item, weights=qty * unit, minlength=n).astype(np.int64)

    s = rng.random(n)
    refund_s = ordered_s + ((1 + rng.exponential(6, n)) * DAY).astype(np.int64)
    refunded = (s >= 0.03) & (s < 0.075) & (refund_s < end_s)
    # About 4 % of B2B orders are unpaid invoices past their due date by the end (status overdue;
    # updated_at = the due date), so the B2B overdue penalty has data to act on.
    due_s = ordered_s + OVERDUE_AFTER_DAYS * DAY
    overdue = business & (s >= 0.075) & (s < 0.115) & (due_s < end_s)
    status = np.where(s < 0.03, 2, np.where(refunded, 1, np.where(overdue, 3, 0)))
    refund_s = np.where(refunded, refund_s, np.iinfo(np.int64).max)
    updated_s = ordered_s + rng.integers(5, 600, n) + np.where(status == 2, rng.integers(600, 20000, n), 0)
    updated_s = np.where(overdue, due_s, updated_s)
    c = rng.random(n)
    channel = np.where(
        business, np.where(c < 0.5, 3, np.where(c < 0.9, 0, 2)),
        np.where(c < 0.5, 0, np.where(c < 0.9, 1, 2)),
    )
    channel = np.where(guest_no >= 0, np.where(c < 0.8, 0, 2), channel)
    return Orders(
        user=user, guest=guest_no, ordered_s=ordered_s, zh=zh, tz=tz, status=status, refund_s=refund_s,
        updated_s=updated_s, channel=channel, amount_cents=amount, item_offsets=offsets,
        item_sku=sku, item_qty=qty, item_unit_cents=unit,
    )
