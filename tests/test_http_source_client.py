"""HTTP API client against a local pytest-httpserver on 127.0.0.1: retries, backoff, errors."""

import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors.sources.http_api import ApiClientConfig, ApiSourceError, HttpApiClient

TOKEN = "s3cret-token-value"


@pytest.fixture
def server():
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


def make_client(server: HTTPServer, sleeps: list[float], **overrides) -> HttpApiClient:
    config = ApiClientConfig(base_url=server.url_for("/v1"), token=TOKEN, page_size=2, timeout_seconds=2.0,
                             max_attempts=4, backoff_base_seconds=1.0, backoff_max_seconds=8.0)
    config = ApiClientConfig(**{**config.__dict__, **overrides})
    return HttpApiClient(config, sleep=sleeps.append, jitter=lambda: 0.5)


def ok_page(rows, next_cursor=None):
    return {"data": rows, "next_cursor": next_cursor}


def test_sends_bearer_token_params_and_parses_page(server):
    server.expect_oneshot_request(
        "/v1/orders", method="GET",
        query_string={"page_size": "2", "updated_since": "2026-01-01T00:00:00Z", "cursor": "c2"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).respond_with_json(ok_page([{"order_id": "o1"}], "c3"))
    sleeps: list[float] = []
    page = make_client(server, sleeps).get_page("orders", "2026-01-01T00:00:00Z", "c2")
    assert page.data == [{"order_id": "o1"}] and page.next_cursor == "c3" and page.attempts == 1
    assert sleeps == []
    server.check_assertions()


def test_retries_429_honouring_retry_after_then_500_503(server):
    responses = iter([
        Response("slow down", status=429, headers={"Retry-After": "3"}),
        Response("boom", status=500),
        Response("unavailable", status=503),
    ])

    def handler(request: Request) -> Response:
        try:
            return next(responses)
        except StopIteration:
            return Response('{"data": [{"user_id": "u1"}], "next_cursor": null}', content_type="application/json")

    server.expect_request("/v1/registrations").respond_with_handler(handler)
    sleeps: list[float] = []
    page = make_client(server, sleeps).get_page("registrations", None, None)
    assert page.data == [{"user_id": "u1"}] and page.attempts == 4
    # Retry-After honoured (3 s); then exponential with equal jitter 0.5: 2*(0.5+0.25)=1.5, 4*0.75=3.0
    assert sleeps == [3.0, 1.5, 3.0]
    assert len(server.log) == 4


def test_retry_after_is_capped_and_http_date_accepted(server):
    server.expect_ordered_request("/v1/orders").respond_with_response(
        Response("", status=429, headers={"Retry-After": "3600"}))
    server.expect_ordered_request("/v1/orders").respond_with_response(
        Response("", status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    server.expect_ordered_request("/v1/orders").respond_with_json(ok_page([]))
    sleeps: list[float] = []
    make_client(server, sleeps).get_page("orders", None, None)
    assert sleeps == [8.0, 0.0]  # capped at backoff_max; a date in the past means "now"


def test_gives_up_after_max_attempts_with_clear_error(server):
    server.expect_request("/v1/orders").respond_with_data("down", status=502)
    sleeps: list[float] = []
    with pytest.raises(ApiSourceError, match=r"failed after 4 attempts; last error: HTTP 502") as err:
        make_client(server, sleeps).get_page("orders", None, None)
    assert len(server.log) == 4 and len(sleeps) == 3
    assert TOKEN not in str(err.value)


def test_timeout_is_retried_then_errors(server):
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response('{"data": [], "next_cursor": null}', content_type="application/json")

    server.expect_request("/v1/orders").respond_with_handler(slow)
    sleeps: list[float] = []
    client = make_client(server, sleeps, timeout_seconds=0.2, max_attempts=2)
    with pytest.raises(ApiSourceError, match="failed after 2 attempts; last error: ReadTimeout"):
        client.get_page("orders", None, None)
    assert len(sleeps) == 1


def test_timeout_then_success(server):
    calls = {"n": 0}

    def first_slow(request: Request) -> Response:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.6)
        return Response('{"data": [{"order_id": "o1"}], "next_cursor": null}', content_type="application/json")

    server.expect_request("/v1/orders").respond_with_handler(first_slow)
    sleeps: list[float] = []
    page = make_client(server, sleeps, timeout_seconds=0.3).get_page("orders", None, None)
    assert page.attempts == 2 and page.data == [{"order_id": "o1"}]


def test_connection_refused_is_retried_then_errors():
    sleeps: list[float] = []
    config = ApiClientConfig(base_url="http://127.0.0.1:9", token=TOKEN, timeout_seconds=0.5, max_attempts=3)
    with pytest.raises(ApiSourceError, match="failed after 3 attempts; last error: ConnectionError"):
        HttpApiClient(config, sleep=sleeps.append, jitter=lambda: 0.0).get_page("orders", None, None)
    assert sleeps == [0.25, 0.5]  # 0.5 * 2**(n-1), half fixed, zero jitter


def test_permanent_401_fails_without_retries_and_never_shows_the_token(server):
    server.expect_request("/v1/orders").respond_with_data('{"error": "bad token"}', status=401)
    sleeps: list[float] = []
    with pytest.raises(ApiSourceError, match="HTTP 401 \\(not retryable\\)") as err:
        make_client(server, sleeps).get_page("orders", None, None)
    assert len(server.log) == 1 and sleeps == []
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value)


@pytest.mark.parametrize("body", ['[1, 2]', '{"rows": []}', "not json"])
def test_unexpected_body_is_a_clear_error(server, body):
    server.expect_request("/v1/orders").respond_with_data(body, content_type="application/json")
    with pytest.raises(ApiSourceError, match="GET .*/v1/orders"):
        make_client(server, []).get_page("orders", None, None)


def test_config_repr_hides_token():
    assert TOKEN not in repr(ApiClientConfig(base_url="http://127.0.0.1", token=TOKEN))
