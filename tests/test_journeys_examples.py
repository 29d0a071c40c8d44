"""Each shipped example journey against a small crafted scenario."""

from collections import Counter
from datetime import date, timedelta

import duckdb
import pytest
from helpers_journeys import enrolments, event, ledger, make_customer_tables, order, profile, ts

from crmflow.journeys.engine import run_tick
from crmflow.journeys.loader import load_journey_file
from crmflow.settings import REPO_ROOT


def example(jid: str):
    loaded = load_journey_file(REPO_ROOT / "marketing" / "journeys" / f"{jid}.yaml")
    assert loaded.ok, loaded.error_text()
    return loaded.journey


@pytest.fixture
def con():
    con = duckdb.connect()
    yield con
    con.close()


def hist(uid: str, segment: str, at: str) -> dict:
    return {"user_id": uid, "segment_family": "lifecycle", "segment": segment, "valid_from": ts(at), "valid_to": None}


def test_welcome_series_nudges_only_non_buyers(con) -> None:
    make_customer_tables(con, customer_profile=[profile("a"), profile("b")],
                         customer_segment_history=[hist("a", "prospect", "2026-03-01T10:00"), hist("b", "prospect", "2026-03-01T10:00")],
                         stg_shop__orders=[order("o1", "a", "2026-03-02T10:00", status="cancelled")])
    j = example("welcome_series")
    run_tick(con, j, ts("2026-03-01T12:00"))
    con.execute("insert into stg_shop__orders (order_id, user_id, ordered_at, status) values ('o2', 'b', ?, 'paid')",
                [ts("2026-03-02T11:00")])
    run_tick(con, j, ts("2026-03-03T12:00"))
    assert [(r[0], r[1]) for r in ledger(con)] == [("a", "nudge_email"), ("a", "welcome_email"), ("b", "welcome_email")]
    assert dict((r[0], r[3]) for r in enrolments(con, "welcome_series")) == {"a": "series_finished", "b": "goal"}


def test_abandoned_cart_exits_on_purchase(con) -> None:
    make_customer_tables(con, customer_profile=[profile("a"), profile("b")],
                         events_stitched=[event("e1", "a", "checkout_started", "2026-03-01T08:00"),
                                          event("e2", "b", "checkout_started", "2026-03-01T08:00")])
    j = example("abandoned_cart")
    run_tick(con, j, ts("2026-03-01T11:00"))
    assert {r[1] for r in ledger(con)} == {"push_reminder"}
    con.execute("insert into stg_shop__orders (order_id, user_id, ordered_at, status) values ('o', 'a', ?, 'paid')",
                [ts("2026-03-01T15:00")])
    run_tick(con, j, ts("2026-03-02T12:00"))
    rows = {r[0]: r for r in enrolments(con, "abandoned_cart")}
    assert rows["a"][1:4] == ("exited", None, "goal")
    assert [(r[0], r[1]) for r in ledger(con)] == [("a", "push_reminder"), ("b", "email_reminder"), ("b", "push_reminder")]


def test_win_back_split_and_holdout(con) -> None:
    users = [profile(f"u{i}", order_count=2) for i in range(1000)]
    make_customer_tables(con, customer_profile=users,
                         customer_segment_history=[hist(u["user_id"], "silent", "2026-03-01T10:00") for u in users],
                         customer_segments=[{"user_id": u["user_id"], "segment_family": "lifecycle", "segment": "silent",
                                             "as_of": ts("2026-03-01")} for u in users])
    run_tick(con, example("win_back"), ts("2026-03-01T12:00"))
    holdouts = sum(1 for r in enrolments(con, "win_back") if r[4])
    assert 60 <= holdouts <= 140
    split = Counter(r[3] for r in ledger(con, "win_back"))
    assert split["A"] + split["B"] == 1000 - holdouts and abs(split["A"] - split["B"]) < 0.12 * (1000 - holdouts)


