"""Measurement and the report's data on DuckDB and on PostgreSQL: the same crafted world built through the
warehouse interface on both engines gives the same tables, frames and figures (order-independent, floats
to 1e-9, timestamps as UTC instants), and the hand-worked answers of the DuckDB tests hold on PostgreSQL.

The world: the attribution ledger of test_measurement_attribution (m1..m6, o1..o10), the holdout groups
of test_measurement_uplift (j_cart 70/80, j_app 10/10), two sends tied on sent_at, a journey whose YAML
is gone (default goal), an A/B step with 60 sends per variant, and
small marts for every report chart (seeded, a few hundred rows).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest
from helpers_measurement import (
    AS_OF,
    add_attribution_world,
    add_enrolments,
    add_orders,
    add_orders_for,
    add_sends,
    add_uplift_world,
    create_inputs,
    materialize_measurement,
    measure_world,
    write_journeys,
)
from helpers_postgres import fresh_database

from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.tables import MEASUREMENT_TABLES
from crmflow.report.data import load_report_data
from crmflow.summary import stage_counts
from crmflow.warehouse import Warehouse, open_warehouse

KEYS = {"journey_order_attribution": ["order_id"], "journey_attribution": ["journey_id", "step_id", "variant"],
        "journey_conversion_trend": ["journey_id", "send_date", "days_since_send"], "journey_uplift": ["journey_id"],
        "journey_ab_results": ["journey_id", "step_id", "variant"]}


def _marts(wh: Warehouse) -> None:
    """The dbt marts the report reads, as plain tables with the marts' column types."""
    rng = random.Random(14)
    day0 = date(2025, 9, 1)
    stages = ["new", "active", "at_risk", "churned", "reactivated"]
    history = {"lifecycle_stage": [], "valid_from": [], "valid_to": []}
    for _ in range(300):
        start = datetime(2025, 9, 1, tzinfo=UTC) + timedelta(days=rng.randrange(200), hours=rng.randrange(24))
        history["lifecycle_stage"].append(rng.choice(stages))
        history["valid_from"].append(start)
        history["valid_to"].append(None if rng.random() < 0.4 else start + timedelta(days=rng.randrange(1, 90)))
    instant = pa.timestamp("us", tz="UTC")
    tables = {
        "customer_lifecycle_history": pa.table(history, schema=pa.schema(
            [("lifecycle_stage", pa.string()), ("valid_from", instant), ("valid_to", instant)])),
        "customer_profile": pa.table({"user_id": [f"u{i}" for i in range(50)]}),
        "customer_lifecycle": pa.table({"user_id": [f"u{i}" for i in range(50)],
                                        "lifecycle_stage": [stages[i % 5] for i in range(50)]}),
        "customer_value_tier": pa.table({
            "customer_type": ["b2c"] * 30 + ["b2b"] * 10,
            "value_tier": [rng.choice(["gold", "silver", None]) for _ in range(30)] + [None] * 10,
            "b2b_grade": [None] * 30 + [rng.choice(["A", "B", None]) for _ in range(10)]},
            schema=pa.schema([("customer_type", pa.string()), ("value_tier", pa.string()), ("b2b_grade", pa.string())])),
        "customer_segments": pa.table({"segment_family": [rng.choice(["value", "rfm"]) for _ in range(80)],
                                       "segment": [rng.choice(["a", "b", "c", "d"]) for _ in range(80)]}),
        "kpi_cohort_retention": pa.table({
            "cohort_month": [date(2025, m, 1) for m in range(1, 13) for _ in range(13)],
            "months_since_registration": pa.array([k for _ in range(12) for k in range(13)], pa.int32()),
            "cohort_size": [100 + m for m in range(12) for _ in range(13)],
            "retention_rate": [rng.random() for _ in range(156)]}),
        "kpi_daily": pa.table({
            "date_day": [day0 + timedelta(days=i) for i in range(220)],
            "revenue": pa.array([Decimal(rng.randrange(0, 100000)) / 100 for _ in range(220)], pa.decimal128(18, 2)),
            "active_users": [rng.randrange(0, 40) for _ in range(220)]}),
        "kpi_ltv": pa.table({"dimension": ["value_segment"] * 3 + ["all", "country"],
                             "dimension_value": ["vip", "regular", None, "all", "DE"],
                             "users": [5, 50, 20, 75, 30],
                             "ltv_per_customer": pa.array([Decimal("900.50"), Decimal("120.25"), None,
                                                           Decimal("150.00"), Decimal("99.00")], pa.decimal128(18, 2)),
                             "ltv_per_user": [90.0, 12.5, 0.0, 15.0, 9.0]}),
        "kpi_funnel": pa.table({"acquisition_channel": ["all", "seo"], "registered_users": [100, 40],
                                "first_order_users": [40, 10], "repeat_order_users": [12, 3]}),
        "operator_efficiency": pa.table({"operator_id": ["op1", "op2", "op3"], "tasks_assigned": [10, 10, 4],
                                         "tasks_handled": [8, 5, 4], "tasks_converted_reported": [2, 1, 0],
                                         "tasks_expired": [1, 3, 0], "completion_rate": [0.8, 0.5, 1.0],
                                         "conversion_rate": [0.25, 0.2, 0.0],
                                         "baseline_conversion_rate": [0.1, 0.1, 0.1]}),
    }
    for name, table in tables.items():
        wh.write_arrow(table, wh.relation("analytics", name), mode="replace")


