"""Features see only the past: changing anything after the cutoff leaves them unchanged."""

from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from helpers_intelligence import AS_OF, simulate_warehouse

from crmflow.intelligence.config import FeatureConfig
from crmflow.intelligence.features import (
    EVENT_STAGE,
    _event_stage_select,
    build_features,
    churn_labels,
    staged_inputs,
)

CUTOFF = AS_OF - timedelta(days=90)


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    simulate_warehouse(connection, users=600, seed=3)
    yield connection
    connection.close()


@pytest.mark.parametrize("population", ["all", "purchasers", "active"])
def test_changing_data_after_the_cutoff_does_not_change_features(con, population):
    before = build_features(con, CUTOFF, FeatureConfig(), population)
    # Rewrite the future: drop some later orders, inflate others, add a burst of new orders and events
    # (including a new category), and move later events around.
    con.execute("delete from stg_shop__orders where ordered_at >= $c and hash(order_id) % 3 = 0", {"c": CUTOFF})
    con.execute("update stg_shop__orders set amount = amount * 10 where ordered_at >= $c", {"c": CUTOFF})
    con.execute("update stg_shop__order_items set line_amount = line_amount * 50, category = 'gadgets' "
                "where ordered_at >= $c", {"c": CUTOFF})
    con.execute("""insert into stg_shop__orders by name select * replace (order_id || 'x' as order_id,
                   $c + interval 1 day as ordered_at) from stg_shop__orders""", {"c": CUTOFF})
    con.execute("""insert into events_stitched by name select * replace (message_id || 'x' as message_id,
                   $c + interval 1 hour as event_at) from events_stitched""", {"c": CUTOFF})
    after = build_features(con, CUTOFF, FeatureConfig(), population)
    assert after.categories == before.categories
    pd.testing.assert_frame_equal(before.frame, after.frame)


def test_changing_data_before_the_cutoff_does_change_features(con):
    """The guard above is not vacuous: the past does move the features."""
    before = build_features(con, CUTOFF, FeatureConfig(), "purchasers")
    con.execute("update stg_shop__orders set amount = amount * 2 where ordered_at < $c", {"c": CUTOFF})
    after = build_features(con, CUTOFF, FeatureConfig(), "purchasers")
    assert not np.allclose(before.frame["monetary"], after.frame["monetary"])


def test_feature_values_on_a_crafted_customer():
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    c = CUTOFF
    con.execute("create table customer_profile as select 'a' as user_id, $r::timestamptz as registered_at, "
                "'business' as customer_type", {"r": c - timedelta(days=100)})
    con.execute("""create table stg_shop__orders as select * from (values
        ('o1', 'a', $c - interval 50 day, 'paid', 10.0, 'app'),
        ('o2', 'a', $c - interval 10 day, 'paid', 30.0, 'web'),
        ('o3', 'a', $c - interval 5 day, 'cancelled', 999.0, 'web'),
        ('o4', 'a', $c + interval 5 day, 'paid', 50.0, 'web'))
        t(order_id, user_id, ordered_at, status, amount, channel)""", {"c": c})
    con.execute("""create table stg_shop__order_items as select order_id, user_id, ordered_at, status,
        'shoes' as category, 'S1' as sku, amount as line_amount from stg_shop__orders""")
    con.execute("""create table events_stitched as select 'e1' as message_id, 'a' as user_id,
        $c - interval 2 day as event_at""", {"c": c})
    f = build_features(con, c, FeatureConfig(), "purchasers").frame.iloc[0]
    assert (f["frequency"], f["monetary"], f["avg_basket"]) == (2, 40, 20)
    assert f["recency_days"] == pytest.approx(10) and f["mean_gap_days"] == pytest.approx(40)
    assert f["recency_ratio"] == pytest.approx(0.25) and f["tenure_days"] == pytest.approx(100)
    assert (f["orders_30d"], f["events_30d"], f["is_business"], f["mobile_order_share"]) == (1, 1, 1, 0.5)
    assert f["days_since_last_event"] == pytest.approx(2) and f["cat_shoes"] == 1.0
    # Label window [cutoff, cutoff + 60d): o4 falls in it, so "a" did not churn; with 3 days it did.
    assert churn_labels(con, pd.Series(["a"]), c, 60, FeatureConfig()).tolist() == [0]
    assert churn_labels(con, pd.Series(["a"]), c, 3, FeatureConfig()).tolist() == [1]


def _unshared(con, cutoff):
    with staged_inputs(con, cutoff, FeatureConfig(), share=False) as st:
        assert st.event_days.startswith("_intel_event_days_")
        return build_features(con, cutoff, FeatureConfig(), "active", staged=st).frame


def _dbt_stage(con, as_of):
    """int_intelligence__event_days as dbt builds it at `as_of` (the model's SQL is the same select;
    tests/test_intelligence_generator.py checks the real dbt build gives the same features)."""
    con.execute(f"create or replace table {EVENT_STAGE} as select *, $a::timestamptz as as_of from "
                f"({_event_stage_select('events_stitched', 'duckdb')})", {"as_of": as_of, "a": as_of})


def test_the_dbt_event_stage_is_read_only_at_its_own_as_of(con):
    _dbt_stage(con, CUTOFF)
    pd.testing.assert_frame_equal(build_features(con, CUTOFF, FeatureConfig(), "active").frame,
                                  _unshared(con, CUTOFF))
    # The stage is read, not rebuilt: a tampered stage shows through at its as-of...
    con.execute(f"update {EVENT_STAGE} set n = n + 1000")
    assert (build_features(con, CUTOFF, FeatureConfig(), "active").frame["events_90d"] >= 1000).any()
    # ...and is ignored at any other as-of (a dbt build from an earlier run).
    later = CUTOFF + timedelta(days=7, hours=5)
    pd.testing.assert_frame_equal(build_features(con, later, FeatureConfig(), "active").frame, _unshared(con, later))
    con.execute(f"delete from {EVENT_STAGE}")  # empty: its as-of is unknown, so it is not used either
    pd.testing.assert_frame_equal(build_features(con, CUTOFF, FeatureConfig(), "active").frame,
                                  _unshared(con, CUTOFF))
