"""Constructed warehouses for the measurement and report tests: a handful of hand-made rows whose
attribution and uplift are worked out by hand in the tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from crmflow.journeys.tables import ensure_journey_tables
from crmflow.warehouse import ensure_ops_tables

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


def create_inputs(con: duckdb.DuckDBPyConnection) -> None:
    """The real journey/ops tables plus table stand-ins for the two dbt relations measurement reads."""
    con.execute("set TimeZone = 'UTC'")
    ensure_journey_tables(con)
    ensure_ops_tables(con)
    con.execute("""create table stg_shop__orders (order_id varchar, user_id varchar, ordered_at timestamptz,
                   status varchar, amount decimal(18, 2))""")
    con.execute("""create table events_stitched (message_id varchar, user_id varchar, event_name varchar,
                   event_at timestamptz)""")


def add_sends(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str, str | None, str, str, str | None]]) -> None:
    """rows: (message_key, journey_id, step_id, variant, user_id, state, sent_at)."""
    con.executemany("""insert into send_ledger (message_key, journey_id, step_id, enrolment_id, user_id, channel,
        variant, template, priority, send_after, state, planned_at, sent_at, updated_at)
        values ($1, $2, $3, 'e-' || $1, $5, 'email', $4, 't1', 100, '2026-01-01', $6, '2026-01-01',
                cast($7 as timestamptz), '2026-01-01')""", rows)


def add_orders(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str, str, float]]) -> None:
    """rows: (order_id, user_id, ordered_at, status, amount)."""
    con.executemany("insert into stg_shop__orders values ($1, $2, cast($3 as timestamptz), $4, $5)", rows)


def add_delivery(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str]]) -> None:
    """rows: (message_key, event, occurred_at)."""
    con.executemany("""insert into delivery_events (event_id, channel, provider, message_key, event, occurred_at,
        _loaded_at) values ($1 || '-' || $2, 'email', 'sendgrid', $1, $2, cast($3 as timestamptz), '2026-03-19')""",
                    rows)


def add_enrolments(con: duckdb.DuckDBPyConnection, journey_id: str, prefix: str, count: int, is_holdout: bool,
                   trigger_at: str) -> None:
    """`count` enrolments of users <prefix>0..<prefix>{count-1}, all triggered at `trigger_at`."""
    con.execute("""insert into journey_enrolments (enrolment_id, journey_id, user_id, entry_key, trigger_at,
        entered_at, is_holdout, status, updated_at)
        select $prefix || i, $jid, $prefix || i, 'k', cast($t as timestamptz), cast($t as timestamptz), $h,
               case when $h then 'holdout' else 'active' end, cast($t as timestamptz)
        from range($n) r(i)""", {"prefix": prefix, "jid": journey_id, "t": trigger_at, "h": is_holdout, "n": count})


def add_orders_for(con: duckdb.DuckDBPyConnection, prefix: str, count: int, ordered_at: str, status: str = "paid",
                   amount: float = 10.0) -> None:
    """One order each for users <prefix>0..<prefix>{count-1}."""
    con.execute("""insert into stg_shop__orders
        select 'o-' || $prefix || i || '-' || $t, $prefix || i, cast($t as timestamptz), $s, $a
        from range($n) r(i)""", {"prefix": prefix, "t": ordered_at, "s": status, "a": amount, "n": count})


def add_events_for(con: duckdb.DuckDBPyConnection, prefix: str, count: int, event_name: str, event_at: str) -> None:
    con.execute("""insert into events_stitched
        select 'ev-' || $prefix || i || $t, $prefix || i, $e, cast($t as timestamptz) from range($n) r(i)""",
                {"prefix": prefix, "t": event_at, "e": event_name, "n": count})
