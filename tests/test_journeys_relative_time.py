"""Audience filters relative to the tick's as-of (`within`, `older_than`) and `trigger.max_age`:
crafted profiles and events at known distances from the as-of; every expectation moves with the
as-of, none with the wall clock."""

from datetime import timedelta

import duckdb
import pytest
from helpers_journeys import (
    EMAIL_TEMPLATE,
    enrolments,
    event,
    journey_from_yaml,
    make_customer_tables,
    profile,
    ts,
)

from crmflow.audience import Params, audience_sql
from crmflow.journeys.engine import run_tick
from crmflow.journeys.filters import condition_sql
from crmflow.journeys.loader import parse_journey_text
from crmflow.journeys.schema import Audience, Condition

T = ts("2026-03-10T12:00")
ONE_SEND = "\n  - {id: s1, type: send, channel: email, template: hello}\n"


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    yield con
    con.close()


def matching(con, audience: dict, as_of=T) -> list[str]:
    """The users of customer_profile the compiled audience admits at `as_of`."""
    columns = dict(con.execute("select column_name, data_type from information_schema.columns "
                               "where table_name = 'customer_profile'").fetchall())
    params = Params(values={"as_of": as_of})
    where = audience_sql(Audience.model_validate(audience), "p", columns, params)
    return [r[0] for r in con.execute(f"select user_id from customer_profile p where {where} order by 1",
                                      params.values).fetchall()]


def test_within_and_older_than_on_timestamps_are_relative_to_the_as_of(con) -> None:
    make_customer_tables(con, customer_profile=[
        profile("fresh", registered_at=ts("2026-03-05T09:00"), last_order_at=ts("2026-03-09T10:00")),
        profile("edge", registered_at=T - timedelta(days=7), last_order_at=T - timedelta(days=30)),
        profile("old", registered_at=ts("2026-03-03T11:59"), last_order_at=ts("2026-02-08T11:59")),
        profile("future", registered_at=ts("2026-03-11T00:00"), last_order_at=ts("2026-03-11T00:00")),
        profile("never", registered_at=None, last_order_at=None),
    ])
    within = {"fields": [{"field": "registered_at", "op": "within", "value": "7d"}]}
    older = {"fields": [{"field": "last_order_at", "op": "older_than", "value": "30d"}]}
    # within 7d: as_of - 7d <= registered_at <= as_of (the boundary counts, the future does not)
    assert matching(con, within) == ["edge", "fresh"]
    # older_than 30d: strictly before as_of - 30d; NULL (no order yet) matches neither operator
    assert matching(con, older) == ["old"]
    # the same data a week later: the window moves with the as-of
    assert matching(con, within, T + timedelta(days=7)) == ["future"]
    assert matching(con, older, T + timedelta(days=7)) == ["edge", "old"]
    # hours count too: registered within 4 days (fresh is 5 days 3 hours old)
    assert matching(con, {"fields": [{"field": "registered_at", "op": "within", "value": "4d"}]}) == []
    assert matching(con, {"fields": [{"field": "registered_at", "op": "within", "value": "124h"}]}) == ["fresh"]


def test_relative_operators_on_a_date_column_use_the_utc_date(con) -> None:
    con.execute("set TimeZone = 'UTC'")
    make_customer_tables(con, customer_profile=[
        profile("ended_long_ago", contract_end_date="2026-01-15"),
        profile("ended_on_boundary", contract_end_date="2026-02-08"),  # UTC date of T - 30d
        profile("ended_recently", contract_end_date="2026-03-09"),
        profile("ends_later", contract_end_date="2026-04-01"),
    ])
    # the session time zone must not matter: dates compare with the UTC date of as_of - 30d
    con.execute("set TimeZone = 'Asia/Tokyo'")
    assert matching(con, {"fields": [{"field": "contract_end_date", "op": "older_than", "value": "30d"}]}) == [
        "ended_long_ago"]
    assert matching(con, {"fields": [{"field": "contract_end_date", "op": "within", "value": "30d"}]}) == [
        "ended_on_boundary", "ended_recently"]


