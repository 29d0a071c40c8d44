"""The journey engine and the dispatch policies give the same state on DuckDB and PostgreSQL.

One crafted world (120 users, five journeys: event-without-order with holdout, A/B variants, goal,
engagement branch and journey cap; segment entry with a local-time window and left_segment exit;
birthday anniversary with tag, banner and task steps; value-tier transition with a wait from the
previous send; an exact contract date) goes through the warehouse interface into a fresh DuckDB file
and a fresh PostgreSQL database. Four ticks, each followed by the policies (consent, suppression,
quiet hours, channel and journey caps), then every journey table is compared row by row, order-
independently, timestamps as UTC instants. Keys and holdout buckets are also checked against Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers_journeys import (
    EMAIL_TEMPLATE,
    event,
    journey_from_yaml,
    make_customer_tables,
    order,
    profile,
    ts,
)
from helpers_postgres import postgres_url, postgres_warehouse  # noqa: F401 (fixtures)

from crmflow.journeys.columns import profile_columns
from crmflow.journeys.engine import run_tick
from crmflow.journeys.hashing import bucket, message_key
from crmflow.journeys.policies import apply_policies
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.preview import preview_journey
from crmflow.journeys.recommendations import load_recommendations
from crmflow.journeys.schema import Journey
from crmflow.warehouse import Warehouse, open_warehouse

USERS = [f"u{i:03d}" for i in range(120)]
ZONES = ["UTC", "Europe/Berlin", "Asia/Shanghai", "America/New_York", "Mars/Olympus"]  # the last is invalid
TICKS = [ts("2026-03-02T07:30"), ts("2026-03-02T12:00"), ts("2026-03-03T09:30"), ts("2026-03-05T12:00")]
JOURNEY_TABLES = ["journey_enrolments", "journey_decisions", "send_ledger", "journey_ticks", "journey_tags",
                  "journey_banner_overrides", "journey_task_requests"]


def _journey(jid: str, trigger: str, steps: str, extra: str = "") -> Journey:
    return journey_from_yaml(f"id: {jid}\nname: {jid}\nowner: qa\ntrigger: {trigger}\n{extra}"
                             f"templates:{EMAIL_TEMPLATE}steps:\n{steps}")


JOURNEYS = {
    "cart": _journey(
        "cart", "{type: event, event: checkout_started, without: {order: true, within: 2h}}",
        """  - id: ab
    type: send
    channel: email
    variants:
      - {name: A, template: hello, weight: 50}
      - {name: B, template: hello, weight: 50}
  - {id: pause, type: wait, duration: 1d}
  - id: route
    type: branch
    cases:
      - when: {order: {status: [paid]}}
        next: bought
      - when: {engagement: {step: ab, action: clicked}}
        next: clicked
      - when: {profile: [{field: country, op: "=", value: CN}]}
        next: cn
    default: nudge
  - {id: clicked, type: send, channel: email, template: hello, next: bought}
  - {id: cn, type: send, channel: email, template: hello, next: bought}
  - {id: nudge, type: send, channel: email, template: hello}
  - {id: bought, type: exit, reason: done}
""",
        "holdout: {percent: 20}\ngoal: {order_status: [paid], within: 5d}\nfrequency_cap: {max: 1, window: 3d}\n"
        "audience:\n  fields: [{field: order_count, op: '>=', value: 0}]\n",
    ),
    "welcome": _journey(
        "welcome", "{type: segment, family: lifecycle, segment: new}",
        """  - {id: window, type: wait, until: {start: '09:00', end: '11:00', weekdays: [mon, tue, wed, thu, fri]}}
  - {id: hello, type: send, channel: email, template: hello}
  - id: wait_view
    type: wait_until
    condition: {event: {name: product_viewed, min_count: 2}}
    timeout: 1d
    timeout_next: bye
  - {id: viewed, type: send, channel: email, template: hello}
  - {id: bye, type: exit, reason: finished}
""",
        "exit: {left_segment: true}\n",
    ),
    "bday": _journey(
        "bday", "{type: date, attribute: birth_date, at: '09:00'}",
        """  - {id: tag, type: add_tag, tag: birthday}
  - {id: banner, type: assign_banner, slot: hero, creative_id: cake, valid_for: 3d}
  - {id: task, type: create_task, queue: calls, priority: high, note: congratulate}
  - {id: gift, type: send, channel: email, template: hello}
  - {id: untag, type: remove_tag, tag: birthday}
""",
    ),
    "vip": _journey(
        "vip", "{type: transition, attribute: value_tier, direction: up}",
        """  - {id: first, type: send, channel: email, template: hello}
  - {id: gap, type: wait, duration: 1d, from: previous_send}
  - {id: second, type: send, channel: email, template: hello}
