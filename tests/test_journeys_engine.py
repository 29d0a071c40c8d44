"""The tick engine on crafted marts: each trigger kind, each step kind, goals and exits, re-entry,
holdout, A/B split, idempotent reruns."""

from collections import Counter

import duckdb
import pytest
from helpers_journeys import (
    EMAIL_TEMPLATE,
    enrolments,
    event,
    journey_from_yaml,
    ledger,
    make_customer_tables,
    order,
    profile,
    ts,
)

from crmflow.journeys.engine import run_tick
from crmflow.journeys.hashing import bucket

HEAD = """
name: Test
owner: qa
templates:
""" + EMAIL_TEMPLATE


def seg_hist(uid: str, segment: str, at: str, family: str = "lifecycle") -> dict:
    return {"user_id": uid, "segment_family": family, "segment": segment, "valid_from": ts(at), "valid_to": None}


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    yield con
    con.close()


def simple(jid: str, trigger: str, steps: str = "  - {id: s1, type: send, channel: email, template: hello}\n",
           extra: str = ""):
    return journey_from_yaml(f"id: {jid}\n{HEAD}trigger: {trigger}\n{extra}steps:\n{steps}")


def test_segment_trigger_enrols_only_new_entries_and_rerun_is_idempotent(con) -> None:
    make_customer_tables(con, customer_profile=[profile("u1"), profile("u2"), profile("u3")],
                         customer_segment_history=[seg_hist("u1", "new", "2026-03-01T10:00"),
                                                   seg_hist("u2", "new", "2026-02-01T10:00"),
                                                   seg_hist("u3", "active", "2026-03-01T10:00")])
    j = simple("seg", "{type: segment, family: lifecycle, segment: new}")
    first = run_tick(con, j, ts("2026-03-01T12:00"))
    assert first.entered == 1 and first.planned == 1
    before = con.execute("select count(*) from journey_decisions").fetchone()
    again = run_tick(con, j, ts("2026-03-01T12:00"))
    assert again.entered == 0 and again.planned == 0
    assert con.execute("select count(*) from journey_decisions").fetchone() == before
    assert ledger(con, "seg") == [("u1", "s1", "email", None, "planned", None)]


JOURNEY_STATE = ("journey_enrolments", "journey_decisions", "journey_ticks", "send_ledger")


def test_a_rerun_of_the_same_as_of_leaves_every_journey_table_as_it_was(con) -> None:
    """Entrants of a tick are not judged by its goals and exits on a rerun of the same as-of: an
    opted-out entrant and one whose goal (an order) came between trigger and tick stay as the first run
    left them, and the tick's row keeps its counts (a rerun used to exit them and zero the row)."""
    make_customer_tables(con, customer_profile=[profile("u1"), profile("optout", email_opt_in=False,
                                                                        sms_opt_in=False, push_opt_in=False),
                                                profile("buyer")],
                         customer_segment_history=[seg_hist(u, "new", "2026-03-01T10:00")
                                                   for u in ("u1", "optout", "buyer")],
                         stg_shop__orders=[order("o1", "buyer", "2026-03-01T11:00")])
    steps = ("  - {id: s1, type: send, channel: email, template: hello}\n  - {id: w, type: wait, duration: 2d}\n"
             "  - {id: s2, type: send, channel: email, template: hello}\n")
    j = simple("rerun", "{type: segment, family: lifecycle, segment: new}", steps,
               "goal: {order_status: [paid], within: 7d}\nexit: {unsubscribed: true, on_goal: true}\n")

    def state() -> dict[str, list]:
        return {t: sorted(map(repr, con.execute(f"select * from {t}").fetchall())) for t in JOURNEY_STATE}

    run_tick(con, j, ts("2026-03-01T12:00"))
    first = state()
    assert con.execute("select entered, exited, planned from journey_ticks").fetchall() == [(3, 0, 3)]
    run_tick(con, j, ts("2026-03-01T12:00"))
    assert state() == first
    # the next tick judges them: the opted-out one exits, the buyer converted and exits on the goal
    run_tick(con, j, ts("2026-03-02T12:00"))
    exits = dict(con.execute("select user_id, exit_reason from journey_enrolments where status = 'exited'").fetchall())
    assert exits == {"optout": "unsubscribed", "buyer": "goal"}


def test_the_tick_row_counts_exits_not_completions(con) -> None:
    make_customer_tables(con, customer_profile=[profile("u1")],
                         customer_segment_history=[seg_hist("u1", "new", "2026-03-01T10:00")])
    j = simple("once", "{type: segment, family: lifecycle, segment: new}")  # one send step, then the end
    run_tick(con, j, ts("2026-03-01T12:00"))
    assert [r[:2] for r in enrolments(con, "once")] == [("u1", "completed")]
    assert con.execute("select entered, exited, planned, active from journey_ticks").fetchall() == [(1, 0, 1, 0)]


