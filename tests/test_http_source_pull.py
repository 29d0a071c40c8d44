"""HTTP API pull end to end on 127.0.0.1: pagination, landed files, cursor, ingestion, asset."""

import json

import dagster as dg
import pytest
from helpers_ingest import AS_OF, order, registration, rows
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from assets.api_pull import api_pull
from connectors.sources.api_sync import sync_api_resources
from connectors.sources.files import ingest_source
from connectors.sources.http_api import ApiClientConfig, ApiSourceError, HttpApiClient, read_cursor
from crmflow.warehouse import connect
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_sources import HttpApiSourceResource

TOKEN = "pull-token-123"


@pytest.fixture
def server():
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


def paged_api(pages: dict[str, list[tuple[list[dict], str | None]]], seen: list[dict]):
    """A fake REST API: per resource, pages by cursor (None = first page)."""

    def handler(request: Request) -> Response:
        resource = request.path.rsplit("/", 1)[-1]
        seen.append({"resource": resource, **request.args})
        cursor = request.args.get("cursor")
        index = 0 if cursor is None else int(cursor.removeprefix("p"))
        data, nxt = pages[resource][index]
        return Response(json.dumps({"data": data, "next_cursor": nxt}), content_type="application/json")

    return handler


def client_for(server: HTTPServer) -> HttpApiClient:
    return HttpApiClient(ApiClientConfig(base_url=server.url_for("/api"), token=TOKEN, page_size=2),
                         sleep=lambda s: None)


def test_pagination_lands_files_advances_cursor_and_ingests(server, tmp_path):
    landing, db = tmp_path / "landing", tmp_path / "w.duckdb"
    seen: list[dict] = []
    pages = {
        "registrations": [
            ([registration("u1", updated_at="2026-03-01T00:00:00Z"),
              registration("u2", updated_at="2026-03-05T10:00:00+02:00")], "p1"),
            ([registration("u3", updated_at="2026-03-02T00:00:00Z", email="broken")], None),
        ],
        "orders": [([], None)],
    }
    server.expect_request("/api/registrations").respond_with_handler(paged_api(pages, seen))
    server.expect_request("/api/orders").respond_with_handler(paged_api(pages, seen))

    results = sync_api_resources(client_for(server), lambda: connect(db), landing, AS_OF)
    regs, orders = results
    assert (regs.pull.pages, regs.pull.rows, len(regs.pull.files)) == (2, 3, 2)
    assert (orders.pull.pages, orders.pull.rows, orders.pull.files) == (1, 0, [])
    assert all(f.name.startswith("api-registrations-") and f.suffix == ".jsonl" for f in regs.pull.files)
    assert not list((landing / "registrations").glob(".*"))  # no temp files left behind
    # the high-water mark is the max updated_at (in UTC), including rows that will be quarantined
    assert regs.cursor_before is None and regs.cursor_after == "2026-03-05T08:00:00.000000Z"
    assert orders.cursor_after is None
    assert [s.get("cursor") for s in seen if s["resource"] == "registrations"] == [None, "p1"]
    assert all("updated_since" not in s and s["page_size"] == "2" for s in seen)

    with connect(db) as con:
        assert read_cursor(con, "registrations") == regs.cursor_after
        stats = ingest_source(con, "registrations", landing, AS_OF)
        assert (stats.files_ingested, stats.rows_loaded, stats.rows_quarantined) == (2, 2, 1)
        assert rows(con, "select reason, source_file like 'registrations/api-registrations-%' "
                         "from quarantine_registrations") == [("invalid_email", True)]

    # second pull asks for updated_since=<cursor>; the same page again lands in the same-named
    # file only if the request is the same; here it is new, so ingestion dedupes it.
    seen.clear()
    pages["registrations"] = [([registration("u2", updated_at="2026-03-05T10:00:00+02:00")], None)]
    again = sync_api_resources(client_for(server), lambda: connect(db), landing, AS_OF, ["registrations"])
    assert seen[0]["updated_since"] == "2026-03-05T08:00:00.000000Z"
    assert again[0].cursor_after == again[0].cursor_before == "2026-03-05T08:00:00.000000Z"
    with connect(db) as con:
        stats = ingest_source(con, "registrations", landing, AS_OF)
        assert (stats.files_ingested, stats.rows_loaded, stats.duplicates_skipped) == (1, 0, 1)


def test_failure_mid_pagination_keeps_the_old_cursor(server, tmp_path):
    landing, db = tmp_path / "landing", tmp_path / "w.duckdb"
    calls = {"n": 0}

    def handler(request: Request) -> Response:
        calls["n"] += 1
        if request.args.get("cursor") == "p1":
            return Response("forbidden", status=403)
        return Response(json.dumps({"data": [order("o1", updated_at="2026-04-01T00:00:00Z")], "next_cursor": "p1"}),
                        content_type="application/json")

    server.expect_request("/api/orders").respond_with_handler(handler)
    with pytest.raises(ApiSourceError, match="HTTP 403"):
        sync_api_resources(client_for(server), lambda: connect(db), landing, AS_OF, ["orders"])
    with connect(db) as con:
        assert read_cursor(con, "orders") is None
    # the first page did land; ingesting it later is harmless (dedupe on order_id)
    assert len(list((landing / "orders").glob("api-orders-*.jsonl"))) == 1


def _materialize(resource: HttpApiSourceResource, tmp_path):
    settings = CrmflowSettingsResource(landing_dir=str(tmp_path / "landing"), outbox_dir=str(tmp_path / "o"),
                                       export_dir=str(tmp_path / "x"), marketing_dir=str(tmp_path / "m"))
    return dg.materialize(
        [api_pull],
        resources={"api_source": resource, "settings": settings,
                   "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))},
        tags=as_of_tags(AS_OF),
    )


def test_api_pull_asset_not_configured_does_nothing(tmp_path):
    result = _materialize(HttpApiSourceResource(), tmp_path)
    assert result.success
    metadata = result.asset_materializations_for_node("api_pull")[0].metadata
    assert metadata["configured"].value is False
    assert not (tmp_path / "landing").exists()


def test_api_pull_asset_with_env_resource(server, tmp_path, monkeypatch):
    seen: list[dict] = []
    pages = {"registrations": [([registration("u1")], None)],
             "orders": [([order("o1", updated_at="2026-02-03T00:00:00Z")], "p1"), ([order("o2")], None)]}
    server.expect_request("/api/registrations", headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_handler(
        paged_api(pages, seen))
    server.expect_request("/api/orders", headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_handler(
        paged_api(pages, seen))
    monkeypatch.setenv("TEST_CRMFLOW_API_BASE_URL", server.url_for("/api"))
    monkeypatch.setenv("TEST_CRMFLOW_API_TOKEN", TOKEN)
    resource = HttpApiSourceResource(base_url=dg.EnvVar("TEST_CRMFLOW_API_BASE_URL"),
                                     token=dg.EnvVar("TEST_CRMFLOW_API_TOKEN"), page_size=1)
    result = _materialize(resource, tmp_path)
    assert result.success
    metadata = {k: v.value for k, v in result.asset_materializations_for_node("api_pull")[0].metadata.items()}
    assert metadata["configured"] is True
    assert (metadata["registrations_rows"], metadata["orders_rows"], metadata["orders_pages"]) == (1, 2, 2)
    assert metadata["orders_cursor"] == "2026-02-03T00:00:00.000000Z"
    assert TOKEN not in json.dumps(metadata)
    assert len(list((tmp_path / "landing" / "orders").glob("api-orders-*.jsonl"))) == 2