def _world(wh: Warehouse) -> None:
    create_inputs(wh)
    add_attribution_world(wh)
    add_uplift_world(wh)
    add_sends(wh, [
        # exact tie on sent_at for u9: the key decides (code-point order: 'tie-B' > 'tie-A')
        ("tie-A", "j_welcome", "w1", None, "u9", "sent", "2026-03-12 10:00+00"),
        ("tie-B", "j_welcome", "w1", None, "u9", "sent", "2026-03-12 10:00+00"),
    ])
    add_sends(wh, [(f"ab{i}", "j_app", "a1", "control" if i % 2 else "new", f"at{i}", "sent", "2026-03-01 01:00+00")
                   for i in range(120)])
    add_orders(wh, [("o11", "u9", "2026-03-13 08:00+00", "paid", 12.34)])
    add_orders_for(wh, "at", 37, "2026-03-01 05:00+00", amount=19.99)  # the A/B step's conversions
    add_enrolments(wh, "j_gone", "g", 3, False, "2026-03-01 00:00+00")  # no YAML any more: default paid goal
    add_orders_for(wh, "g", 2, "2026-03-02 00:00+00")
    add_orders(wh, [("o-g2", "g2", "2026-03-02 00:00+00", "shipped", 5)])  # not a paid status by default
    _marts(wh)


def _measure(target: str, tmp_path) -> dict:
    with open_warehouse(target) as wh:
        _world(wh)
    result = measure_world(target, write_journeys(tmp_path / "journeys"), MeasurementConfig(min_group_size=30))
    with open_warehouse(target) as wh:
        tables = {name: wh.fetch_arrow(name) for name in MEASUREMENT_TABLES}
        report = load_report_data(wh, AS_OF, "USD")
    return {"result": result, "tables": tables, "report": report}


@pytest.fixture(scope="module")
def duckdb_side(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("measure_duckdb")
    return _measure(str(tmp / "wh.duckdb"), tmp)


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    """A fresh PostgreSQL database for this module (skips without a server, fails under CI=true)."""
    with fresh_database("crmflow_measure") as url:
        yield url


@pytest.fixture(scope="module")
def postgres_side(postgres_url, tmp_path_factory):
    """The measured world on PostgreSQL: an open warehouse on it and what was measured."""
    measured = _measure(postgres_url, tmp_path_factory.mktemp("measure_postgres"))
    with open_warehouse(postgres_url) as wh:
        yield wh, measured


def _rows(table: pa.Table, keys: list[str]) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda row: [str(row[k]) for k in keys])


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _assert_same_rows(left: list[dict], right: list[dict], what: str) -> None:
    assert len(left) == len(right), f"{what}: {len(left)} rows on DuckDB, {len(right)} on PostgreSQL"
    for a, b in zip(left, right, strict=True):
        different = {k: (a[k], b[k]) for k in a if not _same_value(a[k], b[k])}
        assert not different, f"{what}: {different} in {a}"


def _frame_rows(frame: pd.DataFrame | None) -> list[dict] | None:
    if frame is None:
        return None
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return sorted(rows, key=lambda row: [str(v) for v in row.values()])