def test_transition_trigger_up_only(con) -> None:
    hist = [
        {"user_id": "up", "value_tier": "low", "b2b_grade": None, "valid_from": ts("2026-01-01"), "valid_to": ts("2026-03-01T10:00")},
        {"user_id": "up", "value_tier": "high", "b2b_grade": None, "valid_from": ts("2026-03-01T10:00"), "valid_to": None},
        {"user_id": "down", "value_tier": "high", "b2b_grade": None, "valid_from": ts("2026-01-01"), "valid_to": ts("2026-03-01T10:00")},
        {"user_id": "down", "value_tier": "low", "b2b_grade": None, "valid_from": ts("2026-03-01T10:00"), "valid_to": None},
        {"user_id": "first", "value_tier": "high", "b2b_grade": None, "valid_from": ts("2026-03-01T10:00"), "valid_to": None},
    ]
    make_customer_tables(con, customer_profile=[profile(u) for u in ("up", "down", "first")],
                         customer_value_tier_history=hist)
    j = simple("vip", "{type: transition, attribute: value_tier, direction: up}")
    run_tick(con, j, ts("2026-03-01T12:00"))
    assert [r[0] for r in enrolments(con, "vip")] == ["up"]


def test_event_trigger_without_order_within_window(con) -> None:
    make_customer_tables(
        con, customer_profile=[profile("buyer"), profile("leaver"), profile("late")],
        events_stitched=[event("e1", "buyer", "checkout_started", "2026-03-01T08:00"),
                         event("e2", "leaver", "checkout_started", "2026-03-01T08:30"),
                         event("e3", "late", "checkout_started", "2026-03-01T11:00")],
        stg_shop__orders=[order("o1", "buyer", "2026-03-01T09:00")],
    )
    j = simple("cart", "{type: event, event: checkout_started, without: {order: true, within: 2h}}")
    run_tick(con, j, ts("2026-03-01T12:00"))
    # buyer ordered within 2h; 'late' has not yet had 2 hours to order
    assert [r[0] for r in enrolments(con, "cart")] == ["leaver"]
    run_tick(con, j, ts("2026-03-01T14:00"))
    assert [r[0] for r in enrolments(con, "cart")] == ["late", "leaver"]


def test_date_trigger_birthday_in_user_timezone(con) -> None:
    make_customer_tables(con, customer_profile=[
        profile("sh", birth_date=ts("1990-03-02").date(), timezone="Asia/Shanghai"),
        profile("ny", birth_date=ts("1990-03-02").date(), timezone="America/New_York"),
        profile("bad_tz", birth_date=ts("1990-03-02").date(), timezone="Mars/Olympus"),
    ])
    j = simple("bday", "{type: date, attribute: birth_date, at: '09:00'}")
    # 09:00 in Shanghai on 2 March = 01:00 UTC; New York 09:00 = 14:00 UTC; bad zone -> UTC 09:00
    run_tick(con, j, ts("2026-03-02T02:00"))
    assert [r[0] for r in enrolments(con, "bday")] == ["sh"]
    run_tick(con, j, ts("2026-03-02T10:00"))
    assert [r[0] for r in enrolments(con, "bday")] == ["bad_tz", "sh"]
    run_tick(con, j, ts("2026-03-02T15:00"))
    assert [r[0] for r in enrolments(con, "bday")] == ["bad_tz", "ny", "sh"]


def test_date_trigger_contract_end_minus_30_days(con) -> None:
    make_customer_tables(con, customer_profile=[profile("b1", customer_type="business",
                                                        contract_end_date=ts("2026-04-30").date())])
    j = simple("renew", "{type: date, attribute: contract_end_date, offset_days: -30, at: '10:00'}")
    run_tick(con, j, ts("2026-03-31T09:00"))
    assert enrolments(con, "renew") == []
    run_tick(con, j, ts("2026-03-31T11:00"))
    assert [r[0] for r in enrolments(con, "renew")] == ["b1"]


