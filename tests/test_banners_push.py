"""HTTP push of changed assignments: batching, retry with backoff, give-up, auth header."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors.exports.http_push import PushConfig, push_records


@pytest.fixture()
def httpserver():
    """Our own server bound to 127.0.0.1 (never all interfaces), independent of the shared fixture."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_batches_and_retries_transient_errors(httpserver: HTTPServer):
    calls: list[dict] = []
    failures = {"left": 2}

    def handler(request: Request) -> Response:
        body = json.loads(request.data)
        calls.append({"auth": request.headers.get("Authorization"), "batch": body["batch"],
                      "n": len(body["records"])})
        if body["batch"] == 2 and failures["left"]:
            failures["left"] -= 1
            return Response("busy", status=503, headers={"Retry-After": "0.01"})
        return Response("{}", status=200)

    httpserver.expect_request("/banners", method="POST").respond_with_handler(handler)
    sleeps: list[float] = []
    records = [{"user_id": f"u{i}", "slot": "home_hero"} for i in range(25)]
    result = push_records(PushConfig(url=httpserver.url_for("/banners"), token="s3cret", batch_size=10),
                          "banner_assignments", records, sleep=sleeps.append)
    assert result.ok and result.records == 25 and result.batches == 3 and result.attempts == 5
    assert [c["n"] for c in calls if c["batch"] != 2] == [10, 5]
    assert sleeps == [0.01, 0.01]  # Retry-After honoured
    assert {c["auth"] for c in calls} == {"Bearer s3cret"}


def test_gives_up_after_max_attempts_and_on_client_errors(httpserver: HTTPServer):
    httpserver.expect_request("/down").respond_with_data("no", status=500)
    httpserver.expect_request("/bad").respond_with_data("no", status=400)
    sleeps: list[float] = []
    down = push_records(PushConfig(url=httpserver.url_for("/down"), max_attempts=3, backoff_seconds=0.5),
                        "x", [{"a": 1}], sleep=sleeps.append)
    assert not down.ok and down.attempts == 3 and down.errors == ["batch 1: HTTP 500"]
    assert sleeps == [0.5, 1.0]  # exponential backoff
    bad = push_records(PushConfig(url=httpserver.url_for("/bad")), "x", [{"a": 1}, {"a": 2}], sleep=sleeps.append)
    assert bad.attempts == 1 and bad.records_failed == 2  # 4xx is not retried


def test_connection_refused_is_reported_not_raised():
    result = push_records(PushConfig(url="http://127.0.0.1:9/nothing", max_attempts=2, timeout_seconds=1),
                          "x", [{"a": 1}], sleep=lambda _: None)
    assert not result.ok and result.errors == ["batch 1: ConnectionError"]
