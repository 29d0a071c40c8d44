"""Shared HTTP plumbing for the requests-based channels: pooled sessions, outcome classification and
bounded concurrency."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from connectors.channels.retry import CallOutcome, classify_status, parse_retry_after

T = TypeVar("T")
R = TypeVar("R")

USER_AGENT = "crmflow-channels/0.1"


def build_session(max_concurrency: int) -> requests.Session:
    """One pooled session per channel; the pool is as large as the channel's concurrency.
    urllib3's own retries are off: retrying is the Retrier's job (it knows what is safe)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, max_concurrency), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def _is_connect_failure(exc: BaseException) -> bool:
    """True when the request certainly never reached the server (refused, DNS, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return True
        if isinstance(item, urllib3.exceptions.MaxRetryError):
            stack.append(item.reason)
        if isinstance(item, BaseException):
            stack.extend(a for a in item.args if isinstance(a, BaseException))
            stack.append(item.__cause__)
            stack.append(item.__context__)
    return False


def classify_exception(exc: requests.RequestException) -> CallOutcome:
    if _is_connect_failure(exc):
        return CallOutcome(kind="retry", error=f"connect failed: {type(exc).__name__}")
    if isinstance(exc, requests.exceptions.Timeout):
        return CallOutcome(kind="unknown", error="timeout waiting for the provider")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return CallOutcome(kind="unknown", error=f"connection dropped: {type(exc).__name__}")
    return CallOutcome(kind="permanent", error=f"request error: {type(exc).__name__}")


def post(
    session: requests.Session,
    url: str,
    timeout_s: float,
    parse_error: Callable[[requests.Response], tuple[str, bool]],
    parse_ok: Callable[[requests.Response], str | None],
    **kwargs: Any,
) -> CallOutcome:
    """POST once and turn the response (or the exception) into a CallOutcome.
    parse_error returns (reason, address_dead); parse_ok returns the provider message id."""
    try:
        response = session.post(url, timeout=timeout_s, **kwargs)
    except requests.RequestException as exc:
        return classify_exception(exc)
    kind = classify_status(response.status_code)
    if kind == "ok":
        return CallOutcome(kind="ok", status=response.status_code, provider_message_id=parse_ok(response))
    reason, dead = parse_error(response)
    return CallOutcome(
        kind=kind,
        status=response.status_code,
        error=f"HTTP {response.status_code}: {reason}",
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
        address_dead=dead and kind == "permanent",
    )


def map_bounded(fn: Callable[[T], R], items: Sequence[T], max_concurrency: int) -> list[R]:
    """fn over items with at most max_concurrency in flight; results in input order. An exception
    from fn is a programming error and propagates (per-message failures are results, not raises)."""
    if not items:
        return []
    if max_concurrency <= 1 or len(items) == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(max_concurrency, len(items)),
                            thread_name_prefix="crmflow-send") as pool:
        return list(pool.map(fn, items))
