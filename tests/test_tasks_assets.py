"""The banner and task assets through Dagster on a temp DuckDB: empty warehouse and a small one; the
tasks push and JSONL export with a recalled customer; a push that fails after its retries is sent
again on the next run (local 127.0.0.1 endpoint)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from helpers_banners_tasks import AS_OF, make_lifecycle, make_profiles, make_value_tier
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from assets.banners import build_banner_assets
from assets.tasks import build_task_assets, task_outcomes
from crmflow.warehouse import connect
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_banners_tasks import ExportPushResource

REPO = Path(__file__).resolve().parent.parent


def run_assets(tmp_path: Path, push_url: str | None = None, as_of: datetime = AS_OF,
               tasks_token: str | None = None) -> dg.ExecuteInProcessResult:
    # no backoff and two attempts: a failing endpoint fails the batch quickly
    fast = {"max_attempts": 2, "backoff_seconds": 0.0, "timeout_seconds": 5.0}
    resources = {
        "warehouse": WarehouseResource(path=str(tmp_path / "wh.duckdb")),
        "settings": CrmflowSettingsResource(landing_dir=str(tmp_path / "landing"), outbox_dir=str(tmp_path / "outbox"),
                                            export_dir=str(tmp_path / "exports"),
                                            marketing_dir=str(REPO / "marketing")),
        "banner_push": ExportPushResource(url=push_url and push_url + "/banners", token="t0ken", **fast),
        "tasks_push": ExportPushResource(url=push_url and push_url + "/tasks", token=tasks_token, **fast),
    }
    return dg.materialize([*build_banner_assets([]), task_outcomes, *build_task_assets([])],
                          resources=resources, tags=as_of_tags(as_of))


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.mark.parametrize("populated", [False, True])
def test_assets_run_on_empty_and_small_warehouse(tmp_path: Path, populated: bool):
    if populated:
        with connect(tmp_path / "wh.duckdb") as con:
            make_profiles(con, [{"user_id": "u1", "locale": "de-DE", "country": "DE", "revenue": 100},
                                {"user_id": "u2", "locale": "en", "country": "GB", "revenue": 50}])
            make_lifecycle(con, {"u1": "silent", "u2": "new"})
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/banners", method="POST").respond_with_data("ok")
    server.start()
    try:
        result = run_assets(tmp_path, server.url_for("").rstrip("/"))
        pushed = [json.loads(req.data) for req, _ in server.log]
        auth = {req.headers.get("Authorization") for req, _ in server.log}
    finally:
        server.clear()
        server.stop()
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    banners = metadata(result, "banner_assignments")
    tasks = metadata(result, "operator_tasks")
    if not populated:
        assert banners["rows"] == 0 and "customer_profile" in banners["missing_inputs"]
        assert tasks["assigned"] == 0
        return
    assert banners["by_reason"] == {"default": 2, "targeted": 2}
    # the four new assignments were pushed once, with the token, and the secret is not in the metadata
    assert [len(p["records"]) for p in pushed if p["kind"] == "banner_assignments"] == [4]
    assert auth == {"Bearer t0ken"} and "t0ken" not in json.dumps(banners, default=str)  # welcome for u2, German cart for u1
    lines = (tmp_path / "exports" / "banners" / "banner_assignments.jsonl").read_text().splitlines()
    assert [json.loads(line)["user_id"] for line in lines] == ["u1", "u2"]
    # high_value_churn_risk falls back to lifecycle 'silent' but filters on value tier (missing): nobody;
    # the shipped rules recall nothing here, so no task, and the export still exists with a header.
    assert (tmp_path / "exports" / "tasks" / "operator_tasks.csv").exists()
    second = run_assets(tmp_path)
    assert metadata(second, "banner_assignments")["export_written"] is False


def recall_one(tmp_path: Path) -> None:
    """u1: a silent, high-value German customer; high_value_churn_risk recalls them (no churn scores,
    so the rule falls back to lifecycle 'silent') and a German-speaking DACH operator gets the task."""
    with connect(tmp_path / "wh.duckdb") as con:
        make_profiles(con, [{"user_id": "u1", "first_name": "Ute", "locale": "de-DE", "country": "DE",
                             "revenue": 900, "order_count": 7, "days_since_last_purchase": 120},
                            {"user_id": "u2", "locale": "en", "country": "GB", "revenue": 50}])
        make_lifecycle(con, {"u1": "silent", "u2": "new"})
        make_value_tier(con, [{"user_id": "u1", "customer_type": "individual", "value_tier": "high"},
                              {"user_id": "u2", "customer_type": "individual", "value_tier": "low"}])


class FlakyEndpoint:
    """A local endpoint that answers 503 while `failing`, else 200; logs every request it accepted."""

    def __init__(self) -> None:
        self.failing = False
        self.accepted: list[tuple[str, dict, str | None]] = []  # path, body, Authorization
        self.refused = 0
        self.server = HTTPServer(host="127.0.0.1", port=0)
        self.server.expect_request("/banners", method="POST").respond_with_handler(self.handle)
        self.server.expect_request("/tasks", method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        if self.failing:
            self.refused += 1
            return Response("busy", status=503)
        self.accepted.append((request.path, json.loads(request.data), request.headers.get("Authorization")))
        return Response("ok")

    def records(self, path: str) -> list[dict]:
        return [r for p, body, _ in self.accepted if p == path for r in body["records"]]

    def __enter__(self) -> FlakyEndpoint:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.clear()
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")


def test_tasks_push_and_jsonl_carry_the_recalled_customer(tmp_path: Path):
    recall_one(tmp_path)
    with FlakyEndpoint() as endpoint:
        result = run_assets(tmp_path, endpoint.url, tasks_token="tasks-t0ken")
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    assert metadata(result, "operator_tasks")["recalled"]["high_value_churn_risk"] == 1
    [task] = endpoint.records("/tasks")
    assert {p for p, _, _ in endpoint.accepted} == {"/banners", "/tasks"}
    assert {auth for p, _, auth in endpoint.accepted if p == "/tasks"} == {"Bearer tasks-t0ken"}
    assert task["user_id"] == "u1" and task["rule"] == "high_value_churn_risk" and task["status"] == "open"
    assert task["operator_id"] in {"op_anna_keller", "op_jonas_weber"}  # DACH, speaks German
    context = json.loads(task["context"])
    assert context["profile"]["first_name"] == "Ute" and context["lifecycle_stage"] == "silent"
    assert task["due_at"].endswith("Z") and task["priority"] > 0
    # the JSONL export has the same task, one object per line, with its rank in the operator's list
    rows = [json.loads(line) for line in
            (tmp_path / "exports" / "tasks" / "operator_tasks.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["user_id"], r["operator_id"], r["rank_in_list"]) for r in rows] == [
        (task["task_id"], "u1", task["operator_id"], 1)]
    assert rows[0]["context"]["talking_points"] and "tasks-t0ken" not in json.dumps(
        metadata(result, "operator_tasks"), default=str)


def test_a_failed_push_is_sent_again_on_the_next_run(tmp_path: Path):
    recall_one(tmp_path)
    with FlakyEndpoint() as endpoint:
        endpoint.failing = True
        first = run_assets(tmp_path, endpoint.url)
        assert first.success and endpoint.refused == 4 and endpoint.accepted == []  # 2 kinds x 2 attempts
        assert "0/4 records, 1 failed batches" in metadata(first, "banner_assignments")["push"]
        with connect(tmp_path / "wh.duckdb") as con:
            assert con.execute("select count(*), count(pushed_at) from banner_assignment_changes").fetchone() == (4, 0)
        endpoint.failing = False
        later = AS_OF + timedelta(hours=1)
        second = run_assets(tmp_path, endpoint.url, as_of=later)
        assert second.success
        banners = endpoint.records("/banners")
        assert sorted((r["user_id"], r["slot"]) for r in banners) == sorted(
            {(r["user_id"], r["slot"]) for r in banners})  # each pair once, with its current content
        assert len(banners) == 4 and all(r["creative_id"] for r in banners)
        assert [t["user_id"] for t in endpoint.records("/tasks")] == ["u1"]
        with connect(tmp_path / "wh.duckdb") as con:
            assert con.execute("select count(*) from banner_assignment_changes where pushed_at is null "
                               "or pushed_at <> ?", [later]).fetchone()[0] == 0
            assert con.execute("select count(*) from operator_task_pushes").fetchone()[0] == 1
        # delivered: the next run has nothing left to send
        third = run_assets(tmp_path, endpoint.url, as_of=later + timedelta(hours=1))
        assert third.success and len(endpoint.accepted) == 2
        assert metadata(third, "operator_tasks")["push"].startswith("0/0 records")