def test_measurement_tables_are_equal_on_both_engines(duckdb_side, postgres_side):
    _, pg = postgres_side
    for name in MEASUREMENT_TABLES:
        duck, post = duckdb_side["tables"][name], pg["tables"][name]
        assert duck.schema.names == post.schema.names, name
        assert [f.type for f in duck.schema] == [f.type for f in post.schema], name
        assert duck.num_rows > 0, f"{name} is empty: the world does not exercise it"
        _assert_same_rows(_rows(duck, KEYS[name]), _rows(post, KEYS[name]), name)
    assert duckdb_side["result"].counts == pg["result"].counts


def test_report_data_is_equal_on_both_engines(duckdb_side, postgres_side):
    _, pg = postgres_side
    duck, post = duckdb_side["report"], pg["report"]
    assert duck.missing == post.missing == set()
    for key, frame in duck.frames.items():
        assert frame is not None, f"report section {key} has no data: the world does not exercise it"
        assert list(frame.columns) == list(post.frames[key].columns), key
        _assert_same_rows(_frame_rows(frame), _frame_rows(post.frames[key]), f"report {key}")
    assert duck.figures.keys() == post.figures.keys()
    for key, value in duck.figures.items():
        assert _same_value(value, post.figures[key]), (key, value, post.figures[key])


def test_hand_worked_answers_hold_on_postgres(postgres_side):
    wh, pg = postgres_side
    credited = wh.fetch_rows("select order_id, message_key from journey_order_attribution "
                             "where journey_id in ('j_welcome', 'j_cart') order by order_id")
    assert sorted(credited) == sorted([("o1", "m2"), ("o2", "m1"), ("o5", "m3"), ("o7", "m4"), ("o8", "m4"),
                                       ("o11", "tie-B")])
    uplift = pg["result"].uplift.set_index("journey_id")
    cart = uplift.loc["j_cart"]
    assert (cart.treated_converted, cart.holdout_converted) == (56, 48)
    assert (round(cart.uplift_ci_low, 4), round(cart.uplift_ci_high, 4)) == (0.0524, 0.3339)
    assert cart.incremental_revenue == pytest.approx(140.0)
    # no YAML: the default goal (a paid order within 7 days); g2's shipped order is not a paid status
    assert uplift.loc["j_gone", ["treated_enrolments", "treated_converted"]].tolist() == [3, 2]
    ab = pg["result"].ab_results.set_index("variant")
    assert ab.loc["control", "verdict"] == "reference" and ab.loc["new", "sent"] == 60
    for _, curve in pg["report"].frames["trend"].groupby("journey_id"):
        assert curve.sort_values("days_since_send")["converted_share"].is_monotonic_increasing


def test_rerun_on_postgres_gives_the_same_tables(postgres_side, postgres_url, tmp_path):
    wh, pg = postgres_side
    measure_world(postgres_url, write_journeys(tmp_path / "again"), MeasurementConfig(min_group_size=30))
    for name in MEASUREMENT_TABLES:
        _assert_same_rows(_rows(pg["tables"][name], KEYS[name]), _rows(wh.fetch_arrow(name), KEYS[name]), name)


def test_run_summary_counts_rows_on_postgres(postgres_side, postgres_url):
    counts = {table: rows for _, table, rows in stage_counts(postgres_url)}
    assert counts["send_ledger"] == 6 + 2 + 120 and counts["journey_enrolments"] == 70 + 80 + 5 + 10 + 10 + 3
    # only tables that exist (customer_clusters is created by migration 42; the churn scores only by their asset)
    assert "raw_events" in counts and "customer_churn_scores" not in counts


def test_assets_materialise_on_postgres(postgres_side, postgres_url, tmp_path, dbt_manifest, monkeypatch):
    marketing = tmp_path / "marketing"
    write_journeys(marketing / "journeys")
    result = materialize_measurement(postgres_url, marketing, tmp_path, monkeypatch)
    assert result.success
    assert all(check.passed for check in result.get_asset_check_evaluations())
    report = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("crmflow_report")]
    metadata = report[0].materialization.metadata
    assert metadata["messages_sent"].value == 5 + 2 + 120  # m1..m6 but m5 (failed), the tie, the A/B step
    assert metadata["sections_without_data"].value == []
    assert "Holdout uplift" in (tmp_path / "exports" / "report.html").read_text(encoding="utf-8")
