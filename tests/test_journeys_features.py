"""Journey features the engine/dispatch tests did not cover: the per-journey frequency cap (as used by
abandoned_cart), the `unsubscribed` and `left_segment` exits, `enabled: false`, start/end dates, and
the exit on an event goal."""

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from helpers_journeys import (
    EMAIL_TEMPLATE,
    enrolments,
    event,
    journey_from_yaml,
    ledger,
    make_customer_tables,
    profile,
    ts,
)

from connectors.channels.outbox import OutboxChannel
from crmflow.journeys.dispatch import dispatch
from crmflow.journeys.engine import run_tick
from crmflow.journeys.loader import load_journey_file
from crmflow.journeys.policy_config import Policies
from crmflow.settings import REPO_ROOT

T0 = ts("2026-03-01T12:00")
# a send, a two-day wait, a second send: long enough to exit in the middle
TWO_SENDS = """
  - {id: s1, type: send, channel: email, template: hello}
  - {id: pause, type: wait, duration: 2d}
  - {id: s2, type: send, channel: email, template: hello}
"""


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    yield con
    con.close()


def build(jid: str, trigger: str, extra: str = "", steps: str = TWO_SENDS):
    return journey_from_yaml(f"id: {jid}\nname: {jid}\nowner: qa\ntrigger: {trigger}\n{extra}"
                             f"templates:{EMAIL_TEMPLATE}steps:{steps}")


def seg_hist(uid: str, segment: str, at: str, family: str = "lifecycle") -> dict:
    return {"user_id": uid, "segment_family": family, "segment": segment, "valid_from": ts(at), "valid_to": None}


def current(uid: str, segment: str, family: str = "lifecycle") -> dict:
    return {"user_id": uid, "segment_family": family, "segment": segment, "as_of": T0}


def by_user(con, jid: str) -> dict[str, tuple]:
    return {r[0]: r[1:4] for r in enrolments(con, jid)}  # user -> (status, current_step, exit_reason)


# ---- per-journey frequency cap -------------------------------------------------------------------
def test_abandoned_cart_journey_cap_counts_earlier_sends_of_that_journey_only(con, tmp_path: Path) -> None:
    loaded = load_journey_file(REPO_ROOT / "marketing" / "journeys" / "abandoned_cart.yaml")
    assert loaded.ok, loaded.error_text()
    cart = loaded.journey
    assert cart.frequency_cap is not None and (cart.frequency_cap.max, cart.frequency_cap.window) == (2, timedelta(days=3))
    make_customer_tables(con, customer_profile=[profile("busy"), profile("fresh"), profile("other")],
                         events_stitched=[event(f"e_{u}", u, "checkout_started", "2026-03-01T08:00")
                                          for u in ("busy", "fresh", "other")])
    run_tick(con, cart, T0)  # everybody gets a planned push_reminder
    # Two abandoned_cart messages sent to 'busy' inside the 3-day window (an earlier enrolment), and two
    # from another journey to 'other': only the journey's own sends count against its cap.
    for i, (uid, jid, at) in enumerate([("busy", "abandoned_cart", "2026-02-27T13:00"),
                                        ("busy", "abandoned_cart", "2026-02-28T13:00"),
                                        ("other", "win_back", "2026-02-28T13:00"),
                                        ("other", "win_back", "2026-02-28T14:00")]):
        con.execute("""insert into send_ledger (message_key, journey_id, step_id, enrolment_id, user_id, channel,
                       template, priority, send_after, state, planned_at, sent_at, updated_at)
                       values (?, ?, 'old', 'old', ?, 'push', 't', 100, ?, 'sent', ?, ?, ?)""",
                    [f"old{i}", jid, uid, *[ts(at)] * 4])
    policies = Policies(quiet_hours={"channels": []}, frequency_caps=[])  # only the journey cap applies
    channels = {c: OutboxChannel(c, tmp_path) for c in ("email", "sms", "push", "webhook")}
    dispatch(con, T0, channels, {"abandoned_cart": cart}, policies)
    rows = {u: (s, r) for u, s, r in con.execute(
        "select user_id, state, reason from send_ledger where step_id = 'push_reminder'").fetchall()}
    assert rows == {"busy": ("capped", "journey_cap:abandoned_cart:2/3d"), "fresh": ("sent", None),
                    "other": ("sent", None)}
    assert con.execute("select count(*) from journey_decisions where reason = 'journey_cap:abandoned_cart:2/3d'"
                       ).fetchone()[0] == 1


