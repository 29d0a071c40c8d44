"""Task rules end to end on crafted marts: recall, matching, capacity, frequency, expiry, journeys."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from helpers_banners_tasks import AS_OF, insert_rows, make_lifecycle, make_profiles, make_value_tier

from crmflow.tasks.config import OperatorRoster, TaskRules, load_roster, load_task_rules
from crmflow.tasks.engine import run_task_rules
from crmflow.tasks.export import changed_tasks, write_task_exports

UTC = ZoneInfo("UTC")
REPO = Path(__file__).resolve().parent.parent


def roster(*ops: dict) -> OperatorRoster:
    base = {"team": "care", "region": "DACH", "languages": ["de", "en"], "daily_capacity": 10}
    return OperatorRoster.model_validate({
        "regions": {"DACH": ["DE", "AT", "CH"], "FR": ["FR"]},
        "operators": [{**base, **op} for op in ops],
    })


def rules(*rule_list: dict, **extra) -> TaskRules:
    return TaskRules.model_validate({"rules": list(rule_list), **extra})


def silent_rule(**overrides) -> dict:
    return {"id": "silent_high_value", "recall": {"predicate": {"predicate": "lifecycle_stage", "stages": ["silent"]}},
            "matching": {"region": "ignore", "language": "ignore", "industry": "ignore"}, **overrides}


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    make_profiles(connection, [
        {"user_id": f"u{i}", "locale": loc, "country": country, "revenue": rev, "industry": ind,
         "customer_type": "business" if ind else "individual", "first_name": f"Name{i}"}
        for i, (loc, country, rev, ind) in enumerate([
            ("de-DE", "DE", 900, None), ("fr-FR", "FR", 800, None), ("de-AT", "AT", 700, "retail"),
            ("en-GB", "GB", 600, "software"), ("de-DE", "DE", 500, None), ("fr-FR", "FR", 400, None),
        ])
    ])
    make_lifecycle(connection, {f"u{i}": "silent" for i in range(6)})
    yield connection
    connection.close()


def tasks(con) -> list[dict]:
    cur = con.execute("select * from operator_tasks order by priority desc, task_id")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_recall_priority_context_and_deterministic_ids(con):
    con.execute("create table stg_shop__orders (order_id varchar, user_id varchar, ordered_at timestamptz, "
                "status varchar, amount double, currency varchar)")
    insert_rows(con, "stg_shop__orders", [
        {"order_id": f"o{k}", "user_id": "u0", "ordered_at": AS_OF - timedelta(days=k), "status": "paid",
         "amount": 10.0 * k, "currency": "EUR"} for k in range(1, 6)])
    cfg = rules(silent_rule(), talking_points={"silent": ["Ask what changed", "Offer a comeback voucher"]})
    stats = run_task_rules(con, cfg, roster({"id": "anna", "daily_capacity": 100}), AS_OF, UTC)
    assert stats.recalled == {"silent_high_value": 6} and stats.assigned == 6
    rows = tasks(con)
    assert [r["user_id"] for r in rows] == ["u0", "u1", "u2", "u3", "u4", "u5"]  # revenue fallback priority
    assert all(r["status"] == "open" and r["operator_id"] == "anna" for r in rows)
    assert rows[0]["expires_at"] == AS_OF + timedelta(days=3) and rows[0]["due_at"] == AS_OF + timedelta(hours=24)
    context = json.loads(rows[0]["context"])
    assert [o["order_id"] for o in context["last_orders"]] == ["o1", "o2", "o3"]
    assert context["talking_points"] == ["Ask what changed", "Offer a comeback voucher"]
    assert context["lifecycle_stage"] == "silent" and context["profile"]["first_name"] == "Name0"

    other = duckdb.connect()
    other.execute("set TimeZone = 'UTC'")
    make_profiles(other, [{"user_id": "u0", "locale": "de", "revenue": 1}])
    make_lifecycle(other, {"u0": "silent"})
    run_task_rules(other, cfg, roster({"id": "anna"}), AS_OF, UTC)
    assert other.execute("select task_id from operator_tasks").fetchone()[0] == rows[0]["task_id"]


def test_value_at_risk_beats_revenue_when_customer_priority_exists(con):
    con.execute("create table customer_priority (user_id varchar, value_at_risk double, priority_rank bigint)")
    insert_rows(con, "customer_priority", [{"user_id": "u5", "value_at_risk": 5000.0, "priority_rank": 1}])
    run_task_rules(con, rules(silent_rule()), roster({"id": "anna"}), AS_OF, UTC)
    assert tasks(con)[0]["user_id"] == "u5"


def test_required_region_language_and_industry(con):
    ops = roster(
        {"id": "dieter", "region": "DACH", "languages": ["de"], "industries": ["retail"]},
        {"id": "francoise", "region": "FR", "languages": ["fr"], "industries": ["software"]},
    )
    cfg = rules(silent_rule(matching={"region": "required", "language": "required", "industry": "required"}))
    run_task_rules(con, cfg, ops, AS_OF, UTC)
    owner = {r["user_id"]: r["operator_id"] for r in tasks(con)}
    assert owner["u0"] == "dieter" and owner["u4"] == "dieter"  # DE, German, no industry
    assert owner["u2"] == "dieter"  # AT is DACH, de, retail
    assert owner["u1"] == "francoise" and owner["u5"] == "francoise"
    assert owner["u3"] is None  # GB/en/software: nobody speaks English -> unassigned, kept visible
    assert {r["status"] for r in tasks(con) if r["user_id"] == "u3"} == {"unassigned"}


def test_team_filter_and_preferred_region(con):
    ops = roster({"id": "fr_pref", "region": "FR", "daily_capacity": 2},
                 {"id": "dach_pref", "region": "DACH", "daily_capacity": 2},
                 {"id": "sales", "team": "sales", "region": "FR"})
    cfg = rules(silent_rule(matching={"region": "preferred", "language": "ignore", "industry": "ignore",
                                      "teams": ["care"]}))
    run_task_rules(con, cfg, ops, AS_OF, UTC)
    owner = {r["user_id"]: r["operator_id"] for r in tasks(con)}
    assert "sales" not in owner.values()
    assert owner["u1"] == "fr_pref" and owner["u5"] == "fr_pref"  # French customers go to the FR operator
    assert owner["u0"] == "dach_pref" and owner["u2"] == "dach_pref"


def test_capacity_counts_tasks_already_assigned_today(con):
    ops = roster({"id": "anna", "daily_capacity": 4})
    run_task_rules(con, rules(silent_rule(id="first", recall={"predicate": {"predicate": "lifecycle_stage",
                                                                            "stages": ["silent"]},
                                                            "max_tasks": 3})), ops, AS_OF, UTC)
    stats = run_task_rules(con, rules(silent_rule(id="second")), ops, AS_OF + timedelta(hours=1), UTC)
    assert stats.assigned == 1 and stats.unassigned == 5
    per_op = con.execute("select count(*) from operator_tasks where operator_id = 'anna'").fetchone()[0]
    assert per_op == 4


def test_frequency_skips_rule_and_no_duplicate_open_tasks(con):
    cfg = rules(silent_rule(frequency="weekly"))
    ops = roster({"id": "anna", "daily_capacity": 100})
    run_task_rules(con, cfg, ops, AS_OF, UTC)
    again = run_task_rules(con, cfg, ops, AS_OF + timedelta(days=2), UTC)
    assert again.rules_skipped == ["silent_high_value"] and again.candidates == 0
    daily = rules(silent_rule(frequency="daily", validity_days=10))
    later = run_task_rules(con, daily, ops, AS_OF + timedelta(days=2), UTC)
    assert later.rules_run == ["silent_high_value"] and later.candidates == 0  # all still have open tasks
    assert con.execute("select count(*) from operator_tasks").fetchone()[0] == 6


def test_expiry_reassigns_to_another_operator_or_drops(con):
    ops = roster({"id": "anna", "daily_capacity": 100, "performance_weight": 5},
                 {"id": "ben", "daily_capacity": 100})
    cfg = rules(silent_rule(frequency="monthly", validity_days=2, on_expiry="reassign"))
    run_task_rules(con, cfg, ops, AS_OF, UTC)
    first = {r["task_id"]: r["operator_id"] for r in tasks(con)}
    stats = run_task_rules(con, cfg, ops, AS_OF + timedelta(days=3), UTC)
    assert stats.expired == 6 and stats.reassigned == 6
    rows = tasks(con)
    assert sum(r["status"] == "expired" for r in rows) == 6
    new = [r for r in rows if r["source"] == "reassign"]
    assert len(new) == 6 and all(r["status"] == "open" for r in new)
    assert all(r["operator_id"] != first[r["reassigned_from"]] for r in new)

    dropping = duckdb.connect()
    dropping.execute("set TimeZone = 'UTC'")
    make_profiles(dropping, [{"user_id": "x", "locale": "de"}])
    make_lifecycle(dropping, {"x": "silent"})
    drop_cfg = rules(silent_rule(frequency="monthly", validity_days=1, on_expiry="drop"))
    run_task_rules(dropping, drop_cfg, ops, AS_OF, UTC)
    later = run_task_rules(dropping, drop_cfg, ops, AS_OF + timedelta(days=2), UTC)
    assert later.expired == 1 and later.reassigned == 0
    assert dropping.execute("select status from operator_tasks").fetchall() == [("expired",)]


def test_unassigned_tasks_are_assigned_when_capacity_frees_up(con):
    ops = roster({"id": "anna", "daily_capacity": 2})
    cfg = rules(silent_rule(frequency="monthly", validity_days=5))
    run_task_rules(con, cfg, ops, AS_OF, UTC)
    assert con.execute("select count(*) from operator_tasks where status = 'unassigned'").fetchone()[0] == 4
    ids_before = {r["task_id"] for r in tasks(con)}
    run_task_rules(con, cfg, ops, AS_OF + timedelta(days=1), UTC)
    assert {r["task_id"] for r in tasks(con)} == ids_before  # same tasks, no duplicates
    assert con.execute("select count(*) from operator_tasks where status = 'open'").fetchone()[0] == 4


def test_fairness_by_performance_weight(con):
    make_profiles(con, [{"user_id": f"c{i:03d}", "locale": "de", "revenue": 1000 - i} for i in range(90)])
    make_lifecycle(con, {f"c{i:03d}": "silent" for i in range(90)})
    ops = roster({"id": "star", "daily_capacity": 100, "performance_weight": 2.0},
                 {"id": "solid", "daily_capacity": 100, "performance_weight": 1.0})
    run_task_rules(con, rules(silent_rule(matching={"keep_previous_owner": False, "language": "ignore"})),
                   ops, AS_OF, UTC)
    owners = [r["operator_id"] for r in tasks(con)]
    assert owners.count("star") == 60 and owners.count("solid") == 30
    assert owners[:9].count("star") == 6  # the top band is split 2:1 as well


def test_previous_owner_kept_across_rules(con):
    equal = roster({"id": "anna", "daily_capacity": 100}, {"id": "ben", "daily_capacity": 100})
    first = rules(silent_rule(id="first", matching={"keep_previous_owner": False, "language": "ignore"}))
    run_task_rules(con, first, equal, AS_OF, UTC)
    owner_first = {r["user_id"]: r["operator_id"] for r in tasks(con)}
    assert sorted(owner_first.values()).count("anna") == 3
    # Ben now outperforms Anna ten to one, yet each customer stays with the operator they know.
    skewed = roster({"id": "anna", "daily_capacity": 100, "performance_weight": 1},
                    {"id": "ben", "daily_capacity": 100, "performance_weight": 10})
    second = rules(silent_rule(id="second", matching={"language": "ignore"}))
    run_task_rules(con, second, skewed, AS_OF + timedelta(hours=2), UTC)
    owner_second = {r["user_id"]: r["operator_id"] for r in tasks(con) if r["rule"] == "second"}
    assert owner_second == owner_first


def test_journey_task_requests_use_the_same_path(con):
    con.execute("create table journey_task_requests (request_key varchar, user_id varchar, journey_id varchar, "
                "step_id varchar, queue varchar, priority varchar, note varchar, requested_at timestamptz)")
    insert_rows(con, "journey_task_requests", [
        {"request_key": "r1", "user_id": "u3", "journey_id": "b2b_onboarding", "step_id": "call", "queue": "sales",
         "priority": "2", "note": "Call about volume pricing", "requested_at": AS_OF - timedelta(hours=1)},
        {"request_key": "r2", "user_id": "u1", "journey_id": "b2b_onboarding", "step_id": "call",
         "queue": "unknown", "priority": None, "note": None, "requested_at": AS_OF + timedelta(hours=1)},
    ])
    cfg = rules(journey_queues={"default": {}, "sales": {"validity_days": 7,
                                                         "matching": {"language": "ignore", "teams": ["sales"]}}})
    ops = roster({"id": "care1"}, {"id": "seller", "team": "sales"})
    stats = run_task_rules(con, cfg, ops, AS_OF, UTC)
    assert stats.journey_requests == 1  # r2 is in the future
    row = tasks(con)[0]
    assert (row["rule"], row["operator_id"], row["note"]) == ("journey:b2b_onboarding", "seller",
                                                                "Call about volume pricing")
    assert row["priority"] == 1200.0 and row["expires_at"] == AS_OF + timedelta(days=7)
    again = run_task_rules(con, cfg, ops, AS_OF + timedelta(hours=2), UTC)
    assert again.journey_requests == 2 and con.execute("select count(*) from operator_tasks").fetchone()[0] == 2


def test_empty_warehouse_gives_empty_outputs(tmp_path: Path):
    con = duckdb.connect()
    stats = run_task_rules(con, rules(silent_rule()), roster({"id": "anna"}), AS_OF, UTC)
    assert stats.candidates == 0 and "customer_lifecycle" in stats.missing_inputs
    paths = write_task_exports(con, tmp_path)
    assert paths["csv"].read_text().splitlines()[0].startswith("task_id,operator_id")
    assert changed_tasks(con, AS_OF).num_rows == 0


def test_shipped_configs_are_valid():
    roster_cfg = load_roster(REPO / "marketing" / "operators.yaml")
    rules_cfg = load_task_rules(REPO / "marketing" / "task_rules.yaml")
    assert roster_cfg.operators and rules_cfg.rules
    assert {r.recall.predicate.predicate for r in rules_cfg.rules} >= {
        "high_value_at_risk", "new_b2b_lead", "grade_downgrade", "open_support_complaint"}


def _run_recall(con, predicate: dict, filters: dict | None = None) -> dict[str, str]:
    rule = silent_rule(id="r", recall={"predicate": predicate, "filters": filters or {}})
    run_task_rules(con, rules(rule), roster({"id": "anna", "daily_capacity": 100}), AS_OF, UTC)
    return dict(con.execute("select user_id, recall_reason from operator_tasks").fetchall())


def test_recall_grade_downgrade(con):
    con.execute("create table customer_value_tier_history (user_id varchar, value_tier varchar, "
                "b2b_grade varchar, valid_from timestamptz, valid_to timestamptz)")
    day = timedelta(days=1)
    insert_rows(con, "customer_value_tier_history", [
        {"user_id": "u2", "b2b_grade": "A", "valid_from": AS_OF - 40 * day, "valid_to": AS_OF - 2 * day},
        {"user_id": "u2", "b2b_grade": "C", "valid_from": AS_OF - 2 * day, "valid_to": None},  # downgrade
        {"user_id": "u3", "b2b_grade": "C", "valid_from": AS_OF - 40 * day, "valid_to": AS_OF - 2 * day},
        {"user_id": "u3", "b2b_grade": "B", "valid_from": AS_OF - 2 * day, "valid_to": None},  # upgrade
        {"user_id": "u0", "value_tier": "high", "valid_from": AS_OF - 40 * day, "valid_to": AS_OF - 20 * day},
        {"user_id": "u0", "value_tier": "low", "valid_from": AS_OF - 20 * day, "valid_to": None},  # too old
    ])
    got = _run_recall(con, {"predicate": "grade_downgrade", "within_days": 7}, {"customer_types": ["business"]})
    assert got == {"u2": "grade A -> C"}


def test_recall_open_support_complaint(con):
    con.execute("create table events_stitched (message_id varchar, user_id varchar, anonymous_id varchar, "
                "event_type varchar, event_name varchar, event_at timestamptz, properties json, context json)")
    hour = timedelta(hours=1)
    insert_rows(con, "events_stitched", [
        {"message_id": "m1", "user_id": "u0", "event_name": "support_ticket_opened", "event_at": AS_OF - 5 * hour,
         "properties": '{"ticket_id": "t1"}'},
        {"message_id": "m2", "user_id": "u1", "event_name": "support_ticket_opened", "event_at": AS_OF - 5 * hour,
         "properties": '{"ticket_id": "t2"}'},
        {"message_id": "m3", "user_id": "u1", "event_name": "support_ticket_closed", "event_at": AS_OF - 1 * hour,
         "properties": '{"ticket_id": "t2"}'},
        {"message_id": "m4", "user_id": "u2", "event_name": "support_ticket_opened", "event_at": AS_OF - 5 * hour,
         "properties": '{"ticket_id": "t3"}'},
        {"message_id": "m5", "user_id": "u2", "event_name": "support_ticket_closed", "event_at": AS_OF - 1 * hour,
         "properties": '{"ticket_id": "other"}'},
        {"message_id": "m6", "user_id": "u3", "event_name": "support_ticket_opened", "event_at": AS_OF + hour,
         "properties": '{"ticket_id": "t4"}'},
    ])
    got = _run_recall(con, {"predicate": "open_support_complaint", "within_days": 30})
    assert set(got) == {"u0", "u2"}


def test_recall_new_b2b_lead_and_churn_scores(con):
    con.execute("update customer_profile set registered_at = $t, order_count = 0",
                {"t": AS_OF - timedelta(days=3)})
    con.execute("update customer_profile set order_count = 2 where user_id = 'u3'")
    assert set(_run_recall(con, {"predicate": "new_b2b_lead", "within_days": 14})) == {"u2"}

    fresh = duckdb.connect()
    fresh.execute("set TimeZone = 'UTC'")
    make_profiles(fresh, [{"user_id": u, "locale": "de"} for u in ("a", "b", "c")])
    make_lifecycle(fresh, {"a": "silent", "b": "active", "c": "active"})
    make_value_tier(fresh, [{"user_id": u, "value_tier": "high"} for u in ("a", "b")])
    high_value = {"predicate": "high_value_at_risk", "min_churn_probability": 0.6}
    assert set(_run_recall(fresh, high_value, {"value_tiers": ["high"]})) == {"a"}  # lifecycle fallback
    fresh.execute("create table customer_churn_scores (user_id varchar, churn_probability double, risk_band varchar)")
    insert_rows(fresh, "customer_churn_scores", [{"user_id": "a", "churn_probability": 0.2, "risk_band": "low"},
                                                 {"user_id": "b", "churn_probability": 0.9, "risk_band": "high"},
                                                 {"user_id": "c", "churn_probability": 0.9, "risk_band": "high"}])
    fresh.execute("delete from operator_tasks")
    fresh.execute("delete from operator_task_rule_runs")
    assert _run_recall(fresh, high_value, {"value_tiers": ["high"]}) == {"b": "churn risk 0.9"}