def test_a_naive_timestamp_column_is_read_as_utc(con) -> None:
    make_customer_tables(con)
    con.execute("alter table customer_profile alter registered_at type timestamp")
    con.execute("set TimeZone = 'America/New_York'")
    con.execute("insert into customer_profile (user_id, registered_at) values "
                "('in', timestamp '2026-03-03T12:00:00'), ('out', timestamp '2026-03-03T11:59:59')")
    assert matching(con, {"fields": [{"field": "registered_at", "op": "within", "value": "7d"}]}) == ["in"]


def test_relative_operator_in_a_profile_condition(con) -> None:
    make_customer_tables(con, customer_profile=[profile("recent", last_order_at=ts("2026-03-08T00:00")),
                                                profile("lapsed", last_order_at=ts("2026-01-01T00:00"))])
    con.execute("create temp table e as select user_id, 'x' as enrolment_id from customer_profile")
    cond = Condition.model_validate({"profile": [{"field": "last_order_at", "op": "within", "value": "1w"}]})
    params = Params(values={"as_of": T})
    columns = dict(con.execute("select column_name, data_type from information_schema.columns "
                               "where table_name = 'customer_profile'").fetchall())
    sql = condition_sql(cond, "e", columns, params)
    assert [r[0] for r in con.execute(f"select user_id from e where {sql}", params.values).fetchall()] == ["recent"]


def test_tick_enrols_only_the_recently_registered(con) -> None:
    users = [profile("new_user", registered_at=ts("2026-03-08T08:00")),
             profile("old_user", registered_at=ts("2025-12-01T08:00"))]
    make_customer_tables(con, customer_profile=users,
                         events_stitched=[event(f"e_{u['user_id']}", u["user_id"], "app_opened", "2026-03-10T10:00")
                                          for u in users])
    j = journey_from_yaml(f"""
id: recent_signups
name: Recent sign-ups
owner: qa
trigger: {{type: event, event: app_opened}}
audience:
  fields:
    - {{field: registered_at, op: within, value: 7d}}
templates:{EMAIL_TEMPLATE}steps:{ONE_SEND}""")
    report = run_tick(con, j, T)
    assert report.entered == 1
    assert [r[0] for r in enrolments(con, "recent_signups")] == ["new_user"]


@pytest.mark.parametrize(("value", "message"), [
    ("7", "operator 'within' needs a duration value: duration must be a string like '2d', '4h', '30m' or '1w', got 7"),
    ("7 days", "operator 'within' needs a duration value: invalid duration '7 days'"),
    ("0d", "operator 'within' needs a duration above zero"),
    ("[7d, 8d]", "operator 'within' needs a duration value: duration must be a string"),
])
def test_invalid_relative_values_name_the_line(value: str, message: str, tmp_path) -> None:
    text = (f"id: bad\nname: b\nowner: qa\ntrigger: {{type: event, event: app_opened}}\naudience:\n  fields:\n"
            f"    - {{field: registered_at, op: within, value: {value}}}\ntemplates:{EMAIL_TEMPLATE}steps:{ONE_SEND}")
    loaded = parse_journey_text(text, tmp_path / "bad.yaml")
    assert not loaded.ok
    (error,) = loaded.errors
    assert (error.line, error.field) == (7, "audience.fields[0]") and message in error.message, str(error)


# ---- trigger.max_age -------------------------------------------------------------------------------
def cart_journey(jid: str, trigger_extra: str = "") -> object:
    return journey_from_yaml(f"""
id: {jid}
name: Forgot something?
owner: qa
trigger: {{type: event, event: cart_abandoned{trigger_extra}}}
reentry: {{mode: cooldown, cooldown: 1d}}
templates:{EMAIL_TEMPLATE}steps:{ONE_SEND}""")


def skipped(con, jid: str) -> list[tuple]:
    return con.execute("select user_id, reason, decided_at from journey_decisions where journey_id = ? "
                       "and decision = 'skipped' order by user_id", [jid]).fetchall()


