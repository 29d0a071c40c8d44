"""dbt build of segments, tags and KPI marts on crafted raw rows, at two as-ofs (known answers)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from helpers_segments import AS_OF_1, AS_OF_2, query, run_dbt, seed_raw

from crmflow.settings import REPO_ROOT
from crmflow.warehouse import connect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Run 1 at AS_OF_1, then change u2's consent and run 2 at AS_OF_2; snapshot after each run."""
    base = tmp_path_factory.mktemp("segments")
    warehouse = base / "warehouse.duckdb"
    target = base / "target"
    seed_raw(warehouse, REPO_ROOT / "marketing" / "tags.yaml")
    manual = base / "landing" / "manual_tags"
    manual.mkdir(parents=True)
    (manual / "ops.csv").write_text(
        "user_id,tag,added_by,added_at\nu3,vip_call,alice,2026-03-01T10:00:00Z\nzz,vip_call,alice,2026-03-01\n"
    )
    from connectors.sources.manual_tags import ingest_manual_tags
    from crmflow.settings import parse_as_of

    with connect(warehouse) as con:
        ingest_manual_tags(con, base / "landing", parse_as_of(AS_OF_1))

    first = run_dbt(warehouse, target, AS_OF_1)
    assert first.returncode == 0, first.stdout[-6000:]
    snapshot_1 = {
        "segments": query(warehouse, "select user_id, segment_family, segment from customer_segments"),
        "tags": query(warehouse, "select user_id, tag, tag_source from customer_tags"),
        "daily": query(warehouse, "select * from kpi_daily order by date_day"),
        "retention": query(warehouse, "select cohort_month, months_since_registration, cohort_size, "
                           "retained_users, retention_rate from kpi_cohort_retention"),
        "funnel": query(warehouse, "select acquisition_channel, registered_users, first_order_users, "
                        "repeat_order_users, registration_to_first_order_rate from kpi_funnel"),
        "ltv": query(warehouse, "select dimension, dimension_value, users, paying_users, revenue, "
                     "active_customer_months, churn_observations, churned, avg_lifetime_months, "
                     "ltv_per_customer, ltv_per_user from kpi_ltv"),
    }
    with connect(warehouse) as con:
        con.execute("update raw_registrations set email = 'u2@example.com', email_opt_in = true where user_id = 'u2'")
        # What the clustering asset writes before dbt's segments in run 2 (source crm_intelligence).
        con.execute("insert into customer_clusters (user_id, cluster_id, cluster_label, distance) "
                    "values ('u1', 3, 'high-frequency', 0.5)")
    second = run_dbt(warehouse, target, AS_OF_2)
    assert second.returncode == 0, second.stdout[-6000:]
    return {"warehouse": warehouse, "target": target, "run1": snapshot_1}


def _by_family(rows: list[tuple]) -> dict[tuple[str, str], str]:
    return {(user, family): segment for user, family, segment in rows}


def test_segments_known_answers_and_exclusive(built):
    seg = _by_family(built["run1"]["segments"])
    assert len(seg) == len(built["run1"]["segments"])  # one segment per user and family
    users = {"u1", "u2", "u3", "u4", "u5"}
    families = {"lifecycle", "value", "rfm", "customer_type", "channel_preference", "cluster"}
    assert set(seg) == {(u, f) for u in users for f in families}
    # customer_clusters still empty (clustering has not run): everyone is unclustered
    assert {seg[(u, "cluster")] for u in users} == {"unclustered"}
    assert seg[("u3", "rfm")] == "no_purchase"
    assert seg[("u4", "rfm")] == "no_purchase"  # a cancelled order is not a purchase
    assert seg[("u1", "rfm")] != "no_purchase"
    assert seg[("u3", "customer_type")] == "business"
    assert seg[("u3", "value")].startswith("grade_")
    assert seg[("u1", "value")].startswith("value_")
    assert seg[("u1", "channel_preference")] == "email"
    assert seg[("u2", "channel_preference")] == "sms"
    assert seg[("u3", "channel_preference")] == "unreachable"  # email without consent
    assert seg[("u3", "lifecycle")] == "prospect"


def test_segment_history_records_entered_and_left(built):
    warehouse = built["warehouse"]
    rows = query(warehouse, "select segment, valid_from, valid_to from customer_segment_history "
                 "where user_id = 'u2' and segment_family = 'channel_preference' order by valid_from")
    as_of_1 = rows[0][1]
    assert [(r[0], r[2] is None) for r in rows] == [("sms", False), ("email", True)]
    assert rows[0][2] == rows[1][1] and rows[1][1] > as_of_1
    # u3 bought between the runs: left no_purchase at run 2, entered an RFM segment then.
    rfm = query(warehouse, "select segment, valid_to is null from customer_segment_history "
                "where user_id = 'u3' and segment_family = 'rfm' order by valid_from")
    assert rfm[0] == ("no_purchase", False) and rfm[1][0] != "no_purchase" and rfm[1][1]
    # "entered since the last run" is a plain query
    entered = query(warehouse, "select user_id from customer_segment_history where segment_family = "
                    "'channel_preference' and segment = 'email' and valid_from = (select max(as_of) from "
                    "customer_segments)")
    assert entered == [("u2",)]
    open_rows = query(warehouse, "select user_id, segment_family, count(*) from customer_segment_history "
                      "where valid_to is null group by all having count(*) <> 1")
    assert open_rows == []
    current = query(warehouse, "select user_id, segment_family, segment from customer_segment_history "
                    "where valid_to is null except select user_id, segment_family, segment from customer_segments")
    assert current == []


