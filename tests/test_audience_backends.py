"""One audience language: the same filter admits the same users as a journey `audience`, a banner's
`targeting` and a task rule's `recall.filters`, on DuckDB and on PostgreSQL; and the same mistake is
the same error in each file.

A crafted world of eight users where each filter's expected users follow from the rows below (the
expectations are written next to each filter). Journeys compile through the journey loader and
audience_sql (what the tick runs); banners through compute_assignments (one slot per filter: the
targeted creative, else the default); tasks through run_task_rules (one rule per filter, a predicate
that recalls every user, the filter on top)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
import yaml
from helpers_banners_tasks import content, write_tables

from crmflow.audience import Audience, Params, audience_sql
from crmflow.banners.assign import compute_assignments
from crmflow.banners.config import BannerConfig, load_banner_config
from crmflow.journeys.columns import profile_columns
from crmflow.journeys.loader import parse_journey_text
from crmflow.tasks.config import OperatorRoster, TaskRules, load_task_rules
from crmflow.tasks.engine import run_task_rules
from crmflow.warehouse import apply_migrations, open_warehouse
from crmflow.yaml_config import ConfigFileError

pytest_plugins = ["helpers_postgres"]  # the postgres_url / postgres_warehouse fixtures

UTC = ZoneInfo("UTC")
AS_OF = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
USERS = [f"u{i:02d}" for i in range(1, 9)]
ALL_STAGES = ["prospect", "new", "active", "silent", "churned", "reactivated"]


def days(n: float) -> datetime:
    return AS_OF - timedelta(days=n)


def world() -> dict[str, pa.Table]:
    return {
        "customer_profile": pa.table({
            "user_id": USERS,
            "locale": ["de-DE", "de_CH", "en-GB", "fr_FR", None, "de", "zh-CN", "en"],
            "customer_type": ["individual", "business", "individual", "business", "individual", "individual",
                              "individual", "individual"],
            "country": ["DE", "CH", "GB", "FR", "DE", "AT", "CN", None],
            # within 7d: u01 (3d), u05 (7d less an hour), u07 (exactly 7d); u04 is in the future
            "registered_at": pa.array([days(3), days(10), days(400), days(-1), days(7) + timedelta(hours=1),
                                       days(8), days(7), None], TS),
            # older_than 30d: u01 (40d), u04 (31d), u06 (100d); u08 exactly 30d is not older
            "last_order_at": pa.array([days(40), days(5), None, days(31), days(29), days(100), None, days(30)], TS),
            "birth_date": pa.array([date(1990, 1, 1), None, date(1985, 5, 5), None, None, None, None, None]),
            "employees": pa.array([None, 50, None, 600, None, None, None, None], pa.int32()),
            # what the task engine reads besides the filters (priority, task context)
            "first_name": [f"N{i}" for i in range(len(USERS))], "company_name": [None] * len(USERS),
            "industry": [None] * len(USERS),
            "order_count": pa.array([1] * len(USERS), pa.int64()),
            "revenue": pa.array([10.0 * i for i in range(len(USERS))], pa.float64()),
            "days_since_last_purchase": pa.array([5] * len(USERS), pa.int32()),
        }),
        "customer_lifecycle": pa.table({"user_id": USERS, "lifecycle_stage": [
            "active", "silent", "churned", "new", "active", "reactivated", "prospect", "silent"]}),
        "customer_value_tier": pa.table({
            "user_id": USERS,
            "value_tier": ["high", "medium", "low", "high", None, "medium", "low", "high"],
            "b2b_grade": [None, "A", None, "C", None, None, None, "B"]}),
        "customer_segments": pa.table({
            "user_id": ["u01", "u02", "u03", "u05", "u06", "u08"],
            "segment_family": ["rfm", "rfm", "rfm", "value", "rfm", "value"],
            "segment": ["champions", "loyal", "at_risk", "value_high", "champions", "champions"]}),
        "customer_tags": pa.table({"user_id": ["u01", "u01", "u02", "u03", "u05"],
                                   "tag": ["vip", "big_spender", "vip", "inactive_30d", "big_spender"]}),
        # the journeys' add_tag/remove_tag rows: u04 is tagged vip, u06's vip was removed
        "journey_tags": pa.table({"user_id": ["u04", "u06", "u07"], "tag": ["vip", "vip", "big_spender"],
                                  "removed_at": pa.array([None, days(1), None], TS)}),
        "customer_clusters": pa.table({"user_id": ["u01", "u02", "u03", "u04"],
                                       "cluster_id": pa.array([1, 2, 1, 3], pa.int64()),
                                       "cluster_label": ["high-frequency", "bargain", "high-frequency", None]}),
    }


# name -> (filter, the users it admits)
FILTERS: dict[str, tuple[dict, set[str]]] = {
    "everyone": ({}, set(USERS)),
    "registered_within_7d": ({"fields": [{"field": "registered_at", "op": "within", "value": "7d"}]},
                             {"u01", "u05", "u07"}),
    "last_order_older_30d": ({"fields": [{"field": "last_order_at", "op": "older_than", "value": "30d"}]},
                             {"u01", "u04", "u06"}),
    "born_over_a_week_ago": ({"fields": [{"field": "birth_date", "op": "older_than", "value": "1w"}]},
                             {"u01", "u03"}),
    "employees_between": ({"fields": [{"field": "employees", "op": "between", "value": [10, 500]}]}, {"u02"}),
    "birth_date_known": ({"fields": [{"field": "birth_date", "op": "is not null"}]}, {"u01", "u03"}),
    "country_not_de": ({"fields": [{"field": "country", "op": "not in", "value": ["DE"]}]},  # NULL: no
                       {"u02", "u03", "u04", "u06", "u07"}),
    "tags_any_vip": ({"tags": {"any": ["vip"]}}, {"u01", "u02", "u04"}),
    "tags_all": ({"tags": {"all": ["vip", "big_spender"]}}, {"u01"}),
    "tags_none": ({"tags": {"none": ["vip", "inactive_30d"]}}, {"u05", "u06", "u07", "u08"}),
    "tags_list_is_any": ({"tags": ["big_spender"]}, {"u01", "u05", "u07"}),
    "segment_text": ({"segments": ["rfm:champions"]}, {"u01", "u06"}),
    "segment_mapping_and_text": ({"segments": [{"family": "rfm", "segment": "loyal"}, "value:value_high"]},
                                 {"u02", "u05"}),
    "segment_any_family": ({"segments": ["champions"]}, {"u01", "u06", "u08"}),
    "stage_and_tier": ({"lifecycle_stages": ["silent", "churned"], "value_tiers": ["high", "medium"]},
                       {"u02", "u08"}),
    "grade_and_type": ({"b2b_grades": ["A", "B"], "customer_types": ["business"]}, {"u02"}),
    "cluster_id": ({"clusters": ["1"]}, {"u01", "u03"}),
    "cluster_label_or_id": ({"clusters": ["bargain", "3"]}, {"u02", "u04"}),
    "locale_language": ({"locales": ["de"]}, {"u01", "u02", "u06"}),
    "locale_exact": ({"locales": ["de-CH"]}, {"u02"}),
    "countries": ({"countries": ["DE", "AT"]}, {"u01", "u05", "u06"}),
    "combined": ({"lifecycle_stages": ["active"], "tags": {"any": ["big_spender"]},
                  "fields": [{"field": "registered_at", "op": "within", "value": "7d"}]}, {"u01", "u05"}),
}


def journey_yaml(audience: dict) -> str:
    return yaml.safe_dump({
        "id": "aud", "name": "audience", "owner": "crm-team", "trigger": {"type": "event", "event": "page_view"},
        "audience": audience, "steps": [{"id": "wait", "type": "wait", "duration": "1d"}],
    }, sort_keys=False)


def journey_users(wh, tmp_path: Path, audience: dict) -> set[str]:
    loaded = parse_journey_text(journey_yaml(audience), tmp_path / "aud.yaml", profile_columns(wh))
    assert loaded.ok, loaded.error_text()
    params = Params(values={"as_of": AS_OF})
    where = audience_sql(loaded.journey.audience, "p", profile_columns(wh), params)
    return {row[0] for row in wh.fetch_rows(f"select p.user_id from customer_profile p where {where}",
                                            params.values)}


def banner_users(wh) -> dict[str, set[str]]:
    config = BannerConfig.model_validate({
        "slots": [{"id": name, "default_creative": f"default_{name}"} for name in FILTERS],
        "creatives": [creative for name, (flt, _) in FILTERS.items() for creative in (
            {"id": f"default_{name}", "slot": name, "content": content("d")},
            {"id": f"targeted_{name}", "slot": name, "priority": 1, "targeting": flt, "content": content("t")})],
    })
    stats = compute_assignments(wh, config, AS_OF, UTC)
    assert stats.missing_inputs == ["customer_recommendations"]
    found: dict[str, set[str]] = {name: set() for name in FILTERS}
    for user_id, slot in wh.fetch_rows("select user_id, slot from _banner_assignments_new "
                                       "where creative_id = 'targeted_' || slot"):
        found[slot].add(user_id)
    return found


def one_operator() -> OperatorRoster:
    return OperatorRoster.model_validate({"regions": {"all": ["DE"]}, "operators": [
        {"id": "op", "team": "care", "region": "all", "daily_capacity": 1}]})


def task_users(wh) -> dict[str, set[str]]:
    rules = TaskRules.model_validate({"rules": [
        {"id": name, "recall": {"predicate": {"predicate": "lifecycle_stage", "stages": ALL_STAGES},
                                "filters": flt}}
        for name, (flt, _) in FILTERS.items()]})
    roster = one_operator()
    stats = run_task_rules(wh, rules, roster, AS_OF, UTC)
    found: dict[str, set[str]] = {name: set() for name in FILTERS}
    for user_id, rule in wh.fetch_rows("select user_id, rule from operator_tasks"):
        found[rule].add(user_id)
    assert {rule: len(users) for rule, users in found.items()} == stats.recalled
    return found


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, tmp_path: Path):
    if request.param == "postgres":
        yield request.getfixturevalue("postgres_warehouse")
    else:
        with open_warehouse(tmp_path / "warehouse.duckdb") as wh:
            yield wh


def test_a_filter_admits_the_same_users_in_journeys_banners_and_task_recall(warehouse, tmp_path: Path):
    apply_migrations(warehouse)  # the operational tables (overrides, tasks) as in a run
    write_tables(warehouse, world())
    banners, tasks = banner_users(warehouse), task_users(warehouse)
    for name, (flt, expected) in FILTERS.items():
        assert journey_users(warehouse, tmp_path, flt) == expected, f"journey audience {name}"
        assert banners[name] == expected, f"banner targeting {name}"
        assert tasks[name] == expected, f"task recall filters {name}"


def test_a_filter_on_a_table_not_built_yet_matches_nobody_everywhere(warehouse, tmp_path: Path):
    apply_migrations(warehouse)  # the operational tables (overrides, tasks) as in a run
    not_built = ("customer_clusters", "customer_tags", "journey_tags")  # e.g. a warehouse before any run
    for name in not_built:
        if warehouse.table_exists(name):
            warehouse.drop_table(name)
    write_tables(warehouse, {k: v for k, v in world().items() if k not in not_built})
    flt = {"clusters": ["1"]}
    present = {"customer_profile", "customer_segments", "customer_lifecycle", "customer_value_tier"}
    params = Params(values={"as_of": AS_OF})
    where = audience_sql(Audience.model_validate(flt), "p", profile_columns(warehouse), params, present)
    assert warehouse.fetch_rows(f"select count(*) from customer_profile p where {where}", params.values)[0][0] == 0
    config = BannerConfig.model_validate({"slots": [{"id": "s", "default_creative": "d"}], "creatives": [
        {"id": "d", "slot": "s", "content": content("d")},
        {"id": "t", "slot": "s", "priority": 1, "targeting": flt, "content": content("t")}]})
    stats = compute_assignments(warehouse, config, AS_OF, UTC)
    assert "customer_clusters" in stats.missing_inputs and stats.by_reason == {"default": len(USERS)}
    rules = TaskRules.model_validate({"rules": [{"id": "r", "recall": {
        "predicate": {"predicate": "lifecycle_stage", "stages": ALL_STAGES}, "filters": flt}}]})
    roster = one_operator()
    task_stats = run_task_rules(warehouse, rules, roster, AS_OF, UTC)
    assert task_stats.recalled == {"r": 0} and "customer_clusters" in task_stats.missing_inputs
    # without a tag table nobody has a tag: `none` holds for everyone, `any` for nobody
    banners = compute_assignments(warehouse, BannerConfig.model_validate({
        "slots": [{"id": "s", "default_creative": "d"}, {"id": "n", "default_creative": "dn"}], "creatives": [
            {"id": "d", "slot": "s", "content": content("d")}, {"id": "dn", "slot": "n", "content": content("d")},
            {"id": "t", "slot": "s", "priority": 1, "targeting": {"tags": {"none": ["vip"]}}, "content": content("t")},
            {"id": "tn", "slot": "n", "priority": 1, "targeting": {"tags": ["vip"]}, "content": content("t")}]}),
        AS_OF, UTC)
    assert banners.by_reason == {"default": len(USERS), "targeted": len(USERS)}
    assert set(warehouse.fetch_rows("select distinct slot, creative_id from _banner_assignments_new")) == {
        ("s", "t"), ("n", "dn")}


def test_the_same_mistake_is_the_same_error_in_each_file(tmp_path: Path):
    bad = {"fields": [{"field": "shoe_size", "op": "=", "value": 42}]}
    journey = parse_journey_text(journey_yaml(bad), tmp_path / "aud.yaml")
    banners = tmp_path / "banners.yaml"
    banners.write_text(yaml.safe_dump({"slots": [{"id": "s", "default_creative": "d"}], "creatives": [
        {"id": "d", "slot": "s", "content": content("d")},
        {"id": "t", "slot": "s", "targeting": bad, "content": content("t")}]}, sort_keys=False))
    rules = tmp_path / "task_rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [{"id": "r", "recall": {
        "predicate": {"predicate": "tag", "tags": ["vip"]}, "filters": bad}}]}, sort_keys=False))
    messages = [journey.error_text()]
    for load, path in ((load_banner_config, banners), (load_task_rules, rules)):
        with pytest.raises(ConfigFileError) as raised:
            load(path)
        messages.append(str(raised.value))
    def line(text: str) -> int:  # the YAML line of the bad field
        return next(i for i, row in enumerate(text.splitlines(), 1) if "field: shoe_size" in row)

    where = [f"aud.yaml:{line(journey_yaml(bad))}: audience.fields[0].field: ",
             f"banners.yaml:{line(banners.read_text())}: creatives[1].targeting.fields[0].field: ",
             f"task_rules.yaml:{line(rules.read_text())}: rules[0].recall.filters.fields[0].field: "]
    reasons = set()
    for message, prefix in zip(messages, where, strict=True):
        assert "\n" not in message and f"/{prefix}" in message, message
        reasons.add(message.split(prefix)[1])
    assert len(reasons) == 1 and reasons.pop().startswith("unknown profile field 'shoe_size'; known fields: ")
