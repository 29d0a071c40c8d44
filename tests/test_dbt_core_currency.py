"""Reporting currency: stg_shop__orders converts every order into var reporting_currency with seed
fx_rates, once, so profile revenue, value tiers and the reconciliation tests add like with like;
an order in a currency without a rate loses its amount and shows up in a warning test."""

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from helpers_dbt_core import CORE_SELECTION, query, run_dbt, seed_raw


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("dbt_core_currency")
    db = work / "warehouse.duckdb"
    seed_raw(db)  # every crafted order is in EUR
    with duckdb.connect(str(db)) as con:
        # u4 buys in CNY: 600 CNY is the biggest raw individual total but only 82.80 USD.
        con.execute("update raw_orders set currency = 'CNY', amount = 600.00 where order_id = 'o9'")
        # BRL is a valid ISO code without a rate in fx_rates.
        con.execute("update raw_orders set currency = 'BRL' where order_id = 'o10'")
    result = run_dbt(["build", *CORE_SELECTION], db, work, extra_vars={"reporting_currency": "USD"})
    assert result.returncode == 0, result.stdout[-4000:]
    return db, result.stdout


def test_staging_converts_orders_and_items_into_the_reporting_currency(built: tuple[Path, str]) -> None:
    db, _ = built
    rows = query(db, """select order_id, currency, amount_original, amount from stg_shop__orders
                        where order_id in ('o1', 'o5', 'o9', 'o10') order by order_id""")
    assert rows == [
        ("o1", "EUR", Decimal("100.00"), Decimal("108.00")),    # 1.08 USD per EUR
        ("o10", "BRL", Decimal("10.00"), None),                # no rate: no amount
        ("o5", "EUR", Decimal("0.00"), Decimal("0.00")),
        ("o9", "CNY", Decimal("600.00"), Decimal("82.80")),    # 0.138 USD per CNY
    ]
    items = query(db, """select unit_price_original, unit_price, line_amount_original, line_amount, currency
                         from stg_shop__order_items where order_id = 'o1'""")
    assert items == [(Decimal("50.00"), Decimal("54.00"), Decimal("100.00"), Decimal("108.00"), "EUR")]


def test_profile_revenue_and_value_tiers_use_the_reporting_currency(built: tuple[Path, str]) -> None:
    db, _ = built
    revenue = dict(query(db, "select user_id, revenue from customer_profile where customer_type = 'individual'"))
    assert revenue["u1"] == Decimal("216.00")  # (100 + 50 + 30 + 20) EUR
    assert revenue["u4"] == Decimal("82.80")
    assert revenue["u5"] == Decimal("0.00")    # BRL order: excluded from revenue
    tiers = dict(query(db, "select user_id, value_tier from customer_value_tier where customer_type = 'individual'"))
    assert tiers["u1"] == "high"
    assert tiers["u4"] != "high"  # raw 600 would have ranked first


def test_order_without_rate_is_listed_by_a_warning(built: tuple[Path, str]) -> None:
    db, stdout = built
    assert "WARN 1 assert_orders_currency_has_fx_rate" in stdout
    missing = query(db, "select order_id from stg_shop__orders where amount is null")
    assert missing == [("o10",)]
