"""Journeys use the intelligence tables: `recommendations` in templates (dispatch, preview,
validation) and `clusters` in audiences (and what happens before the intelligence stage ran)."""

import json
from pathlib import Path

import duckdb
import pytest
from helpers_journeys import journey_from_yaml, make_customer_tables, profile, ts

from connectors.channels.outbox import OutboxChannel
from crmflow.journeys.dispatch import dispatch
from crmflow.journeys.engine import run_tick
from crmflow.journeys.loader import load_journey_file, parse_journey_text
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.preview import preview_journey
from crmflow.journeys.recommendations import load_recommendations
from crmflow.settings import REPO_ROOT

AS_OF = ts("2026-03-01T12:00")

REC_JOURNEY = """
id: recs
name: recs
owner: qa
trigger: {type: segment, family: lifecycle, segment: new}
templates:
  hello:
    channel: email
    locales:
      en-US:
        subject: "Hi {{ first_name }}"
        body: "{% if recommendations %}You might like {{ recommendations[0].sku }} ({{ recommendations | length }}){% else %}Welcome{% endif %}"
steps:
  - {id: s1, type: send, channel: email, template: hello}
"""


def cluster_journey(clusters: str) -> str:
    return f"""
id: by_cluster
name: by cluster
owner: qa
trigger: {{type: segment, family: lifecycle, segment: new}}
audience:
  clusters: {clusters}
templates:
  hello:
    channel: email
    locales:
      en-US: {{subject: "Hi", body: "Hello"}}
steps:
  - {{id: s1, type: send, channel: email, template: hello}}
"""


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    yield con
    con.close()


def setup(con, user_ids: list[str]) -> None:
    make_customer_tables(con, customer_profile=[profile(u) for u in user_ids], customer_segment_history=[
        {"user_id": u, "segment_family": "lifecycle", "segment": "new", "valid_from": ts("2026-03-01T10:00"),
         "valid_to": None} for u in user_ids])


def add_recommendations(con, rows: list[tuple[str, int, str, float, str]]) -> None:
    con.execute("create table customer_recommendations (user_id varchar, rank integer, sku varchar, "
                "score double, reason varchar)")
    con.executemany("insert into customer_recommendations values (?, ?, ?, ?, ?)", rows)


def add_clusters(con, rows: list[tuple[str, int, str]]) -> None:
    con.execute("drop table if exists customer_clusters")  # migration 42 may have created it empty
    con.execute("create table customer_clusters (user_id varchar, cluster_id integer, cluster_label varchar, "
                "distance double)")
    con.executemany("insert into customer_clusters values (?, ?, ?, 0.1)", rows)


def test_dispatch_renders_the_top_recommendation_and_handles_none(con, tmp_path: Path) -> None:
    setup(con, ["a", "b"])
    # inserted out of rank order: the template must see rank 1 first
    add_recommendations(con, [("a", 2, "SKU-2", 0.4, "co_purchase"), ("a", 1, "SKU-1", 0.9, "co_purchase"),
                              ("z", 1, "SKU-Z", 0.1, "popular")])
    j = journey_from_yaml(REC_JOURNEY)
    run_tick(con, j, AS_OF)
    dispatch(con, AS_OF, {"email": OutboxChannel("email", tmp_path)}, {"recs": j}, Policies())
    sent = {m["user_id"]: m for m in map(json.loads, (tmp_path / "email.jsonl").read_text().splitlines())}
    assert sent["a"]["body"] == "You might like SKU-1 (2)"
    assert sent["b"]["body"] == "Welcome"  # no recommendations: an empty list, not an error
    assert load_recommendations(con, ["a", "b"]) == {"a": [
        {"sku": "SKU-1", "score": 0.9, "reason": "co_purchase", "rank": 1},
        {"sku": "SKU-2", "score": 0.4, "reason": "co_purchase", "rank": 2}]}


def test_without_the_recommendations_table_the_list_is_empty(con, tmp_path: Path) -> None:
    setup(con, ["a"])
    j = journey_from_yaml(REC_JOURNEY)
    run_tick(con, j, AS_OF)
    report = dispatch(con, AS_OF, {"email": OutboxChannel("email", tmp_path)}, {"recs": j}, Policies())
    assert report.failed == 0
    assert [json.loads(x)["body"] for x in (tmp_path / "email.jsonl").read_text().splitlines()] == ["Welcome"]


def test_preview_renders_recommendations(con) -> None:
    setup(con, ["a"])
    add_recommendations(con, [("a", 1, "SKU-9", 0.7, "popular_in_segment")])
    preview = preview_journey(con, journey_from_yaml(REC_JOURNEY), AS_OF)
    assert [s["body"] for s in preview.samples] == ["You might like SKU-9 (1)"]


def test_validation_accepts_recommendations_but_not_unknown_names() -> None:
    assert parse_journey_text(REC_JOURNEY, Path("recs.yaml")).ok
    broken = REC_JOURNEY.replace("recommendations[0].sku", "recomendations[0].sku")
    loaded = parse_journey_text(broken, Path("recs.yaml"))
    assert not loaded.ok and "recomendations" in loaded.error_text()


def test_win_back_example_suggests_the_top_recommendation(con) -> None:
    loaded = load_journey_file(REPO_ROOT / "marketing" / "journeys" / "win_back.yaml")
    assert loaded.ok, loaded.error_text()
    template = loaded.journey.templates["winback_a"]
    from crmflow.journeys.templates import render

    recs = [{"sku": "SKU-7", "score": 0.5, "reason": "co_purchase", "rank": 1}]
    with_recs = render(template, "en-US", {"first_name": "Ann", "recommendations": recs}).fields["body"]
    without = render(template, "en-US", {"first_name": "Ann", "recommendations": []}).fields["body"]
    assert with_recs.endswith("You might like SKU-7") and "You might like" not in without


def test_audience_clusters_match_id_or_label(con) -> None:
    setup(con, ["a", "b", "c"])
    add_clusters(con, [("a", 3, "high-frequency, mobile"), ("b", 4, "bargain hunters"), ("c", 5, "other")])
    report = run_tick(con, journey_from_yaml(cluster_journey('["3", "bargain hunters"]')), AS_OF)
    entered = {r[0] for r in con.execute("select user_id from journey_enrolments").fetchall()}
    assert entered == {"a", "b"} and report.entered == 2 and not report.notes


def test_audience_clusters_before_intelligence_ran_match_nobody_and_say_so(con) -> None:
    setup(con, ["a"])
    report = run_tick(con, journey_from_yaml(cluster_journey('["3"]')), AS_OF)
    assert report.entered == 0
    notes = report.metadata()["notes"]
    assert "customer_clusters" in notes and "nobody enters" in notes
