"""End to end on shops that have only one source (issue 17): the whole graph runs and every model
either works from what there is or is skipped with a note, never failing the run.

The worlds come from the generator's own options (`--sources`, `--no-order-items`), through the
CLI in a subprocess like tests/test_e2e_pipeline.py:
- a 1990s orders-only shop without order items (1997-1998, as-of 1998-06-30): a real retailer's
  purchase history. Before: every row quarantined as timestamp_out_of_range, and the churn model
  raised in HistGradientBoosting's binning (an all-NaN event feature);
- a registrations-only shop and an events-only shop (this decade).
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from helpers_integration import environment

CRMFLOW = str(Path(sys.executable).parent / "crmflow")
REPO = Path(__file__).resolve().parent.parent
AS_OF_1998 = datetime(1998, 6, 30, tzinfo=UTC)
AS_OF_2026 = datetime(2026, 11, 21, 6, tzinfo=UTC)


def _world(root: Path, as_of: datetime, *generate: str) -> str:
    env = {**environment(root), "CRMFLOW_TIMEZONE": "UTC"}  # UTC days: the RFM reference below
    out = ""
    for args in (["generate", "--seed", "11", *generate], ["run", "--as-of", as_of.isoformat()]):
        result = subprocess.run([CRMFLOW, *args], env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"crmflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        out += result.stdout + result.stderr
    assert re.search(r"^run \w+ succeeded in ", out, re.M), out[-3000:]  # the instance run id
    return out


def _query(root: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(sql).fetchall()


def _count(root: Path, table: str) -> int:
    return _query(root, f"select count(*) from {table}")[0][0]


def _assert_every_customer_has_a_stage_tier_and_segments(root: Path) -> int:
    customers = _count(root, "customer_profile")
    for table in ("customer_lifecycle", "customer_value_tier"):
        assert _query(root, f"select count(distinct user_id) from {table}") == [(customers,)], table
        assert _count(root, table) == customers, table
    assert _query(root, "select count(distinct user_id) from customer_segments") == [(customers,)]
    return customers


@pytest.fixture(scope="module")
def orders_1990s(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("orders_1990s")
    # 500 customers: enough for the churn model to be fitted (>= 200 training rows), not just the baseline
    out = _world(root, AS_OF_1998, "--users", "500", "--days", "540", "--end", "1998-06-29",
                 "--sources", "orders", "--no-order-items")
    return root, out


def test_1990s_orders_only_history_is_loaded_whole(orders_1990s) -> None:
    root, _ = orders_1990s
    assert _count(root, "raw_registrations") == _count(root, "raw_events") == 0
    assert _query(root, "select min(year(ordered_at)), max(year(ordered_at)) from raw_orders") == [(1997, 1998)]
    assert _query(root, "select count(*) from quarantine_orders where reason = 'timestamp_out_of_range'") == [(0,)]


def test_1990s_orders_only_rfm_equals_an_independent_btyd_summary(orders_1990s) -> None:
    """Every customer with a purchase has RFM equal to the BTYD summary (lifetimes'
    summary_data_from_transaction_data, daily periods) of paid orders with amount > 0."""
    root, _ = orders_1990s
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        orders = con.execute("select user_id, ordered_at, amount::double as amount, currency, status from raw_orders").df()
        rfm = con.execute("select user_id, frequency, recency_days, tenure_days, monetary_value::double as m "
                          "from customer_rfm order by user_id").df()
    # amounts in the reporting currency (USD) at the seed's static rates, rounded per order
    rates = pd.read_csv(REPO / "dbt_project" / "seeds" / "fx_rates.csv").set_index("currency").rate_to_reporting
    orders["amount"] = (orders.amount * orders.currency.map(rates) / rates["USD"]).round(2)
    purchases = orders[(orders.status == "paid") & (orders.amount > 0)
                       & (orders.ordered_at <= pd.Timestamp(AS_OF_1998))].copy()
    purchases["day"] = purchases.ordered_at.dt.tz_convert("UTC").dt.date
    days = purchases.groupby(["user_id", "day"], as_index=False).amount.sum()
    rows = []
    for user, g in days.groupby("user_id"):
        first, last = g.day.min(), g.day.max()
        repeat = g[g.day > first].amount
        rows.append((user, len(g) - 1, (last - first).days, (AS_OF_1998.date() - first).days,
                     round(repeat.mean(), 2) if len(repeat) else 0.0))
    reference = pd.DataFrame(rows, columns=["user_id", "frequency", "recency_days", "tenure_days", "m"])
    assert len(reference) > 300
    assert rfm.user_id.tolist() == reference.user_id.tolist()
    for column in ("frequency", "recency_days", "tenure_days"):
        assert rfm[column].astype(int).tolist() == reference[column].tolist(), column
    # within a cent: the warehouse rounds each converted amount half away from zero, pandas half-even
    assert (rfm.m - reference.m).abs().max() < 0.0101


def test_1990s_orders_only_lifecycle_tiers_segments_for_every_customer(orders_1990s) -> None:
    root, _ = orders_1990s
    customers = _assert_every_customer_has_a_stage_tier_and_segments(root)
    assert customers == _query(root, "select count(distinct user_id) from raw_orders")[0][0]
    stages = dict(_query(root, "select lifecycle_stage, count(*) from customer_lifecycle group by 1"))
    assert stages.get("churned", 0) > 0 and stages.get("active", 0) + stages.get("new", 0) > 0


def _step_line(out: str, asset: str) -> str:
    """The console line of one step: `  ok   <asset>   1.2s  <summary>` (one line per step)."""
    pattern = re.compile(rf"^\s*(ok|warn|fail\w*)\s+{asset}\s")
    return next(line for line in out.splitlines() if pattern.search(line))


def test_1990s_orders_only_intelligence_runs_and_says_what_it_skipped(orders_1990s) -> None:
    root, out = orders_1990s
    purchasers = _count(root, "customer_rfm")
    assert _count(root, "customer_churn_scores") == _count(root, "customer_priority") == purchasers
    # the model was fitted without the event features nobody has (it raised a ValueError before)
    churn_line = _step_line(out, "customer_churn_scores")
    assert "left out of the model, no customer has a value" in churn_line
    assert "days_since_last_event" in churn_line
    # no order items: nothing to recommend, said so; tasks and banners still run
    assert _count(root, "customer_recommendations") == 0
    assert "no paid order lines" in _step_line(out, "customer_recommendations")
    assert _count(root, "operator_tasks") > 0 and _count(root, "banner_assignments") > 0


def test_registrations_only_shop_runs_end_to_end(tmp_path: Path) -> None:
    out = _world(tmp_path, AS_OF_2026, "--users", "150", "--days", "200", "--end", "2026-11-20",
                 "--sources", "registrations")
    registered = _query(tmp_path, "select count(*) from raw_registrations")[0][0]
    assert registered > 0 and _assert_every_customer_has_a_stage_tier_and_segments(tmp_path) == registered
    assert _query(tmp_path, "select distinct lifecycle_stage from customer_lifecycle") == [("prospect",)]
    assert _count(tmp_path, "customer_rfm") == _count(tmp_path, "customer_churn_scores") == 0
    assert "insufficient_data: no customers to score" in _step_line(out, "customer_churn_scores")
    assert _count(tmp_path, "journey_enrolments") > 0  # the welcome series still greets them


def test_events_only_shop_knows_its_customers_from_identified_events(tmp_path: Path) -> None:
    out = _world(tmp_path, AS_OF_2026, "--users", "150", "--days", "200", "--end", "2026-11-20",
                 "--sources", "events")
    identified = _query(tmp_path, "select count(distinct user_id) from events_stitched where user_id is not null")
    assert identified[0][0] > 0
    assert _assert_every_customer_has_a_stage_tier_and_segments(tmp_path) == identified[0][0]
    assert _count(tmp_path, "customer_rfm") == _count(tmp_path, "customer_churn_scores") == 0
    assert _step_line(out, "customer_clusters") and "no churn scores" in _step_line(out, "customer_priority")