def test_journey_cap_limits_messages_of_one_enrolment(con, tmp_path: Path) -> None:
    steps = TWO_SENDS.replace("{id: pause, type: wait, duration: 2d}", "{id: s3, type: send, channel: email, "
                                                                        "template: hello}")
    capped = build("capped", "{type: segment, family: lifecycle, segment: new}",
                   "frequency_cap: {max: 2, window: 1d}\n", steps)
    make_customer_tables(con, customer_profile=[profile("u1")],
                         customer_segment_history=[seg_hist("u1", "new", "2026-03-01T10:00")])
    run_tick(con, capped, T0)
    assert len(ledger(con, "capped")) == 3
    dispatch(con, T0, {c: OutboxChannel(c, tmp_path) for c in ("email", "sms", "push", "webhook")},
             {"capped": capped}, Policies(quiet_hours={"channels": []}, frequency_caps=[]))
    # all three are due at once with equal priority: which one is capped is fixed by message_key
    assert sorted((r[4], r[5]) for r in ledger(con, "capped")) == [
        ("capped", "journey_cap:capped:2/1d"), ("sent", None), ("sent", None)]


# ---- exits -----------------------------------------------------------------------------------------
def test_exit_when_unsubscribed_or_opted_out(con) -> None:
    users = ["stay", "unsub", "optout", "bounced"]
    make_customer_tables(con, customer_profile=[profile(u) for u in users],
                         customer_segment_history=[seg_hist(u, "new", "2026-03-01T10:00") for u in users])
    on = build("unsub_on", "{type: segment, family: lifecycle, segment: new}")
    off = build("unsub_off", "{type: segment, family: lifecycle, segment: new}", "exit: {unsubscribed: false}\n")
    for j in (on, off):
        run_tick(con, j, T0)
    con.executemany("insert into suppression_list values (?, ?, ?, ?, 'sendgrid', ?)",
                    [["email", "unsub@example.com", "unsub", "unsubscribe", ts("2026-03-02")],
                     # a bounce stops that address, not the person's journey
                     ["email", "bounced@example.com", "bounced", "bounce", ts("2026-03-02")]])
    con.execute("update customer_profile set email_opt_in = false where user_id = 'optout'")
    for j in (on, off):
        run_tick(con, j, ts("2026-03-02T12:00"))
    assert by_user(con, "unsub_on") == {"bounced": ("active", "pause", None), "optout": ("exited", None, "unsubscribed"),
                                        "stay": ("active", "pause", None), "unsub": ("exited", None, "unsubscribed")}
    assert {s for s, _, _ in by_user(con, "unsub_off").values()} == {"active"}
    run_tick(con, on, ts("2026-03-03T12:00"))  # the wait is over: only those still enrolled get s2
    assert sorted(r[0] for r in ledger(con, "unsub_on") if r[1] == "s2") == ["bounced", "stay"]


def test_exit_when_user_left_the_entry_segment(con) -> None:
    users = ["still", "left"]
    make_customer_tables(con, customer_profile=[profile(u) for u in users],
                         customer_segment_history=[seg_hist(u, "silent", "2026-03-01T10:00") for u in users],
                         customer_segments=[current(u, "silent") for u in users])
    j = build("left", "{type: segment, family: lifecycle, segment: silent}", "exit: {left_segment: true}\n")
    run_tick(con, j, T0)
    assert {s for s, _, _ in by_user(con, "left").values()} == {"active"}
    con.execute("update customer_segments set segment = 'active' where user_id = 'left'")
    run_tick(con, j, ts("2026-03-02T12:00"))
    assert by_user(con, "left") == {"left": ("exited", None, "left_segment"), "still": ("active", "pause", None)}
    assert con.execute("select count(*) from journey_decisions where user_id = 'left' and reason = 'left_segment'"
                       ).fetchone()[0] == 1


def test_exit_on_event_goal_within_window_only(con) -> None:
    users = ["goal", "late", "before", "other_event"]
    make_customer_tables(
        con, customer_profile=[profile(u) for u in users],
        customer_segment_history=[seg_hist(u, "new", "2026-03-01T10:00") for u in users],
        events_stitched=[event("g1", "goal", "app_review_left", "2026-03-02T09:00"),
                         event("g2", "late", "app_review_left", "2026-03-03T11:00"),  # after trigger + 1d
                         event("g3", "before", "app_review_left", "2026-03-01T09:00"),  # before the trigger
                         event("g4", "other_event", "product_viewed", "2026-03-02T09:00")])
    j = build("ev_goal", "{type: segment, family: lifecycle, segment: new}",
              "goal: {event: app_review_left, within: 1d}\n")
    run_tick(con, j, T0)
    run_tick(con, j, ts("2026-03-03T12:00"))
    rows = by_user(con, "ev_goal")
    assert rows["goal"] == ("exited", None, "goal")
    assert {u: r[0] for u, r in rows.items() if u != "goal"} == {"late": "completed", "before": "completed",
                                                                "other_event": "completed"}
    converted = con.execute("select user_id, converted_at from journey_enrolments where converted_at is not null"
                            ).fetchall()
    assert converted == [("goal", ts("2026-03-02T09:00"))]
    assert [r[0] for r in ledger(con, "ev_goal") if r[1] == "s2"] == ["before", "late", "other_event"]