def test_max_age_keeps_stale_events_out_after_a_sparse_run(con) -> None:
    t0 = ts("2026-03-06T12:00")
    make_customer_tables(con, customer_profile=[profile("stale"), profile("fresh")])
    capped, plain = cart_journey("cart_fresh", ", max_age: 1d"), cart_journey("cart_any")
    for j in (capped, plain):
        run_tick(con, j, t0)  # the last tick before a four-day gap
    con.execute("insert into events_stitched select * from (values "
                "('e1', 'stale', null, 'track', 'cart_abandoned', timestamptz '2026-03-06T13:00:00+00', '{}', '{}'), "
                "('e2', 'fresh', null, 'track', 'cart_abandoned', timestamptz '2026-03-10T10:00:00+00', '{}', '{}'))")
    report = run_tick(con, capped, T)
    # the 3-day-old abandoned cart does not enter; it is recorded once as skipped, with its reason
    assert (report.entered, report.too_old) == (1, 1)
    assert report.metadata()["too_old_triggers"] == 1
    assert [r[0] for r in enrolments(con, "cart_fresh")] == ["fresh"]
    assert skipped(con, "cart_fresh") == [("stale", "trigger_older_than_max_age:1d", T)]
    # without max_age the same data enrols both (so the event itself would trigger)
    assert run_tick(con, plain, T).entered == 2
    # the next tick sees the stale event again (lookback): still out, not recorded twice
    again = run_tick(con, capped, T + timedelta(hours=1))
    assert (again.entered, again.too_old) == (0, 0) and len(skipped(con, "cart_fresh")) == 1


def test_max_age_counts_from_the_event_of_an_event_without_follow_up(con) -> None:
    make_customer_tables(con, customer_profile=[profile("recent"), profile("days_ago")], events_stitched=[
        event("c1", "recent", "checkout_started", "2026-03-10T09:00"),      # 3 h before T: due, fresh
        event("c2", "days_ago", "checkout_started", "2026-03-09T06:00"),    # 30 h before T: too old
    ])
    j = journey_from_yaml(f"""
id: checkout_nudge
name: Checkout nudge
owner: qa
trigger: {{type: event, event: checkout_started, without: {{order: true, within: 2h}}, max_age: 1d, lookback: 2d}}
templates:{EMAIL_TEMPLATE}steps:{ONE_SEND}""")
    report = run_tick(con, j, T)
    assert (report.entered, report.too_old) == (1, 1)
    assert [r[0] for r in enrolments(con, "checkout_nudge")] == ["recent"]


def test_max_age_applies_to_date_triggers_too(con) -> None:
    make_customer_tables(con, customer_profile=[profile("yesterday", birth_date="1990-03-09"),
                                                profile("today", birth_date="1990-03-10")])
    j = journey_from_yaml(f"""
id: birthday_fresh
name: Birthday
owner: qa
trigger: {{type: date, attribute: birth_date, at: "09:00", lookback: 3d, max_age: 12h}}
templates:{EMAIL_TEMPLATE}steps:{ONE_SEND}""")
    report = run_tick(con, j, T)  # yesterday's 09:00 is 27 h old, today's 3 h
    assert (report.entered, report.too_old) == (1, 1)
    assert [r[0] for r in enrolments(con, "birthday_fresh")] == ["today"]


@pytest.mark.parametrize(("trigger", "message"), [
    ("{type: event, event: checkout_started, without: {order: true, within: 2h}, max_age: 2h}",
     "max_age (2h) must be longer than without.within (2h)"),
    ("{type: event, event: cart_abandoned, max_age: 0d}", "max_age must be above zero"),
    ("{type: event, event: cart_abandoned, max_age: 3 days}", "invalid duration '3 days'"),
])
def test_invalid_max_age_names_the_line(trigger: str, message: str, tmp_path) -> None:
    text = f"id: bad\nname: b\nowner: qa\ntrigger: {trigger}\ntemplates:{EMAIL_TEMPLATE}steps:{ONE_SEND}"
    loaded = parse_journey_text(text, tmp_path / "bad.yaml")
    (error,) = loaded.errors
    assert error.line == 4 and error.field.startswith("trigger") and message in error.message, str(error)