def test_rule_and_manual_tags(built):
    tags_1 = set(built["run1"]["tags"])
    assert {(u, t) for u, t, s in tags_1 if s == "rule"} == {
        ("u1", "big_spender"),
        ("u1", "mobile_only"),
        ("u1", "birthday_this_month"),
        ("u2", "discount_hunter"),
        ("u2", "cart_abandoner_7d"),
        ("u3", "b2b_lead"),
    }
    # manual tag for a known user is kept; the unknown user 'zz' stays in raw only
    assert {(u, t) for u, t, s in tags_1 if s == "manual"} == {("u3", "vip_call")}
    tags_2 = set(query(built["warehouse"], "select user_id, tag from customer_tags where tag_source = 'rule'"))
    assert tags_2 == {
        ("u1", "big_spender"), ("u1", "mobile_only"), ("u2", "discount_hunter"), ("u3", "big_spender"),
        ("u1", "inactive_30d"), ("u2", "inactive_30d"), ("u4", "inactive_30d"), ("u5", "inactive_30d"),
    }


def test_kpi_daily_known_days(built):
    daily = {row[0]: row[1:] for row in built["run1"]["daily"]}
    assert min(daily) == date(2026, 1, 5) and max(daily) == date(2026, 3, 10) and len(daily) == 65
    # date: active, new, paying, orders, revenue, arpu, arppu
    assert daily[date(2026, 2, 12)] == (1, 0, 1, 1, Decimal("500.00"), 500.0, 500.0)
    assert daily[date(2026, 3, 1)] == (3, 0, 0, 0, Decimal("0.00"), 0.0, None)
    assert daily[date(2026, 1, 5)][1] == 1 and daily[date(2026, 2, 28)][1] == 1
    assert daily[date(2026, 1, 6)] == (0, 0, 0, 0, Decimal("0.00"), None, None)


def test_kpi_daily_incremental_equals_full_refresh(built):
    warehouse, target = built["warehouse"], built["target"]
    incremental = query(warehouse, "select * from kpi_daily order by date_day")
    assert incremental[-1][0] == date(2026, 4, 15) and len(incremental) == 101  # no gap between runs
    result = run_dbt(warehouse, target, AS_OF_2, "--full-refresh", "--select", "kpi_daily")
    assert result.returncode == 0, result.stdout[-4000:]
    assert query(warehouse, "select * from kpi_daily order by date_day") == incremental


def test_kpi_churn(built):
    rows = query(built["warehouse"], "select month_start, customers_prev_month, churned_customers, churn_rate, "
                 "is_complete_month from kpi_churn order by month_start")
    assert rows == [
        (date(2026, 2, 1), 2, 0, 0.0, True),
        (date(2026, 3, 1), 2, 1, 0.5, True),
        (date(2026, 4, 1), 2, 2, 1.0, False),
    ]


def test_kpi_cohort_retention_and_funnel(built):
    retention = {(r[0], r[1]): r[2:] for r in built["run1"]["retention"]}
    assert retention == {
        (date(2026, 1, 1), 0): (2, 2, 1.0),
        (date(2026, 1, 1), 1): (2, 2, 1.0),
        (date(2026, 1, 1), 2): (2, 2, 1.0),
        (date(2026, 2, 1), 0): (2, 0, 0.0),
        (date(2026, 2, 1), 1): (2, 1, 0.5),
    }
    funnel = {r[0]: r[1:] for r in built["run1"]["funnel"]}
    assert funnel == {
        "ads": (2, 1, 1, 0.5), "organic": (1, 1, 1, 1.0), "sales": (1, 0, 0, 0.0), "all": (4, 2, 2, 0.5),
    }


def test_kpi_ltv(built):
    ltv_1 = {(r[0], r[1]): r[2:] for r in built["run1"]["ltv"]}
    # users, paying, revenue, active months, observations, churned, lifetime, ltv/customer, ltv/user
    assert ltv_1[("all", "all")] == (5, 3, Decimal("1320.00"), 6, 2, 0, 36.0, 7920.0, 4752.0)
    assert ltv_1[("registration_cohort", "2026-01-01")][:4] == (2, 2, Decimal("1290.00"), 5)
    ltv_2 = query(built["warehouse"], "select churn_observations, churned, avg_lifetime_months, ltv_per_customer "
                  "from kpi_ltv where dimension = 'all'")
    assert ltv_2 == [(4, 1, 4.0, 1897.14)]



def test_cluster_family_reads_the_previous_runs_clusters(built):
    rows = query(built["warehouse"], "select user_id, segment from customer_segments where segment_family = 'cluster'")
    assert dict(rows) == {"u1": "cluster_3", "u2": "unclustered", "u3": "unclustered", "u4": "unclustered",
                          "u5": "unclustered"}
    history = query(built["warehouse"], "select segment, valid_to is null from customer_segment_history "
                    "where user_id = 'u1' and segment_family = 'cluster' order by valid_from")
    assert history == [("unclustered", False), ("cluster_3", True)]