# ---- enabled and start/end dates -------------------------------------------------------------------
def test_disabled_journey_takes_no_entries_but_enrolled_users_finish(con) -> None:
    make_customer_tables(con, customer_profile=[profile("early"), profile("later")],
                         customer_segment_history=[seg_hist("early", "new", "2026-03-01T10:00"),
                                                   seg_hist("later", "new", "2026-03-02T10:00")])
    j = build("toggle", "{type: segment, family: lifecycle, segment: new}")
    run_tick(con, j, T0)
    disabled = build("toggle", "{type: segment, family: lifecycle, segment: new}", "enabled: false\n")
    report = run_tick(con, disabled, ts("2026-03-03T12:00"))
    assert report.skipped_reason == "disabled" and report.entered == 0
    assert by_user(con, "toggle") == {"early": ("completed", None, "end")}
    assert [(r[0], r[1]) for r in ledger(con, "toggle")] == [("early", "s1"), ("early", "s2")]


def test_start_and_end_dates_bound_entries_not_progress(con) -> None:
    make_customer_tables(con, customer_profile=[profile(u) for u in ("too_early", "first", "too_late")],
                         customer_segment_history=[seg_hist("too_early", "new", "2026-03-01T10:00"),
                                                   seg_hist("first", "new", "2026-03-05T10:00"),
                                                   seg_hist("too_late", "new", "2026-03-07T10:00")])
    j = build("dated", "{type: segment, family: lifecycle, segment: new}",
              "start_date: 2026-03-05\nend_date: 2026-03-06\n")
    assert run_tick(con, j, T0).skipped_reason == "starts 2026-03-05"
    assert enrolments(con, "dated") == []
    assert run_tick(con, j, ts("2026-03-05T12:00")).entered == 1
    report = run_tick(con, j, ts("2026-03-07T11:00"))  # after end_date: nobody new, 'first' keeps waiting
    assert report.skipped_reason == "ended 2026-03-06" and report.entered == 0
    assert by_user(con, "dated") == {"first": ("active", "pause", None)}
    run_tick(con, j, ts("2026-03-08T12:00"))
    assert by_user(con, "dated") == {"first": ("completed", None, "end")}
    assert [(r[0], r[1]) for r in ledger(con, "dated")] == [("first", "s1"), ("first", "s2")]


# ---- CLI preview ------------------------------------------------------------------------------------
def test_cli_preview_as_of_counts_and_renders_without_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from crmflow.warehouse import connect
    from orchestration.cli import app

    warehouse = tmp_path / "wh.duckdb"
    with connect(warehouse) as db:
        make_customer_tables(db, customer_profile=[profile("cn", locale="zh-CN", first_name="李"), profile("en")],
                             customer_segment_history=[seg_hist("cn", "prospect", "2026-03-01T10:00"),
                                                       seg_hist("en", "prospect", "2026-03-03T10:00")])
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CRMFLOW_MARKETING_DIR", str(REPO_ROOT / "marketing"))
    runner = CliRunner()
    result = runner.invoke(app, ["journeys", "preview", "welcome_series", "--as-of", "2026-03-01T12:00:00Z"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # only the user who entered lifecycle/prospect inside the first tick's window (lookback 1d)
    assert (out["journey"], out["as_of"], out["entered"]) == ("welcome_series", "2026-03-01T12:00:00+00:00", 1)
    assert out["planned_by_step_variant"] == {"welcome_email": 1}
    (sample,) = out["samples"]
    assert (sample["user_id"], sample["locale"], sample["channel"]) == ("cn", "zh-CN", "email")
    assert "李" in sample["subject"] + sample["body"]
    later = json.loads(runner.invoke(app, ["journeys", "preview", "welcome_series", "--as-of",
                                           "2026-03-03T12:00:00Z"]).stdout)
    assert later["entered"] == 1 and [s["user_id"] for s in later["samples"]] == ["en"]
    with connect(warehouse) as db:  # a preview writes nothing
        assert db.execute("select count(*) from journey_enrolments").fetchone()[0] == 0
        assert db.execute("select count(*) from send_ledger").fetchone()[0] == 0
    missing = runner.invoke(app, ["journeys", "preview", "no_such_journey", "--as-of", "2026-03-01T12:00:00Z"])
    assert missing.exit_code == 2 and "no journey 'no_such_journey'" in missing.output
