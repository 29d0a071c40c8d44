"""dbt build on a crafted raw dataset (tests/helpers_dbt_core.py) and known answers for the
staging views and the customer core marts. One build per module."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from helpers_dbt_core import CORE_SELECTION, query, run_dbt, seed_raw


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("dbt_core_build")
    db = work / "warehouse.duckdb"
    seed_raw(db)
    result = run_dbt(["build", *CORE_SELECTION], db, work)
    assert result.returncode == 0, result.stdout[-5000:]
    return db


def rows_by_user(db: Path, sql: str) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in query(db, sql)}


def test_staging_normalises_and_unnests(built: Path) -> None:
    assert query(built, "select email from stg_app__registrations where user_id = 'u1'") == [
        ("u1@example.com",)
    ]
    assert query(built, "select customer_type from stg_app__registrations where user_id = 'b2'") == [
        ("business",)
    ]
    assert query(built, "select status from stg_shop__orders where order_id = 'o3'") == [("paid",)]
    items = query(
        built,
        "select line_number, sku, category, quantity, unit_price, line_amount "
        "from stg_shop__order_items where order_id = 'o14' order by line_number",
    )
    assert items == [
        (1, "srv", "servers", 2, Decimal("10000.00"), Decimal("20000.00")),
        (2, "lic", "licences", 10, Decimal("1000.00"), Decimal("10000.00")),
    ]
    event = query(
        built, "select utm_source, utm_campaign, device_type from stg_tracking__events where message_id = 'e3'"
    )
    assert event == [("newsletter", "feb", "ios")]


def test_identity_first_link_wins_and_stitching(built: Path) -> None:
    assert dict(query(built, "select anonymous_id, user_id from identity_map")) == {
        "a1": "u1", "a3": "u3", "a9": "u4",
    }
    stitched = dict(query(built, "select message_id, user_id from events_stitched"))
    assert stitched["e3"] == "u3"  # anonymous page view before the identify call
    assert stitched["e8"] == "u4"  # shared device: first link
    assert stitched["e9"] is None  # never identified
    assert "e2" not in stitched  # after the as-of


def test_customer_profile(built: Path) -> None:
    profile = rows_by_user(
        built,
        "select user_id, customer_type, order_count, revenue, days_since_last_activity, "
        "days_since_last_purchase, favourite_category, email_opt_in from customer_profile",
    )
    assert set(profile) == {"u1", "u2", "u3", "u4", "u5", "u6", "u7", "b1", "b2"}  # not u8
    # u1: zero-amount and refunded orders are not purchases; the event on 2026-06-05 is ignored.
    assert profile["u1"] == ("individual", 4, Decimal("200.00"), 7, 12, "books", True)
    assert profile["u2"][1:3] == (1, Decimal("40.00"))  # the order after as-of is ignored
    assert profile["u3"][1:4] == (0, Decimal("0.00"), 118) and profile["u3"][4] is None
    assert profile["u7"] == ("individual", 1, Decimal("25.00"), 61, 61, None, False)
    assert profile["b1"][-2] == "servers"  # 20000 on servers beats 10000 on licences


def test_customer_rfm(built: Path) -> None:
    rfm = rows_by_user(
        built,
        "select user_id, frequency, recency_days, tenure_days, monetary_value, "
        "days_since_last_purchase, f_score, rfm_score, rfm_segment from customer_rfm",
    )
    assert set(rfm) == {"u1", "u2", "u4", "u5", "u6", "u7", "b1", "b2"}
    # u1: purchase days 01-10, 03-01 (two orders, one at 00:30 Berlin time), 05-20.
    assert rfm["u1"][:5] == (2, 130, 142, Decimal("50.00"), 12)
    assert rfm["u2"][:5] == (0, 0, 7, Decimal("0.00"), 7)
    # Ties: five users with frequency 0 all get f_score 1; u4 and u5 share r_score 1.
    assert {rfm[u][5] for u in ("u2", "u4", "u5", "u7", "b1")} == {1}
    assert rfm["u4"][6] == rfm["u5"][6] == "111"
    assert rfm["u5"][7] == "Lost"
    assert query(built, "select count(*) from customer_rfm where rfm_segment is null") == [(0,)]


def test_customer_lifecycle(built: Path) -> None:
    stages = rows_by_user(built, "select user_id, lifecycle_stage, stage_since from customer_lifecycle")
    assert stages == {
        "u1": ("active", dt.date(2026, 2, 9)),
        "u2": ("new", dt.date(2026, 5, 25)),
        "u3": ("prospect", dt.date(2026, 2, 1)),
        "u4": ("silent", dt.date(2026, 4, 15)),
        "u5": ("churned", dt.date(2026, 2, 28)),
        "u6": ("reactivated", dt.date(2026, 5, 15)),
        "u7": ("active", dt.date(2026, 5, 1)),
        "b1": ("silent", dt.date(2026, 5, 6)),
        "b2": ("new", dt.date(2026, 5, 10)),
    }


def test_customer_value_tier(built: Path) -> None:
    tiers = rows_by_user(
        built,
        "select user_id, value_tier, b2b_score, b2b_grade, discount_pct, sla_hours, support_level "
        "from customer_value_tier",
    )
    # Paying individuals by revenue: u5 10, u7 25, u2 40, u4 60, u6 160, u1 200.
    assert {u: t[0] for u, t in tiers.items() if u.startswith("u")} == {
        "u1": "high", "u6": "high", "u4": "medium", "u2": "low", "u7": "low", "u5": "low", "u3": "low",
    }
    # b1: base 35 (30000) + referrals 2 (+10) + 2 categories (+5) + tenure > 2y (+10) - 1 refund (-5).
    assert tiers["b1"] == (None, 55, "C", Decimal("5.00"), 24, "priority")
    # b2: base 0 (500) - 1 overdue invoice (-5).
    assert tiers["b2"] == (None, -5, "E", Decimal("0.00"), 72, "self_service")
    assert tiers["u1"][1:] == (None, None, None, None, None)


def test_histories_start_with_current_state(built: Path) -> None:
    assert query(
        built,
        "select count(*) from customer_lifecycle_history h join customer_lifecycle c using (user_id) "
        "where h.valid_to is null and h.lifecycle_stage = c.lifecycle_stage",
    ) == [(9,)]
    assert query(built, "select count(*) from customer_value_tier_history") == [(9,)]
