"""Constructed warehouses for the measurement and report tests: a handful of hand-made rows whose
attribution and uplift are worked out by hand in the tests. Rows go in through the warehouse interface
(Arrow), so the same world can be built on DuckDB and on PostgreSQL."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.tables import MeasurementResult, measure
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse, parse_target
from orchestration.dbt_measurement import measurement_models_runner

AS_OF = datetime(2026, 3, 20, tzinfo=UTC)

JOURNEY_YAML = """id: {id}
name: {id}
owner: t@example.com
trigger: {{type: event, event: checkout_started}}
{goal}
templates:
  t1:
    channel: email
    locales:
      en-US: {{subject: "Hi", body: "Hello"}}
steps:
  - id: {step}
    type: send
    channel: email
    template: t1
"""


def write_journeys(directory: Path) -> Path:
    """j_cart: paid/shipped order within 3 days; j_welcome: no goal (default paid order, 7 days);
    j_app: event app_open within 2 days."""
    directory.mkdir(parents=True, exist_ok=True)
    specs = {
        "j_cart": ("goal: {order_status: [paid, shipped], within: 3d}", "c1"),
        "j_welcome": ("", "w1"),
        "j_app": ("goal: {event: app_open, within: 2d}", "a1"),
    }
    for journey_id, (goal, step) in specs.items():
        (directory / f"{journey_id}.yaml").write_text(JOURNEY_YAML.format(id=journey_id, goal=goal, step=step))
    return directory


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


TEXT, INSTANT = pa.string(), pa.timestamp("us", tz="UTC")
# The columns the tests fill, typed as the owners' DDL types them (send_ledger and journey_enrolments:
# crmflow/journeys/tables.py; the two dbt relations: their models).
INPUT_SCHEMAS = {
    "send_ledger": pa.schema([
        ("message_key", TEXT), ("journey_id", TEXT), ("step_id", TEXT), ("enrolment_id", TEXT), ("user_id", TEXT),
        ("channel", TEXT), ("variant", TEXT), ("template", TEXT), ("priority", pa.int32()), ("send_after", INSTANT),
        ("state", TEXT), ("planned_at", INSTANT), ("sent_at", INSTANT), ("updated_at", INSTANT)]),
    "journey_enrolments": pa.schema([
        ("enrolment_id", TEXT), ("journey_id", TEXT), ("user_id", TEXT), ("entry_key", TEXT), ("trigger_at", INSTANT),
        ("entered_at", INSTANT), ("is_holdout", pa.bool_()), ("status", TEXT), ("updated_at", INSTANT)]),
    "stg_shop__orders": pa.schema([("order_id", TEXT), ("user_id", TEXT), ("ordered_at", INSTANT), ("status", TEXT),
                                   ("amount", pa.decimal128(18, 2))]),
    "events_stitched": pa.schema([("message_id", TEXT), ("user_id", TEXT), ("event_name", TEXT),
                                  ("event_at", INSTANT)]),
    "delivery_events": pa.schema([("event_id", TEXT), ("channel", TEXT), ("provider", TEXT), ("message_key", TEXT),
                                  ("event", TEXT), ("occurred_at", INSTANT), ("_loaded_at", INSTANT)]),
}


# The dbt relations the tests stand in for (tables here, models of another folder in the project): in
# the dbt target schema, where the measurement models' ref() finds them (main / crm_analytics).
DBT_RELATIONS = ("stg_shop__orders", "events_stitched")


def _relation(wh: Warehouse, name: str) -> str:
    return wh.relation("analytics", name) if name in DBT_RELATIONS else name


def measure_world(target: str | Path, journeys_dir: Path | None, config: MeasurementConfig | None = None,
                  timezone: str = "UTC") -> MeasurementResult:
    """Goals, `dbt build` of the measurement models (the runner `crmflow report` uses) and the statistics
    on `target` (a DuckDB file: the caller holds no connection to it meanwhile)."""
    return measure(target, journeys_dir, AS_OF, measurement_models_runner(target, timezone), config)


def create_inputs(con: Warehouse | object) -> None:
    """The migrated tables plus tables for the inputs no migration creates (the dbt relations, and the
    journey tables where their migration is not there). `con`: a Warehouse or a raw DuckDB connection."""
    wh = as_warehouse(con)
    if wh.dialect == "duckdb":
        wh.execute("set TimeZone = 'UTC'")  # a raw connection has the machine's zone; calendar days are UTC
    apply_migrations(wh)
    for name, schema in INPUT_SCHEMAS.items():
        if not wh.table_exists(_relation(wh, name)):
            wh.write_arrow(schema.empty_table(), _relation(wh, name), mode="replace")


def _append(con: Warehouse | object, name: str, rows: list[tuple]) -> None:
    wh = as_warehouse(con)
    schema = INPUT_SCHEMAS[name]
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    wh.write_arrow(pa.table([pa.array(c, f.type) for c, f in zip(columns, schema, strict=True)], schema=schema),
                   _relation(wh, name))


START = datetime(2026, 1, 1, tzinfo=UTC)


def add_sends(wh: Warehouse | object, rows: list[tuple[str, str, str, str | None, str, str, str | None]]) -> None:
    """rows: (message_key, journey_id, step_id, variant, user_id, state, sent_at)."""
    _append(wh, "send_ledger", [(key, journey, step, f"e-{key}", user, "email", variant, "t1", 100, START, state,
                                 START, _instant(sent_at), START)
                                for key, journey, step, variant, user, state, sent_at in rows])


def add_orders(wh: Warehouse | object, rows: list[tuple[str, str, str, str, float]]) -> None:
    """rows: (order_id, user_id, ordered_at, status, amount)."""
    _append(wh, "stg_shop__orders", [(order, user, _instant(at), status, Decimal(str(amount)))
                                     for order, user, at, status, amount in rows])


def add_delivery(wh: Warehouse | object, rows: list[tuple[str, str, str]]) -> None:
    """rows: (message_key, event, occurred_at)."""
    loaded = datetime(2026, 3, 19, tzinfo=UTC)
    _append(wh, "delivery_events", [(f"{key}-{event}", "email", "sendgrid", key, event, _instant(at), loaded)
                                    for key, event, at in rows])


def add_enrolments(wh: Warehouse | object, journey_id: str, prefix: str, count: int, is_holdout: bool,
                   trigger_at: str) -> None:
    """`count` enrolments of users <prefix>0..<prefix>{count-1}, all triggered at `trigger_at`."""
    at = _instant(trigger_at)
    _append(wh, "journey_enrolments", [(f"{prefix}{i}", journey_id, f"{prefix}{i}", "k", at, at, is_holdout,
                                        "holdout" if is_holdout else "active", at) for i in range(count)])


def add_orders_for(wh: Warehouse | object, prefix: str, count: int, ordered_at: str, status: str = "paid",
                   amount: float = 10.0) -> None:
    """One order each for users <prefix>0..<prefix>{count-1}."""
    add_orders(wh, [(f"o-{prefix}{i}-{ordered_at}", f"{prefix}{i}", ordered_at, status, amount) for i in range(count)])


def add_events_for(wh: Warehouse | object, prefix: str, count: int, event_name: str, event_at: str) -> None:
    _append(wh, "events_stitched", [(f"ev-{prefix}{i}{event_at}", f"{prefix}{i}", event_name, _instant(event_at))
                                    for i in range(count)])


def add_attribution_world(wh: Warehouse | object) -> None:
    """The ledger, orders and delivery events worked by hand in test_measurement_attribution's docstring."""
    add_sends(wh, [
        ("m1", "j_welcome", "w1", None, "u1", "sent", "2026-03-01 10:00+00"),
        ("m2", "j_cart", "c1", "A", "u1", "sent", "2026-03-03 10:00+00"),
        ("m3", "j_cart", "c1", "B", "u2", "sent", "2026-03-05 10:00+00"),
        ("m4", "j_welcome", "w1", None, "u3", "sent", "2026-03-10 10:00+00"),
        ("m5", "j_cart", "c1", "A", "u4", "failed", None),
        ("m6", "j_welcome", "w1", None, "u5", "sent", "2026-03-18 12:00+00"),
    ])
    add_orders(wh, [
        ("o1", "u1", "2026-03-04 09:00+00", "paid", 100), ("o2", "u1", "2026-03-07 09:00+00", "paid", 50),
        ("o3", "u2", "2026-03-05 09:00+00", "paid", 70), ("o4", "u2", "2026-03-06 10:00+00", "cancelled", 30),
        ("o5", "u2", "2026-03-08 10:00+00", "paid", 40), ("o6", "u3", "2026-03-17 10:00:01+00", "paid", 20),
        ("o7", "u3", "2026-03-11 08:00+00", "paid", 25), ("o8", "u3", "2026-03-12 08:00+00", "paid", 10),
        ("o9", "u5", "2026-03-21 08:00+00", "paid", 99), ("o10", "u4", "2026-03-04 08:00+00", "paid", 5),
    ])
    add_delivery(wh, [
        ("m1", "delivered", "2026-03-01 10:01+00"), ("m1", "open", "2026-03-01 11:00+00"),
        ("m2", "click", "2026-03-03 12:00+00"), ("m3", "bounce", "2026-03-05 10:01+00"),
        ("m4", "delivered", "2026-03-10 10:01+00"), ("m6", "delivered", "2026-03-18 12:01+00"),
        ("m6", "unsubscribe", "2026-03-18 13:00+00"),
    ])


