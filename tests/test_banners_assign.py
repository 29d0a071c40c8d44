"""Banner targeting, priority, tie-break, overrides, locale content and change-only exports."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from helpers_banners_tasks import (
    AS_OF,
    content,
    insert_rows,
    make_lifecycle,
    make_profiles,
    make_segments,
    make_tags,
    make_value_tier,
    write_yaml,
)

from crmflow.banners.assign import compute_assignments
from crmflow.banners.config import BannerConfig, load_banner_config
from crmflow.banners.pipeline import run_banner_assignment
from crmflow.banners.tiebreak import pick_weighted, slot_bucket, sql_slot_bucket
from crmflow.yaml_config import ConfigFileError

UTC = ZoneInfo("UTC")


def config(creatives: list[dict], **extra) -> BannerConfig:
    base = [
        {"id": "hero_default", "slot": "home_hero", "content": content("hero_default", ("en", "de"))},
        {"id": "cart_default", "slot": "cart_sidebar", "content": content("cart_default")},
    ]
    return BannerConfig.model_validate({
        "default_locale": "en",
        "slots": [{"id": "home_hero", "default_creative": "hero_default"},
                  {"id": "cart_sidebar", "default_creative": "cart_default"}],
        "creatives": base + creatives,
        **extra,
    })


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    make_profiles(connection, [
        {"user_id": "u1", "locale": "de-DE"},
        {"user_id": "u2", "locale": "en-GB"},
        {"user_id": "u3", "locale": "fr_FR", "customer_type": "business"},
        {"user_id": "u4", "locale": None},
    ])
    make_lifecycle(connection, {"u1": "silent", "u2": "active", "u3": "active", "u4": "new"})
    make_value_tier(connection, [
        {"user_id": "u1", "customer_type": "individual", "value_tier": "high"},
        {"user_id": "u2", "customer_type": "individual", "value_tier": "low"},
        {"user_id": "u3", "customer_type": "business", "b2b_grade": "A"},
    ])
    make_segments(connection, [("u1", "rfm", "at_risk"), ("u2", "rfm", "champions"), ("u3", "rfm", "champions")])
    make_tags(connection, [("u2", "vip"), ("u3", "vip")])
    yield connection
    connection.close()


def assignments(con, cfg, as_of=AS_OF) -> dict[tuple[str, str], tuple[str, str]]:
    compute_assignments(con, cfg, as_of, UTC, target="out")
    return {(u, s): (c, r) for u, s, c, r in con.execute("select user_id, slot, creative_id, reason from out").fetchall()}


def test_targeting_all_conditions_must_hold_and_priority_wins(con):
    cfg = config([
        {"id": "winback", "slot": "home_hero", "priority": 50,
         "targeting": {"lifecycle_stages": ["silent", "churned"], "value_tiers": ["high"]},
         "content": content("winback")},
        {"id": "vip_any", "slot": "home_hero", "priority": 10, "targeting": {"tags": ["vip"]},
         "content": content("vip")},
        {"id": "vip_gold", "slot": "home_hero", "priority": 60,
         "targeting": {"tags": ["vip"], "segments": ["rfm:champions"], "b2b_grades": ["A"]},
         "content": content("gold")},
        {"id": "german_cart", "slot": "cart_sidebar", "priority": 5, "targeting": {"locales": ["de"]},
         "content": content("german", ("de",))},
    ])
    got = assignments(con, cfg)
    assert got[("u1", "home_hero")] == ("winback", "targeted")
    assert got[("u2", "home_hero")] == ("vip_any", "targeted")  # vip_gold needs grade A too
    assert got[("u3", "home_hero")] == ("vip_gold", "targeted")  # both eligible, higher priority wins
    assert got[("u4", "home_hero")] == ("hero_default", "default")
    assert got[("u1", "cart_sidebar")] == ("german_cart", "targeted")  # "de" matches de-DE
    assert got[("u2", "cart_sidebar")] == ("cart_default", "default")
    assert len(got) == 8  # every user gets every slot


def test_bare_segment_customer_type_and_cluster_targeting(con):
    con.execute("create table customer_clusters (user_id varchar, cluster_id integer, cluster_label varchar)")
    insert_rows(con, "customer_clusters", [{"user_id": "u4", "cluster_id": 3, "cluster_label": "bargain_hunters"}])
    cfg = config([
        {"id": "champs", "slot": "home_hero", "priority": 5, "targeting": {"segments": ["champions"],
                                                                          "customer_types": ["business"]},
         "content": content("c")},
        {"id": "bargain", "slot": "home_hero", "priority": 5, "targeting": {"clusters": ["3"]},
         "content": content("b")},
    ])
    got = assignments(con, cfg)
    assert got[("u3", "home_hero")][0] == "champs"
    assert got[("u2", "home_hero")][0] == "hero_default"
    assert got[("u4", "home_hero")][0] == "bargain"


def test_active_window_uses_as_of(con):
    cfg = config([{"id": "xmas", "slot": "home_hero", "priority": 9, "active_from": "2026-12-01",
                   "active_until": "2026-12-26", "content": content("xmas")}])
    assert assignments(con, cfg)[("u1", "home_hero")][0] == "hero_default"
    later = AS_OF + timedelta(days=10)
    assert assignments(con, cfg, later)[("u1", "home_hero")][0] == "xmas"
    valid_until = con.execute("select distinct valid_until from out where creative_id = 'xmas'").fetchone()[0]
    assert valid_until.isoformat() == "2026-12-27T00:00:00+00:00"


def test_tie_break_is_weighted_and_identical_in_python_and_sql():
    con = duckdb.connect()
    users = [f"user{i}" for i in range(3000)]
    make_profiles(con, [])
    con.execute("insert into customer_profile (user_id, locale, customer_type) "
                "select 'user' || i, 'en', 'individual' from range(3000) t(i)")
    cfg = config([
        {"id": "a", "slot": "home_hero", "priority": 5, "weight": 1, "content": content("a")},
        {"id": "b", "slot": "home_hero", "priority": 5, "weight": 3, "content": content("b")},
        {"id": "low", "slot": "home_hero", "priority": 1, "weight": 100, "content": content("low")},
    ])
    got = assignments(con, cfg)
    picks = {u: got[(u, "home_hero")][0] for u in users}
    for user in users[:300]:
        assert picks[user] == pick_weighted(user, "home_hero", [("a", 1), ("b", 3)])
    share = Counter(picks.values())
    assert set(share) == {"a", "b"}
    assert 0.70 < share["b"] / len(users) < 0.80  # weight 3 of 4
    sql_bucket = con.execute(f"select {sql_slot_bucket(repr('user7'), repr('home_hero'))}").fetchone()[0]
    assert sql_bucket == slot_bucket("user7", "home_hero")


def test_journey_override_wins_only_during_validity(con):
    con.execute("create table journey_banner_overrides (user_id varchar, slot varchar, creative_id varchar, "
                "journey_id varchar, valid_from timestamptz, valid_until timestamptz)")
    insert_rows(con, "journey_banner_overrides", [
        {"user_id": "u1", "slot": "home_hero", "creative_id": "onboard", "journey_id": "welcome",
         "valid_from": AS_OF - timedelta(days=1), "valid_until": AS_OF + timedelta(days=2)},
        {"user_id": "u2", "slot": "home_hero", "creative_id": "onboard", "journey_id": "welcome",
         "valid_from": AS_OF - timedelta(days=5), "valid_until": AS_OF - timedelta(days=1)},
        {"user_id": "u3", "slot": "home_hero", "creative_id": "no_such_creative", "journey_id": "broken",
         "valid_from": AS_OF - timedelta(days=1), "valid_until": None},
    ])
    cfg = config([
        {"id": "onboard", "slot": "home_hero", "priority": 0, "targeting": {"tags": ["nobody"]},
         "content": content("onboard")},
        {"id": "winback", "slot": "home_hero", "priority": 50, "targeting": {"lifecycle_stages": ["silent"]},
         "content": content("winback")},
    ])
    stats = compute_assignments(con, cfg, AS_OF, UTC, target="out")
    got = {(u, s): (c, r, j) for u, s, c, r, j in
           con.execute("select user_id, slot, creative_id, reason, journey_id from out").fetchall()}
    assert got[("u1", "home_hero")] == ("onboard", "journey_override", "welcome")
    assert got[("u2", "home_hero")][0] == "hero_default"  # override expired
    assert got[("u3", "home_hero")][0] == "hero_default"  # unknown creative is ignored, and counted
    assert stats.overrides_ignored == 1


def test_locale_content_falls_back_from_exact_to_language_to_default(con):
    cfg = config([{"id": "all", "slot": "cart_sidebar", "priority": 1,
                   "content": {**content("all", ("en", "de")), "fr-FR": content("fr", ("x",))["x"]}}])
    compute_assignments(con, cfg, AS_OF, UTC, target="out")
    rows = dict(con.execute("select user_id, content_locale from out where slot = 'cart_sidebar'").fetchall())
    assert rows == {"u1": "de", "u2": "en", "u3": "fr-fr", "u4": "en"}


def test_missing_inputs_give_empty_output():
    con = duckdb.connect()
    stats = compute_assignments(con, config([]), AS_OF, UTC, target="out")
    assert stats.rows == 0 and "customer_profile" in stats.missing_inputs
    assert con.execute("select count(*) from out").fetchone()[0] == 0


def test_exports_are_written_only_when_assignments_change(con, tmp_path: Path):
    cfg = config([{"id": "winback", "slot": "home_hero", "priority": 50,
                   "targeting": {"lifecycle_stages": ["silent"]}, "content": content("winback")}])
    first = run_banner_assignment(con, cfg, AS_OF, UTC, tmp_path)
    assert first.export_written and first.changes == {"added": 8}
    jsonl = tmp_path / "banners" / "banner_assignments.jsonl"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["user_id"] for line in lines] == ["u1", "u2", "u3", "u4"]
    slots = lines[0]["slots"]
    slots = json.loads(slots) if isinstance(slots, str) else slots
    assert slots["home_hero"]["creative_id"] == "winback"
    parquet_rows = con.execute(f"select count(*) from '{tmp_path}/banners/banner_assignments.parquet'").fetchone()
    assert parquet_rows[0] == 8
    mtime = jsonl.stat().st_mtime_ns

    rerun = run_banner_assignment(con, cfg, AS_OF, UTC, tmp_path)  # same as-of: nothing new
    assert rerun.changes == {} and not rerun.export_written
    second = run_banner_assignment(con, cfg, AS_OF + timedelta(days=1), UTC, tmp_path)
    assert second.changes == {} and not second.export_written and second.changed.num_rows == 0
    assert jsonl.stat().st_mtime_ns == mtime

    con.execute("update customer_lifecycle set lifecycle_stage = 'active' where user_id = 'u1'")
    third = run_banner_assignment(con, cfg, AS_OF + timedelta(days=2), UTC, tmp_path)
    assert third.changes == {"changed": 1} and third.export_written
    assert third.changed.to_pylist()[0]["creative_id"] == "hero_default"
    history = con.execute("select count(*) from banner_assignment_changes").fetchone()[0]
    assert history == 9


def test_config_errors_name_file_and_field(tmp_path: Path):
    path = write_yaml(tmp_path / "banners.yaml", {
        "slots": [{"id": "home_hero", "default_creative": "hero_default"}],
        "creatives": [{"id": "hero_default", "slot": "home_hero", "priorty": 3, "content": content("x")}],
    })
    with pytest.raises(ConfigFileError, match=r"banners\.yaml:\d+: creatives\[0\]\.priorty: unknown key 'priorty'"):
        load_banner_config(path)
    write_yaml(path, {"slots": [{"id": "home_hero", "default_creative": "nope"}], "creatives": []})
    with pytest.raises(ConfigFileError, match="default_creative 'nope' is not a creative"):
        load_banner_config(path)


def test_shipped_banner_config_is_valid():
    cfg = load_banner_config(Path(__file__).resolve().parent.parent / "marketing" / "banners.yaml")
    assert {s.id for s in cfg.slots} >= {"home_hero", "cart_sidebar"}
