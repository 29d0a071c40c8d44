"""Banners use the intelligence tables: cluster targeting by id or label, and {sku} in a creative's
text/deep link filled from the user's top recommendation (eligible only for users who have one)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest
from helpers_banners_tasks import AS_OF, content, insert_rows, make_profiles
from pydantic import ValidationError

from crmflow.banners.assign import compute_assignments
from crmflow.banners.config import BannerConfig

UTC = ZoneInfo("UTC")


def config(creatives: list[dict], default_content: dict | None = None) -> BannerConfig:
    return BannerConfig.model_validate({
        "default_locale": "en",
        "slots": [{"id": "home_hero", "default_creative": "hero_default"}],
        "creatives": [{"id": "hero_default", "slot": "home_hero",
                       "content": default_content or content("hero_default")}, *creatives],
    })


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    make_profiles(connection, [{"user_id": u, "locale": "en"} for u in ("u1", "u2", "u3")])
    connection.execute("create table customer_clusters (user_id varchar, cluster_id integer, "
                       "cluster_label varchar, distance double)")
    insert_rows(connection, "customer_clusters", [
        {"user_id": "u1", "cluster_id": 2, "cluster_label": "high-frequency, mobile", "distance": 0.1},
        {"user_id": "u2", "cluster_id": 5, "cluster_label": "no purchase yet", "distance": 0.1}])
    connection.execute("create table customer_recommendations (user_id varchar, rank integer, sku varchar, "
                       "score double, reason varchar)")
    insert_rows(connection, "customer_recommendations", [
        {"user_id": "u1", "rank": 2, "sku": "SKU-B", "score": 0.2, "reason": "co_purchase"},
        {"user_id": "u1", "rank": 1, "sku": "SKU-A", "score": 0.9, "reason": "co_purchase"},
        {"user_id": "u3", "rank": 1, "sku": "SKU-C", "score": 0.5, "reason": "popular"}])
    yield connection
    connection.close()


def rows(con, cfg) -> dict[str, tuple[str, str, str]]:
    compute_assignments(con, cfg, AS_OF, UTC, target="out")
    return {u: (c, t, d) for u, c, t, d in con.execute("select user_id, creative_id, text, deep_link from out").fetchall()}


SKU_CREATIVE = {"id": "for_you", "slot": "home_hero", "priority": 10, "content": {
    "en": {"image_url": "https://cdn.example/for-you.png", "text": "You might like {sku}",
           "deep_link": "app://product/{sku}"}}}


def test_cluster_targeting_by_label(con) -> None:
    got = rows(con, config([{"id": "mobile", "slot": "home_hero", "priority": 5,
                             "targeting": {"clusters": ["high-frequency, mobile"]}, "content": content("m")}]))
    assert {u: c for u, (c, _, _) in got.items()} == {"u1": "mobile", "u2": "hero_default", "u3": "hero_default"}


def test_sku_placeholder_is_filled_from_the_top_recommendation(con) -> None:
    got = rows(con, config([SKU_CREATIVE]))
    assert got["u1"] == ("for_you", "You might like SKU-A", "app://product/SKU-A")
    assert got["u3"] == ("for_you", "You might like SKU-C", "app://product/SKU-C")
    assert got["u2"][0] == "hero_default"  # no recommendation: not eligible, never "app://product/"


def test_sku_creative_without_recommendations_table_reaches_nobody(con) -> None:
    con.execute("drop table customer_recommendations")
    assert {c for c, _, _ in rows(con, config([SKU_CREATIVE])).values()} == {"hero_default"}


def test_journey_override_with_sku_creative_needs_a_recommendation(con) -> None:
    con.execute("create table journey_banner_overrides (user_id varchar, slot varchar, creative_id varchar, "
                "journey_id varchar, valid_from timestamptz, valid_until timestamptz)")
    for user in ("u1", "u2"):
        insert_rows(con, "journey_banner_overrides", [
            {"user_id": user, "slot": "home_hero", "creative_id": "for_you", "journey_id": "j",
             "valid_from": AS_OF - timedelta(days=1), "valid_until": AS_OF + timedelta(days=1)}])
    got = rows(con, config([{**SKU_CREATIVE, "priority": 0, "targeting": {"tags": ["nobody"]}}]))
    assert got["u1"] == ("for_you", "You might like SKU-A", "app://product/SKU-A")
    assert got["u2"][0] == "hero_default"


def test_a_slot_default_may_not_use_sku() -> None:
    with pytest.raises(ValidationError, match="uses \\{sku\\}"):
        config([], default_content=SKU_CREATIVE["content"])