def add_uplift_world(wh: Warehouse | object) -> None:
    """The treated/holdout enrolments, orders and events worked by hand in test_measurement_uplift's docstring."""
    add_enrolments(wh, "j_cart", "t", 70, False, "2026-03-10 12:00+00")
    add_enrolments(wh, "j_cart", "h", 80, True, "2026-03-10 12:00+00")
    add_enrolments(wh, "j_cart", "young", 5, False, "2026-03-19 12:00+00")
    add_orders_for(wh, "t", 56, "2026-03-11 12:00+00")
    add_orders_for(wh, "h", 48, "2026-03-12 12:00+00")
    add_orders_for(wh, "young", 5, "2026-03-19 13:00+00")
    add_orders_for(wh, "t6", 10, "2026-03-11 12:00+00", status="cancelled")  # users t60..t69
    add_orders_for(wh, "h5", 4, "2026-03-14 12:00:01+00")  # users h50..h53: one second too late
    add_enrolments(wh, "j_app", "at", 10, False, "2026-03-01 00:00+00")
    add_enrolments(wh, "j_app", "ah", 10, True, "2026-03-01 00:00+00")
    add_events_for(wh, "at", 5, "app_open", "2026-03-02 00:00+00")
    add_events_for(wh, "ah", 2, "app_open", "2026-03-02 23:00+00")
    add_events_for(wh, "ah", 10, "app_open", "2026-03-04 00:00+00")  # after the 2-day window


