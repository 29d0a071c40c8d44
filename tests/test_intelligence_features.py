"""Features see only the past: changing anything after the cutoff leaves them unchanged."""

from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from helpers_intelligence import AS_OF, simulate_warehouse

from crmflow.intelligence.config import FeatureConfig
from crmflow.intelligence.features import build_features, churn_labels, staged_inputs

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


def _dbt_like_events(con):
    """events_stitched as dbt builds it: views over raw_events (with _loaded_at) and identity_map."""
    con.execute("""create table raw_events as select * replace (anonymous_id::varchar as anonymous_id),
                   '2026-01-01 00:00:00+00'::timestamptz as _loaded_at from events_stitched""")
    con.execute("drop table events_stitched")
    con.execute("create table identity_map as select distinct 'anon-' || user_id as anonymous_id, user_id "
                "from raw_events")
    con.execute("create view stg_tracking__events as select * from raw_events")
    con.execute("""create view events_stitched as select e.message_id, coalesce(e.user_id, i.user_id) as user_id,
                   e.event_at from stg_tracking__events e left join identity_map i using (anonymous_id)""")


def _unshared(con, cutoff):
    with staged_inputs(con, cutoff, FeatureConfig(), share=False) as st:
        assert st.event_days.startswith("_intel_event_days_")
        return build_features(con, cutoff, FeatureConfig(), "active", staged=st).frame


def test_event_stage_is_shared_at_the_same_as_of_and_rebuilt_when_its_sources_change(con):
    _dbt_like_events(con)
    first = build_features(con, CUTOFF, FeatureConfig(), "active").frame
    pd.testing.assert_frame_equal(first, _unshared(con, CUTOFF))
    assert con.execute("select as_of from intelligence_event_stage_marker").fetchall()[0][0] == CUTOFF
    # Same as-of, same sources: the stored stage is read, not rebuilt (a tampered stage shows through).
    con.execute("update intelligence_event_stage set n = n + 1000")
    assert (build_features(con, CUTOFF, FeatureConfig(), "active").frame["events_90d"] >= 1000).any()
    # A new load (raw_events grows, later _loaded_at) rebuilds it: features equal the unshared path.
    con.execute("""insert into raw_events by name select * replace (message_id || 'n' as message_id,
                   $c - interval 1 hour as event_at, '2026-02-01 00:00:00+00'::timestamptz as _loaded_at)
                   from raw_events where hash(message_id) % 5 = 0""", {"c": CUTOFF})
    again = build_features(con, CUTOFF, FeatureConfig(), "active").frame
    pd.testing.assert_frame_equal(again, _unshared(con, CUTOFF))
    assert not again["events_30d"].equals(first["events_30d"])
    # Anonymous events stitched through identity_map; then a re-link (same identity_map row count).
    con.execute("""insert into raw_events by name select message_id || 'a' as message_id, null as user_id,
                   'anon-' || user_id as anonymous_id, $c - interval 2 hour as event_at, _loaded_at
                   from raw_events where _loaded_at = '2026-02-01 00:00:00+00'""", {"c": CUTOFF})
    pd.testing.assert_frame_equal(build_features(con, CUTOFF, FeatureConfig(), "active").frame,
                                  _unshared(con, CUTOFF))
    con.execute("update intelligence_event_stage set n = n + 1000")
    con.execute("update identity_map set user_id = (select min(user_id) from raw_events)")
    pd.testing.assert_frame_equal(build_features(con, CUTOFF, FeatureConfig(), "active").frame,
                                  _unshared(con, CUTOFF))
    # Another as-of rebuilds it at that as-of.
    later = CUTOFF + timedelta(days=7, hours=5)
    pd.testing.assert_frame_equal(build_features(con, later, FeatureConfig(), "active").frame, _unshared(con, later))
    assert con.execute("select as_of from intelligence_event_stage_marker").fetchall()[0][0] == later