STEPS_ALL = """
  - {id: mail, type: send, channel: email, template: hello}
  - {id: pause, type: wait, duration: 2d}
  - id: wait_view
    type: wait_until
    condition: {event: {name: product_viewed}}
    timeout: 1d
    timeout_next: no_view
  - id: route
    type: branch
    cases:
      - when: {profile: [{field: country, op: "=", value: CN}]}
        next: cn
      - when: {engagement: {step: mail, action: clicked}}
        next: clicked
    default: other
  - {id: cn, type: add_tag, tag: china, next: bye}
  - {id: clicked, type: assign_banner, slot: hero, creative_id: c1, valid_for: 7d, next: bye}
  - {id: other, type: create_task, queue: calls, priority: high, note: call them, next: bye}
  - {id: no_view, type: remove_tag, tag: china}
  - {id: bye, type: exit, reason: done}
"""


def test_every_step_kind(con) -> None:
    users = [profile("cn", country="CN"), profile("click"), profile("plain"), profile("idle")]
    make_customer_tables(con, customer_profile=users,
                         customer_segment_history=[seg_hist(u["user_id"], "new", "2026-03-01T10:00") for u in users],
                         journey_tags=[{"user_id": "idle", "tag": "china", "journey_id": "x",
                                        "added_at": ts("2026-01-01"), "removed_at": None}])
    j = simple("all", "{type: segment, family: lifecycle, segment: new}", STEPS_ALL)
    run_tick(con, j, ts("2026-03-01T12:00"))
    assert {r[2] for r in enrolments(con, "all")} == {"pause"}
    # 1 day later: the 2-day wait holds
    run_tick(con, j, ts("2026-03-02T12:00"))
    assert {r[2] for r in enrolments(con, "all")} == {"pause"}
    con.executemany("insert into events_stitched values (?, ?, null, 'track', 'product_viewed', ?, '{}', '{}')",
                    [[f"v{u}", u, ts("2026-03-03T13:00")] for u in ("cn", "click", "plain")])
    key = con.execute("select message_key from send_ledger where user_id = 'click'").fetchone()[0]
    con.execute("insert into delivery_events (event_id, channel, provider, message_key, event, occurred_at, "
                "_loaded_at) values ('d1', 'email', 'sendgrid', ?, 'click', ?, ?)",
                [key, ts("2026-03-02T00:00"), ts("2026-03-02T00:00")])
    run_tick(con, j, ts("2026-03-03T12:00"))  # wait over -> wait_until; no view yet
    assert {r[2] for r in enrolments(con, "all")} == {"wait_view"}
    run_tick(con, j, ts("2026-03-03T14:00"))  # three viewed -> branch -> tag/banner/task -> exit
    rows = {r[0]: r for r in enrolments(con, "all")}
    assert rows["cn"][1:4] == ("completed", None, "done")
    assert rows["idle"][2] == "wait_view"
    run_tick(con, j, ts("2026-03-04T14:00"))  # idle times out -> no_view removes tag -> exit
    assert enrolments(con, "all")[1][1:4] == ("completed", None, "done")
    assert con.execute("select user_id, tag, removed_at is null from journey_tags order by all").fetchall() == [
        ("cn", "china", True), ("idle", "china", False)]
    assert con.execute("select user_id, slot, creative_id, valid_until - valid_from from journey_banner_overrides"
                       ).fetchall()[0][:3] == ("click", "hero", "c1")
    assert con.execute("select user_id, queue, priority, note from journey_task_requests").fetchall() == [
        ("plain", "calls", "high", "call them")]


def test_wait_until_local_window_in_user_timezone(con) -> None:
    users = [profile("sh", timezone="Asia/Shanghai"), profile("utc")]
    make_customer_tables(con, customer_profile=users,
                         customer_segment_history=[seg_hist(u["user_id"], "new", "2026-03-02T00:30") for u in users])
    steps = ("  - {id: w, type: wait, until: {start: '09:00', end: '10:00'}}\n"
             "  - {id: s1, type: send, channel: email, template: hello}\n")
    j = simple("win", "{type: segment, family: lifecycle, segment: new}", steps)
    run_tick(con, j, ts("2026-03-02T01:30"))  # 09:30 in Shanghai, 01:30 UTC
    assert [r[0] for r in ledger(con, "win")] == ["sh"]
    run_tick(con, j, ts("2026-03-02T09:15"))
    assert [r[0] for r in ledger(con, "win")] == ["sh", "utc"]