""",
    ),
    "renew": _journey(
        "renew", "{type: date, attribute: contract_end_date, mode: exact, offset_days: -30, at: '10:00'}",
        "  - {id: remind, type: send, channel: email, template: hello}\n",
    ),
}
POLICIES = Policies(frequency_caps=[{"channel": "email", "max": 3, "window": "7d"}])


def _world() -> dict[str, list[dict[str, Any]]]:
    profiles, events, segments_history, segments_now, tiers = [], [], [], [], []
    for i, uid in enumerate(USERS):
        profiles.append(profile(
            uid, timezone=ZONES[i % 5], country=["DE", "CN", "US"][i % 3], order_count=i % 4,
            email_opt_in=i % 17 != 5, email=None if i % 23 == 7 else f"{uid}@example.com",
            birth_date=date(1992, 2, 29) if i % 11 == 0 else (date(1990, 3, 3) if i % 7 == 0 else None),
            contract_end_date=date(2026, 4, 2) if i % 13 == 0 else None))
        if i % 2 == 0:
            events.append(event(f"co{i}", uid, "checkout_started", f"2026-03-0{1 + i % 3}T0{i % 7}:15"))
        if i % 3 == 0:
            segments_history.append({"user_id": uid, "segment_family": "lifecycle", "segment": "new",
                                     "valid_from": ts("2026-03-01T22:00"), "valid_to": None})
            if i % 9 != 0:  # these stay in the segment; the others leave it
                segments_now.append({"user_id": uid, "segment_family": "lifecycle", "segment": "new",
                                     "as_of": TICKS[0]})
        if i % 5 == 1:
            up = i % 10 == 1
            tiers += [{"user_id": uid, "value_tier": "medium", "b2b_grade": None, "valid_from": ts("2026-01-01"),
                       "valid_to": ts("2026-03-02T06:00")},
                      {"user_id": uid, "value_tier": "high" if up else "low", "b2b_grade": None,
                       "valid_from": ts("2026-03-02T06:00"), "valid_to": None}]
    orders = [order(f"o{i}", uid, "2026-03-01T01:00") for i, uid in enumerate(USERS) if i % 8 == 0]
    return {"customer_profile": profiles, "events_stitched": events, "stg_shop__orders": orders,
            "customer_segment_history": segments_history, "customer_segments": segments_now,
            "customer_value_tier_history": tiers}


def _between_ticks(wh: Warehouse, tick: int, as_of: datetime) -> None:
    """What happens in the world after a tick: sends, orders (goals), views, clicks, suppressions."""
    # A stand-in for dispatch (tested on its own): every due planned message is sent 5 minutes later.
    wh.execute("""update send_ledger set state = 'sent', sent_at = $sent, updated_at = $sent, attempts = 1
                  where state = 'planned' and send_after <= $as_of""",
               {"as_of": as_of, "sent": as_of + timedelta(minutes=5)})
    if tick == 0:
        make_customer_tables(wh, stg_shop__orders=[order(f"late{i}", u, "2026-03-02T09:00")
                                                   for i, u in enumerate(USERS) if i % 6 == 2])
        wh.execute("""insert into suppression_list (channel, address, user_id, reason, source, suppressed_at)
                      values ('email', 'u012@example.com', 'u012', 'unsubscribe', 'sendgrid', $at),
                             ('email', 'u006@example.com', null, 'bounce', 'sendgrid', $at)""",
                   {"at": ts("2026-03-02T10:00")})
    if tick == 1:
        views = [event(f"v{i}{k}", u, "product_viewed", "2026-03-02T15:00")
                 for i, u in enumerate(USERS) if i % 3 == 0 for k in range(1 + i % 2)]
        make_customer_tables(wh, events_stitched=views, stg_shop__orders=[
            order(f"goal{i}", u, "2026-03-02T13:00") for i, u in enumerate(USERS) if i % 6 == 0])
        # Clicks on the cart journey's first message for users ending in 4: keyed by the ledger's key.
        wh.execute("""insert into delivery_events (event_id, channel, provider, message_key, event, occurred_at,
                          _loaded_at, user_id)
                      select 'click-' || message_key, 'email', 'sendgrid', message_key, 'click', $at, $at, user_id
                      from send_ledger where journey_id = 'cart' and step_id = 'ab' and user_id like '%4'""",
                   {"at": ts("2026-03-02T16:00")})


def _run_world(wh: Warehouse) -> dict[str, list[tuple]]:
    make_customer_tables(wh, **_world())
    for n, as_of in enumerate(TICKS):
        for journey in JOURNEYS.values():
            run_tick(wh, journey, as_of, POLICIES.default_timezone)
        apply_policies(wh, as_of, POLICIES, JOURNEYS)
        _between_ticks(wh, n, as_of)
    return {table: _rows(wh, table) for table in JOURNEY_TABLES}


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float | Decimal):
        return round(float(value), 9)
    return value


def _rows(wh: Warehouse, table: str) -> list[tuple]:
    arrow = wh.fetch_arrow(table)
    names = sorted(arrow.column_names)
    rows = [tuple((n, _normal(r[n])) for n in names) for r in arrow.to_pylist()]
    return sorted(rows, key=repr)


@pytest.fixture
def duckdb_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    with open_warehouse(tmp_path / "journeys.duckdb") as wh:
        yield wh


def test_four_ticks_give_the_same_journey_state_on_duckdb_and_postgres(
    duckdb_warehouse: Warehouse, postgres_warehouse: Warehouse  # noqa: F811
) -> None:
    duck = _run_world(duckdb_warehouse)
    pg = _run_world(postgres_warehouse)
    for table in JOURNEY_TABLES:
        assert len(duck[table]) == len(pg[table]), table
        assert duck[table] == pg[table], f"{table} differs between DuckDB and PostgreSQL"

    # The world exercises what it claims to (on both engines, since they are equal).
    ledger = [dict(r) for r in duck["send_ledger"]]
    states = Counter(r["state"] for r in ledger)
    reasons = Counter(str(r["reason"]).split(":")[0] for r in ledger)
    assert {"planned", "suppressed", "skipped", "capped"} <= set(states), states
    assert {"quiet_hours", "no_consent", "no_address", "journey_cap", "suppression_list"} <= set(reasons), reasons
    assert {r["step_id"] for r in ledger} >= {"ab", "clicked", "cn", "nudge", "hello", "viewed", "gift",
                                               "first", "second", "remind"}
    enrolled = [dict(r) for r in duck["journey_enrolments"]]
    exits = Counter(r["exit_reason"] for r in enrolled)
    assert {"goal", "left_segment", "unsubscribed", "finished", "end"} <= set(exits), exits
    assert {dict(r)["decision"] for r in duck["journey_decisions"]} >= {
        "entered", "exited", "converted", "suppressed", "skipped", "capped", "deferred"}
    assert duck["journey_tags"] and duck["journey_banner_overrides"] and duck["journey_task_requests"]

    # Keys and holdout buckets are the Python definitions (docs/journeys.md), whatever the engine.
    for row in ledger:
        assert row["message_key"] == message_key(row["journey_id"], row["enrolment_id"], row["step_id"],
                                                 row["variant"])
    cart = [r for r in enrolled if r["journey_id"] == "cart"]
    assert any(r["is_holdout"] for r in cart) and not all(r["is_holdout"] for r in cart)
    for r in cart:
        assert r["is_holdout"] == (bucket("cart", r["user_id"]) < 2000)


def _preview_world(wh: Warehouse) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    make_customer_tables(wh, **_world())
    wh.execute("create table customer_recommendations (user_id varchar, rank integer, sku varchar, "
               "score double precision, reason varchar)")
    wh.execute("""insert into customer_recommendations values ('u000', 2, 'SKU-2', 0.25, 'co_purchase'),
                  ('u000', 1, 'SKU-1', 0.5, 'popular'), ('u002', 1, 'SKU-9', 0.125, 'popular')""")
    preview = preview_journey(wh, JOURNEYS["cart"], TICKS[0], samples=5)
    left_behind = {t: wh.scalar(f"select count(*) from {t}") for t in JOURNEY_TABLES}
    assert left_behind == dict.fromkeys(JOURNEY_TABLES, 0)  # the preview wrote nothing
    assert load_recommendations(wh, ["u000", "u001", "u002"]) == {
        "u000": [{"sku": "SKU-1", "score": 0.5, "reason": "popular", "rank": 1},
                 {"sku": "SKU-2", "score": 0.25, "reason": "co_purchase", "rank": 2}],
        "u002": [{"sku": "SKU-9", "score": 0.125, "reason": "popular", "rank": 1}]}
    return preview.report.metadata(), preview.samples, profile_columns(wh)


def test_preview_recommendations_and_profile_columns_match_on_both_engines(
    duckdb_warehouse: Warehouse, postgres_warehouse: Warehouse  # noqa: F811
) -> None:
    duck = _preview_world(duckdb_warehouse)
    pg = _preview_world(postgres_warehouse)
    assert duck == pg
    report, samples, columns = duck
    assert report["entered"] > 0 and len(samples) == 5
    assert columns["registered_at"] == "TIMESTAMP WITH TIME ZONE" and columns["revenue"] == "DECIMAL(18,2)"


def test_a_tick_that_enrols_leaves_statistics_of_the_enrolments_on_postgres(
    postgres_warehouse: Warehouse  # noqa: F811
) -> None:
    """The steps' conditions join the journey's active enrolments to orders; planned without statistics
    of the rows just entered PostgreSQL rescanned the orders per enrolment (157 s for one wait_until
    statement at 100k users). The tick analyses journey_enrolments once it has enrolled."""
    make_customer_tables(postgres_warehouse, **_world())

    def statistics() -> int:
        return postgres_warehouse.scalar(
            "select count(*) from pg_stats where tablename = 'journey_enrolments' and attname = 'journey_id'")

    run_tick(postgres_warehouse, JOURNEYS["cart"], TICKS[0], POLICIES.default_timezone)
    assert postgres_warehouse.scalar("select count(*) from journey_enrolments") > 0
    assert statistics() == 1
