"""Simulated tracking events (numpy arrays, one element per event) for the sample-data generator.

Sessions come from the users' activity spells (so churned users fall silent), from anonymous
pre-login visits that end in an `identify`, and from visitors who never sign up. Orders add
product_added -> checkout_started -> order_completed; about 5% of checkout_started have no order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmflow.generator.world import (
    CATEGORIES,
    DAY,
    Catalogue,
    Orders,
    Spells,
    Users,
    local_daytime,
    times_in_spells,
)

EVENT_TYPES: tuple[str, ...] = ("track", "identify", "page", "screen")
TRACK, IDENTIFY, PAGE, SCREEN = range(4)
EVENT_NAMES: tuple[str, ...] = (
    "product_viewed", "product_added", "cart_abandoned", "checkout_started", "order_completed",
    "banner_viewed", "banner_clicked", "email_opened", "app_opened", "support_ticket_opened",
)
(PRODUCT_VIEWED, PRODUCT_ADDED, CART_ABANDONED, CHECKOUT_STARTED, ORDER_COMPLETED,
 BANNER_VIEWED, BANNER_CLICKED, EMAIL_OPENED, APP_OPENED, SUPPORT_TICKET) = range(10)
NO_EVENT = -1  # identify/page/screen carry no event name
PAGE_CODE = -2  # marker used while drawing in-session actions: "a page view"

# In-session actions after the first event, as (event code, probability).
ACTIONS = np.array([PAGE_CODE, PRODUCT_VIEWED, PRODUCT_ADDED, BANNER_VIEWED, BANNER_CLICKED,
                    EMAIL_OPENED, CART_ABANDONED, SUPPORT_TICKET])
ACTION_P = np.array([0.10, 0.50, 0.12, 0.12, 0.04, 0.05, 0.05, 0.02])
SLOTS: tuple[str, ...] = ("home_top", "home_mid", "product_page", "cart")
N_CREATIVES = 24
PAGES: tuple[str, ...] = ("/", "/search", "/category", "/product", "/cart", "/account", "/help")
SCREENS: tuple[str, ...] = ("Home", "Search", "Category", "Product", "Cart", "Account")
# Campaign (source, medium, name) per acquisition channel; organic sessions carry none.
CAMPAIGNS: tuple[tuple[str, str, str], ...] = (
    ("", "", ""),
    ("google", "cpc", "brand_search"),
    ("wechat", "social", "spring_feed"),
    ("friend", "referral", "invite_a_friend"),
    ("newsletter", "email", "weekly_digest"),
    ("expo", "offline", "trade_show"),
)


@dataclass
class Events:
    user: np.ndarray  # position in Users, -1 for never-identified visitors
    visitor: np.ndarray  # visitor number for anonymous visitors, else -1
    with_user_id: np.ndarray  # carries user_id
    with_anonymous_id: np.ndarray  # carries anonymous_id
    t: np.ndarray
    type: np.ndarray
    event: np.ndarray  # code into EVENT_NAMES or NO_EVENT
    device: np.ndarray
    tz: np.ndarray
    zh: np.ndarray
    campaign: np.ndarray  # code into CAMPAIGNS (0: none)
    sku: np.ndarray  # -1 when not a product event
    cart_cents: np.ndarray  # checkout/cart value (minor units), -1 when none
    order: np.ndarray  # position in Orders for order_completed, else -1
    slot: np.ndarray
    creative: np.ndarray
    page: np.ndarray

    def __len__(self) -> int:
        return len(self.t)


def simulate_events(
    rng: np.random.Generator, users: Users, spells: Spells, orders: Orders, cat: Catalogue,
    n_visitors: int, start_s: int, end_s: int,
) -> Events:
    # --- sessions: (entity, t, is_user, identified, device, campaign)
    expected = (users.engagement[spells.user] * (0.35 + 1.0 * users.rate[spells.user])
                * spells.multiplier * (spells.end_s - spells.start_s) / (30 * DAY))
    spell, t = times_in_spells(rng, spells, expected)
    s_user = spells.user[spell]
    t = np.maximum(local_daytime(rng, t, users.tz[s_user]), spells.start_s[spell])
    pre = np.flatnonzero(users.pre_login)
    pre_t = users.registered_s[pre] - (rng.random(len(pre)) * 2 * DAY).astype(np.int64) - 3600
    v_tz = rng.choice(6, n_visitors)
    v_t = local_daytime(rng, start_s + (rng.random(n_visitors) * (end_s - start_s)).astype(np.int64), v_tz)

    n_member, n_pre = len(s_user), len(pre)
    sess_user = np.concatenate([s_user, pre, np.full(n_visitors, -1)])
    sess_visitor = np.concatenate([np.full(n_member + n_pre, -1), np.arange(n_visitors)])
    sess_t = np.concatenate([t, pre_t, v_t])
    sess_identified = np.concatenate([np.ones(n_member, bool), np.zeros(n_pre + n_visitors, bool)])
    known = sess_user >= 0
    safe_user = np.where(known, sess_user, 0)
    sess_tz = np.where(known, users.tz[safe_user], np.concatenate([np.zeros(n_member + n_pre, int), v_tz]))
    sess_zh = np.where(known, users.zh[safe_user], sess_tz <= 1)
    own_device = rng.random(len(sess_t)) < 0.8
    sess_device = np.where(known & own_device, users.device[safe_user], rng.choice(3, len(sess_t), p=[0.56, 0.34, 0.1]))
    with_campaign = rng.random(len(sess_t)) < 0.25
    sess_campaign = np.where(with_campaign & known, users.acquisition[safe_user],
                             np.where(with_campaign, rng.integers(1, len(CAMPAIGNS), len(sess_t)), 0))
    n_sess = len(sess_t)

    # --- events inside sessions
    n_ev = 1 + rng.poisson(2.6, n_sess)
    sess_of = np.repeat(np.arange(n_sess), n_ev)
    pos = np.arange(len(sess_of)) - np.repeat(np.cumsum(n_ev) - n_ev, n_ev)
    ev_t = sess_t[sess_of] + pos * rng.integers(15, 180, len(sess_of))
    first = pos == 0
    mobile = sess_device[sess_of] == 0
    action = ACTIONS[rng.choice(len(ACTIONS), len(sess_of), p=ACTION_P)]
    opener = np.where(mobile & (rng.random(len(sess_of)) < 0.5), APP_OPENED, PAGE_CODE)
    code = np.where(first, opener, action)
    is_page = code == PAGE_CODE
    ev_type = np.where(is_page, np.where(mobile, SCREEN, PAGE), TRACK)
    ev_event = np.where(is_page, NO_EVENT, code)

    # --- order events (members only): added -> checkout -> completed
    member_orders = np.flatnonzero(orders.user >= 0)
    o_user = orders.user[member_orders]
    o_t = orders.ordered_s[member_orders]
    k = len(member_orders)
    first_item = orders.item_sku[orders.item_offsets[member_orders]] if k else np.zeros(0, np.int64)
    o_device = np.where(orders.channel[member_orders] == 1, 0, users.device[o_user])  # app orders: mobile

    # --- checkout_started without an order (~5% of all checkout_started)
    n_orphan = rng.binomial(k, 0.053) if n_member else 0
    orphan_sess = rng.integers(0, max(n_member, 1), n_orphan)
    orphan_user = sess_user[orphan_sess]
    orphan_t = sess_t[orphan_sess] + 300

    # --- identify at registration (links the device's anonymous_id to the user)
    n_users = len(users)

    parts = [
        # session events
        dict(user=sess_user[sess_of], visitor=sess_visitor[sess_of], with_user_id=sess_identified[sess_of],
             with_anonymous_id=np.ones(len(sess_of), bool), t=ev_t, type=ev_type, event=ev_event,
             device=sess_device[sess_of], tz=sess_tz[sess_of], zh=sess_zh[sess_of],
             campaign=np.where(first, sess_campaign[sess_of], 0), order=np.full(len(sess_of), -1)),
        # order events, three per order
        dict(user=np.repeat(o_user, 3), visitor=np.full(3 * k, -1), with_user_id=np.ones(3 * k, bool),
             with_anonymous_id=np.tile([True, True, False], k), t=np.repeat(o_t, 3) - np.tile([600, 240, 0], k),
             type=np.full(3 * k, TRACK), event=np.tile([PRODUCT_ADDED, CHECKOUT_STARTED, ORDER_COMPLETED], k),
             device=np.repeat(o_device, 3), tz=np.repeat(users.tz[o_user], 3), zh=np.repeat(users.zh[o_user], 3),
             campaign=np.zeros(3 * k, int), order=np.repeat(member_orders, 3)),
        dict(user=orphan_user, visitor=np.full(n_orphan, -1), with_user_id=np.ones(n_orphan, bool),
             with_anonymous_id=np.ones(n_orphan, bool), t=orphan_t, type=np.full(n_orphan, TRACK),
             event=np.full(n_orphan, CHECKOUT_STARTED), device=sess_device[orphan_sess],
             tz=sess_tz[orphan_sess], zh=sess_zh[orphan_sess], campaign=np.zeros(n_orphan, int),
             order=np.full(n_orphan, -1)),
        dict(user=np.arange(n_users), visitor=np.full(n_users, -1), with_user_id=np.ones(n_users, bool),
             with_anonymous_id=np.ones(n_users, bool), t=users.registered_s, type=np.full(n_users, IDENTIFY),
             event=np.full(n_users, NO_EVENT), device=users.device, tz=users.tz, zh=users.zh,
             campaign=np.zeros(n_users, int), order=np.full(n_users, -1)),
    ]
    cols = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    n = len(cols["t"])
    ev = cols["event"]
    order = cols["order"]
    # Orphan checkouts get a plausible cart value; order events carry the order's amount and SKU.
    product_event = np.isin(ev, [PRODUCT_VIEWED, PRODUCT_ADDED])
    sku = np.full(n, -1, dtype=np.int64)
    known = cols["user"] >= 0
    safe = np.where(known, cols["user"], 0)
    r = rng.random(n)
    category = np.where(known & (r < 0.6), users.primary_cat[safe],
                        np.where(known & (r < 0.85), users.secondary_cat[safe], rng.integers(0, len(CATEGORIES), n)))
    random_sku = cat.cat_start[category] + (rng.random(n) * cat.cat_size[category]).astype(np.int64)
    sku = np.where(product_event, random_sku, sku)
    in_order = order >= 0
    sku = np.where(in_order & (ev == PRODUCT_ADDED), np.repeat(first_item, 3)[np.cumsum(in_order) - 1]
                   if k else sku, sku)
    cart_cents = np.full(n, -1, dtype=np.int64)
    cart_cents = np.where(in_order, orders.amount_cents[np.where(in_order, order, 0)], cart_cents)
    random_cart = (cat.price_usd_cents[random_sku] * (1 + rng.poisson(1.0, n))
                   * np.where(cols["zh"], 7, 1))
    cart_cents = np.where(~in_order & np.isin(ev, [CHECKOUT_STARTED, CART_ABANDONED]), random_cart, cart_cents)

    keep = (cols["t"] >= start_s) & (cols["t"] < end_s)
    out = Events(
        sku=sku, cart_cents=cart_cents,
        slot=rng.integers(0, len(SLOTS), n), creative=rng.integers(1, N_CREATIVES + 1, n),
        page=rng.integers(0, len(PAGES), n), **cols,
    )
    return _select(out, keep)


def _select(events: Events, mask: np.ndarray) -> Events:
    return Events(**{name: value[mask] for name, value in vars(events).items()})