def test_goal_exits_and_holdout_records_conversion(con) -> None:
    users = [profile(f"u{i}") for i in range(200)]
    make_customer_tables(con, customer_profile=users,
                         customer_segment_history=[seg_hist(u["user_id"], "silent", "2026-03-01T10:00") for u in users])
    steps = ("  - {id: s1, type: send, channel: email, template: hello}\n  - {id: w, type: wait, duration: 3d}\n"
             "  - {id: s2, type: send, channel: email, template: hello}\n")
    j = simple("wb", "{type: segment, family: lifecycle, segment: silent}", steps,
               "holdout: {percent: 10}\ngoal: {order_status: [paid], within: 7d}\n")
    run_tick(con, j, ts("2026-03-01T12:00"))
    rows = enrolments(con, "wb")
    holdouts = {r[0] for r in rows if r[4]}
    assert holdouts == {u["user_id"] for u in users if bucket("wb", u["user_id"]) < 1000}  # python == sql
    assert 5 <= len(holdouts) <= 40
    assert not holdouts & {r[0] for r in ledger(con, "wb")}  # never messaged
    buyer = sorted({u["user_id"] for u in users} - holdouts)[0]
    held = sorted(holdouts)[0]
    con.executemany("insert into stg_shop__orders (order_id, user_id, ordered_at, status) values (?, ?, ?, 'paid')",
                    [["o1", buyer, ts("2026-03-02T10:00")], ["o2", held, ts("2026-03-02T10:00")]])
    run_tick(con, j, ts("2026-03-04T12:00"))
    by_user = {r[0]: r for r in enrolments(con, "wb")}
    assert by_user[buyer][1] == "exited" and by_user[buyer][3] == "goal"
    assert con.execute("select count(*) from journey_enrolments where converted_at is not null").fetchone()[0] == 2
    assert ("s2" not in {r[1] for r in ledger(con, "wb") if r[0] == buyer})
    # stable across runs/DBs: same users held out in a fresh warehouse
    other = duckdb.connect()
    make_customer_tables(other, customer_profile=users,
                         customer_segment_history=[seg_hist(u["user_id"], "silent", "2026-03-01T10:00") for u in users])
    run_tick(other, j, ts("2026-03-01T12:00"))
    assert {r[0] for r in enrolments(other, "wb") if r[4]} == holdouts


def test_reentry_once_and_cooldown(con) -> None:
    make_customer_tables(con, customer_profile=[profile("u1")],
                         events_stitched=[event("e1", "u1", "cart_abandoned", "2026-03-01T10:00"),
                                          event("e2", "u1", "cart_abandoned", "2026-03-03T10:00"),
                                          event("e3", "u1", "cart_abandoned", "2026-03-10T10:00")])
    once = simple("once", "{type: event, event: cart_abandoned}")
    cool = simple("cool", "{type: event, event: cart_abandoned}", extra="reentry: {mode: cooldown, cooldown: 5d}\n")
    for day in ("2026-03-01T12:00", "2026-03-03T12:00", "2026-03-10T12:00"):
        run_tick(con, once, ts(day))
        run_tick(con, cool, ts(day))
    assert len(enrolments(con, "once")) == 1
    assert len(enrolments(con, "cool")) == 2  # 3 March is inside the 5-day cooldown


def test_variant_split_within_tolerance_and_audience_filters(con) -> None:
    users = [profile(f"u{i}", order_count=i % 3) for i in range(3000)]
    make_customer_tables(con, customer_profile=users,
                         customer_segment_history=[seg_hist(u["user_id"], "new", "2026-03-01T10:00") for u in users],
                         customer_tags=[{"user_id": "u4", "tag": "vip", "tag_source": "manual", "added_at": ts("2026-01-01")}])
    steps = ("  - id: ab\n    type: send\n    channel: email\n    variants:\n"
             "      - {name: A, template: hello, weight: 70}\n      - {name: B, template: hello, weight: 30}\n")
    j = simple("ab", "{type: segment, family: lifecycle, segment: new}", steps,
               "audience:\n  fields: [{field: order_count, op: '>=', value: 1}]\n  tags: {none: [vip]}\n")
    run_tick(con, j, ts("2026-03-01T12:00"))
    rows = ledger(con, "ab")
    assert len(rows) == 2000 - 1  # order_count >= 1, minus the vip
    split = Counter(r[3] for r in rows)
    assert abs(split["A"] / len(rows) - 0.7) < 0.04


def test_preview_counts_and_renders_without_writing(con) -> None:
    from crmflow.journeys.preview import preview_journey

    make_customer_tables(con, customer_profile=[profile("u1", locale="zh-CN", first_name="李")],
                         customer_segment_history=[seg_hist("u1", "new", "2026-03-01T10:00")])
    j = simple("pv", "{type: segment, family: lifecycle, segment: new}")
    result = preview_journey(con, j, ts("2026-03-01T12:00"))
    assert result.report.entered == 1 and result.report.planned_by_variant == {"s1": 1}
    assert result.samples[0]["subject"] == "你好 李"
    assert con.execute("select count(*) from journey_enrolments").fetchone()[0] == 0
    assert con.execute("select count(*) from send_ledger").fetchone()[0] == 0