def test_churn_risk_rescue_creates_operator_task_for_high_value(con) -> None:
    make_customer_tables(
        con, customer_profile=[profile("hv"), profile("lv")],
        customer_value_tier=[{"user_id": "hv", "value_tier": "high"}, {"user_id": "lv", "value_tier": "low"}],
        customer_lifecycle_history=[
            {"user_id": u, "lifecycle_stage": s, "valid_from": ts(at), "valid_to": None}
            for u in ("hv", "lv") for s, at in (("active", "2026-01-01"), ("silent", "2026-03-01T10:00"))])
    run_tick(con, example("churn_risk_rescue"), ts("2026-03-01T12:00"))
    assert con.execute("select user_id, queue, priority from journey_task_requests").fetchall() == [
        ("hv", "retention_calls", "high")]
    assert [r[0] for r in ledger(con)] == ["hv"]


def test_vip_upgrade_on_tier_increase(con) -> None:
    make_customer_tables(con, customer_profile=[profile("v")], customer_value_tier_history=[
        {"user_id": "v", "value_tier": "medium", "valid_from": ts("2026-01-01"), "valid_to": ts("2026-03-01T10:00")},
        {"user_id": "v", "value_tier": "high", "valid_from": ts("2026-03-01T10:00"), "valid_to": None}])
    run_tick(con, example("vip_upgrade"), ts("2026-03-01T12:00"))
    assert {r[1] for r in ledger(con)} == {"congrats_push", "congrats_email"}
    assert con.execute("select creative_id from journey_banner_overrides").fetchall() == [("vip_welcome",)]


def test_birthday_coupon_sms_or_email_by_consent(con) -> None:
    bday = date(1990, 3, 2)
    make_customer_tables(con, customer_profile=[profile("sms", birth_date=bday),
                                                profile("mail", birth_date=bday, sms_opt_in=False),
                                                profile("biz", birth_date=bday, customer_type="business")])
    run_tick(con, example("birthday_coupon"), ts("2026-03-02T09:30"))
    assert [(r[0], r[2]) for r in ledger(con)] == [("mail", "email"), ("sms", "sms")]


def test_b2b_renewal_thirty_days_before_contract_end(con) -> None:
    end = date(2026, 4, 1)
    make_customer_tables(con, customer_profile=[profile("b", customer_type="business", company_name="ACME",
                                                        contract_end_date=end)])
    j = example("b2b_renewal")
    run_tick(con, j, ts("2026-03-02T11:00"))
    assert [r[1] for r in ledger(con)] == ["renewal_email"]
    assert con.execute("select queue from journey_task_requests").fetchall() == [("account_management",)]
    run_tick(con, j, ts("2026-03-09T11:00") + timedelta(hours=0))  # Monday 11:00 UTC, 7 days later
    assert [r[1] for r in ledger(con)] == ["renewal_email", "renewal_followup"]



def test_b2b_grade_upgrade_on_grade_increase_only(con) -> None:
    def grades(uid: str, before: str | None, after: str) -> list[dict]:
        rows = [{"user_id": uid, "b2b_grade": after, "valid_from": ts("2026-03-01T10:00"), "valid_to": None}]
        if before is not None:
            rows.append({"user_id": uid, "b2b_grade": before, "valid_from": ts("2026-01-01"),
                         "valid_to": ts("2026-03-01T10:00")})
        return rows

    users = {"d_to_c": ("D", "C"), "b_to_a": ("B", "A"), "b_to_c": ("B", "C"), "first_a": (None, "A")}
    make_customer_tables(
        con, customer_profile=[profile(u, customer_type="business", company_name="ACME") for u in users],
        customer_value_tier_history=[r for u, (b, a) in users.items() for r in grades(u, b, a)])
    j = example("b2b_grade_upgrade")
    run_tick(con, j, ts("2026-03-01T12:00"))
    # up by one or more grades enters; a downgrade or a first-ever grade does not
    assert [r[0] for r in enrolments(con, "b2b_grade_upgrade")] == ["b_to_a", "d_to_c"]
    assert [(r[0], r[1]) for r in ledger(con)] == [("b_to_a", "congrats_email"), ("d_to_c", "congrats_email")]
    assert con.execute("select user_id, queue from journey_task_requests order by 1").fetchall() == [
        ("b_to_a", "account_management"), ("d_to_c", "account_management")]
    assert con.execute("select distinct creative_id from journey_banner_overrides").fetchall() == [
        ("hero_b2b_top_grades",)]
