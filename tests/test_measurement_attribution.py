"""Last-touch attribution, funnel counts and the conversion trend on a hand-made ledger.

Worked by hand (as of 2026-03-20, j_cart window 3 days with paid/shipped, j_welcome default 7 days):
  m1 j_welcome u1 sent 03-01 10:00   m2 j_cart/A u1 sent 03-03 10:00   m3 j_cart/B u2 sent 03-05 10:00
  m4 j_welcome u3 sent 03-10 10:00   m5 j_cart/A u4 failed (never sent) m6 j_welcome u5 sent 03-18 12:00
  o1 u1 03-04 09:00 paid 100  -> m1 and m2 both cover it; m2 is later          -> m2
  o2 u1 03-07 09:00 paid 50   -> m2's window ended 03-06 10:00; m1 still covers -> m1
  o3 u2 03-05 09:00 paid 70   -> before m3 was sent                          -> none
  o4 u2 03-06 10:00 cancelled -> not a purchase                              -> none
  o5 u2 03-08 10:00 shipped 40 -> exactly at the end of m3's window (inclusive) -> m3
  o6 u3 03-17 10:00:01 paid 20 -> one second after m4's window                -> none
  o7 u3 03-11 08:00 paid 25, o8 u3 03-12 paid 10 -> both m4 (one message, two orders)
  o9 u5 03-21 paid            -> after the as-of                            -> none
  o10 u4 03-04 paid           -> m5 was never sent                           -> none
"""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest
from helpers_measurement import add_attribution_world, create_inputs, measure_world, write_journeys

from crmflow.errors import CrmflowUserError
from crmflow.measurement.config import MeasurementConfig


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attribution")
    path = str(tmp / "wh.duckdb")
    con = duckdb.connect(path)
    create_inputs(con)
    add_attribution_world(con)
    con.close()
    result = measure_world(path, write_journeys(tmp / "journeys"), MeasurementConfig(min_group_size=1))
    con = duckdb.connect(path)
    yield con, result, path
    con.close()


def test_each_paid_order_goes_to_the_latest_covering_message(measured):
    con, _, _ = measured
    rows = con.execute("select order_id, message_key from journey_order_attribution order by order_id").fetchall()
    assert rows == [("o1", "m2"), ("o2", "m1"), ("o5", "m3"), ("o7", "m4"), ("o8", "m4")]


def test_funnel_and_revenue_per_step_and_variant(measured):
    con, _, _ = measured
    rows = con.execute("""select journey_id, step_id, variant, sent, delivered, opened, clicked, bounced,
        unsubscribed, converted, attributed_orders, revenue from journey_attribution
        order by journey_id, step_id, variant""").fetchall()
    assert rows == [
        ("j_cart", "c1", "A", 1, 1, 1, 1, 0, 0, 1, 1, Decimal("100.00")),
        ("j_cart", "c1", "B", 1, 0, 0, 0, 1, 0, 1, 1, Decimal("40.00")),
        ("j_welcome", "w1", "-", 3, 3, 1, 0, 0, 1, 2, 3, Decimal("85.00")),
    ]


def test_conversion_trend_is_cumulative_and_only_complete_days(measured):
    con, _, _ = measured
    trend = {(j, str(d), n): (sent, conv) for j, d, n, sent, conv in con.execute(
        "select journey_id, send_date, days_since_send, sent, converted_cumulative from journey_conversion_trend"
    ).fetchall()}
    # m1 (sent 03-01) first converts on day 6; m4 (03-10) on day 1; m6 (03-18) only has days 0 and 1 complete.
    assert [trend[("j_welcome", "2026-03-01", d)] for d in range(8)] == [(1, 0)] * 6 + [(1, 1)] * 2
    assert [trend[("j_welcome", "2026-03-10", d)] for d in range(8)] == [(1, 0)] + [(1, 1)] * 7
    assert sorted(d for j, s, d in trend if s == "2026-03-18") == [0, 1]
    assert [trend[("j_cart", "2026-03-05", d)][1] for d in range(8)] == [0, 0, 0, 1, 1, 1, 1, 1]
    share = con.execute("""select converted_share from journey_conversion_trend
                           where journey_id = 'j_cart' and send_date = '2026-03-03' and days_since_send = 1""")
    assert share.fetchone()[0] == 1.0