# The dbt measurement models, the Python measurement assets and the report: what a run materialises
# after dispatch (the dbt models come from the project's dbt assets, as in Definitions).
MEASUREMENT_ASSET_KEYS = ("int_measurement__sent_messages", "journey_order_attribution", "journey_attribution",
                          "journey_conversion_trend", "journey_uplift_inputs", "journey_ab_inputs", "journey_goals",
                          "journey_uplift", "journey_ab_results",
                          # the report marts over the measurement models and delivery events
                          "rpt_journey_funnel", "rpt_trend", "rpt_delivery", "rpt_journey_figures",
                          "crmflow_report")


def materialize_measurement(target: str, marketing: Path, tmp_path: Path, monkeypatch):
    """Materialise MEASUREMENT_ASSET_KEYS on `target` (DuckDB path or PostgreSQL URL) as of AS_OF."""
    import dagster as dg
    from dagster_dbt import DbtCliResource

    from assets.measurement import build_measurement_assets
    from orchestration.asof import as_of_tags
    from orchestration.dbt import crmflow_dbt_assets, dbt_project
    from orchestration.dbt_env import dbt_target_env
    from orchestration.resources import CrmflowSettingsResource, WarehouseResource

    for name, value in dbt_target_env(parse_target(target)).items():
        monkeypatch.setenv(name, value)
    settings = CrmflowSettingsResource(landing_dir=str(tmp_path / "landing"), outbox_dir=str(tmp_path / "outbox"),
                                       export_dir=str(tmp_path / "exports"), marketing_dir=str(marketing))
    dbt = DbtCliResource(project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt"))
    return dg.materialize([crmflow_dbt_assets, *build_measurement_assets([])], tags=as_of_tags(AS_OF),
                          selection=dg.AssetSelection.assets(*MEASUREMENT_ASSET_KEYS),
                          resources={"warehouse": WarehouseResource(path=target), "settings": settings, "dbt": dbt})