def test_rerun_gives_the_same_tables(measured, tmp_path):
    con, _, path = measured
    query = "select * from journey_order_attribution order by order_id"
    before = con.execute(query).fetchall()
    con.close()
    measure_world(path, write_journeys(tmp_path / "journeys"), MeasurementConfig(min_group_size=1))
    with duckdb.connect(path) as again:
        assert again.execute(query).fetchall() == before


def test_variants_with_one_send_each_are_not_judged(measured):
    _, result, _ = measured
    ab = result.ab_results.set_index("variant")
    assert list(ab.index) == ["A", "B"]
    assert ab.loc["A", "verdict"] == "reference"  # both convert 1/1: tie on rate and sample, A by name
    assert ab.loc["B", "verdict"] == "no significant difference from A"


def test_empty_inputs_build_empty_tables(tmp_path):
    (tmp_path / "empty").mkdir()
    path = str(tmp_path / "empty" / "wh.duckdb")
    with duckdb.connect(path) as con:
        create_inputs(con)  # the migrated tables and empty dbt relations: nothing sent, nothing ordered
    result = measure_world(path, None)
    assert result.counts == {"messages_sent": 0, "orders_attributed": 0, "attribution_rows": 0,
                             "journeys_with_uplift": 0, "ab_variants": 0}
    with duckdb.connect(path) as con:
        for table in ("journey_order_attribution", "journey_attribution", "journey_conversion_trend",
                      "journey_uplift", "journey_ab_results"):
            assert con.execute(f"select count(*) from {table}").fetchone()[0] == 0


def test_a_warehouse_without_the_dbt_relations_fails_in_one_line(tmp_path):
    """The measurement models ref() stg_shop__orders and events_stitched: before the pipeline ever ran
    they are missing and the dbt step says so (no stand-ins any more)."""
    (tmp_path / "bare").mkdir()
    path = tmp_path / "bare" / "wh.duckdb"  # the same database name as the other tests: one dbt parse
    with pytest.raises(CrmflowUserError, match=r"dbt build of the measurement models on .*bare/wh\.duckdb failed: .*stg_shop__orders"):
        measure_world(str(path), None)


def test_a_ledger_over_one_duckdb_row_group_is_attributed_whole(tmp_path):
    """130,000 sends (more than DuckDB's 122,880-row group), each followed by its user's paid order an
    hour later: every order is credited. A temp table created empty and filled by `insert ... select` in
    the transaction (the previous form) lost every row in DuckDB 2.0.0: 0 orders attributed."""
    (tmp_path / "big").mkdir()
    path = str(tmp_path / "big" / "wh.duckdb")
    con = duckdb.connect(path)
    create_inputs(con)
    con.execute("""insert into send_ledger (message_key, journey_id, step_id, enrolment_id, user_id, channel, template,
                       priority, send_after, state, planned_at, sent_at, updated_at)
                   select 'm' || i, 'j_welcome', 'w1', 'e' || i, 'u' || i, 'email', 't1', 100, timestamptz '2026-03-01',
                          'sent', timestamptz '2026-03-01', timestamptz '2026-03-01' + i * interval '1 second',
                          timestamptz '2026-03-01'
                   from range(130000) r(i)""")
    con.execute("""insert into stg_shop__orders select 'o' || i, 'u' || i,
                       timestamptz '2026-03-01 01:00' + i * interval '1 second', 'paid', 10 from range(130000) r(i)""")
    con.close()
    result = measure_world(path, None)
    assert result.counts["messages_sent"] == result.counts["orders_attributed"] == 130_000
