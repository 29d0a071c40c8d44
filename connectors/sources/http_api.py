"""HTTP API source: pull registrations/orders from a paginated JSON REST endpoint into landing files.

    GET {base}/{resource}?updated_since=<cursor>&page_size=N(&cursor=<next>)
    -> {"data": [ {...}, ... ], "next_cursor": "..." | null}

Every page lands as <landing>/<resource>/api-<resource>-<hash>.jsonl (written to a dot-file and
renamed, so ingestion never sees half a file); the file ingestion then applies the same quarantine
and dedupe rules as to delivered files. The hash is of (updated_since, page cursor), so a re-pulled
page overwrites its own file. The caller stores the high-water mark only after all pages landed.

Every call has a timeout; 429, 5xx, timeouts and connection errors are retried with exponential
backoff and jitter (Retry-After honoured), up to max_attempts; other 4xx fail at once. The bearer
token goes into the Authorization header only: never into URLs, files, errors or logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests

from connectors.sources.landing_parser import open_parser
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse

RESOURCES = ("registrations", "orders")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ApiSourceError(RuntimeError):
    """The API could not be read (after retries, or a permanent error). Never carries the token."""


@dataclass(frozen=True)
class ApiClientConfig:
    base_url: str
    token: str | None = field(default=None, repr=False)
    page_size: int = 500
    timeout_seconds: float = 10.0
    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    max_pages: int = 100_000  # a runaway next_cursor loop ends with an error, not forever


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    next_cursor: str | None
    attempts: int


@dataclass
class PullResult:
    resource: str
    since: str | None
    pages: int = 0
    rows: int = 0
    retries: int = 0
    files: list[Path] = field(default_factory=list)


class HttpApiClient:
    """One API, one requests.Session; `sleep` and `jitter` are injectable for tests."""

    def __init__(
        self,
        config: ApiClientConfig,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        session: requests.Session | None = None,
    ) -> None:
        if config.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.config = config
        self._sleep = sleep
        self._jitter = jitter
        self._session = session or requests.Session()

    def get_page(self, resource: str, updated_since: str | None, cursor: str | None) -> Page:
        url = f"{self.config.base_url.rstrip('/')}/{resource}"
        params: dict[str, str | int] = {"page_size": self.config.page_size}
        if updated_since:
            params["updated_since"] = updated_since
        if cursor:
            params["cursor"] = cursor
        headers = {"Accept": "application/json"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        last_error = ""
        for attempt in range(1, self.config.max_attempts + 1):
            retry_after: float | None = None
            try:
                response = self._session.get(url, params=params, headers=headers,
                                             timeout=self.config.timeout_seconds)
            except (requests.Timeout, requests.ConnectionError) as exc:
                last_error = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    return self._parse(response, url, attempt)
                last_error = f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUSES:
                    raise ApiSourceError(f"GET {url} failed with HTTP {response.status_code} "
                                         f"(not retryable): {_snippet(response.text)}")
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if attempt < self.config.max_attempts:
                self._sleep(self._delay(attempt, retry_after))
        raise ApiSourceError(
            f"GET {url} failed after {self.config.max_attempts} attempts; last error: {last_error}"
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        cap = self.config.backoff_max_seconds
        if retry_after is not None:
            return min(retry_after, cap)
        # exponential backoff with "equal jitter": half fixed, half random, so clients spread out
        step = min(cap, self.config.backoff_base_seconds * 2 ** (attempt - 1))
        return step / 2 + self._jitter() * step / 2

    @staticmethod
    def _parse(response: requests.Response, url: str, attempt: int) -> Page:
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiSourceError(f"GET {url}: response is not JSON: {_snippet(response.text)}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ApiSourceError(f"GET {url}: expected an object with a 'data' list, got {_snippet(response.text)}")
        next_cursor = body.get("next_cursor")
        if next_cursor is not None and not isinstance(next_cursor, str | int):
            raise ApiSourceError(f"GET {url}: next_cursor must be a string or null")
        return Page(body["data"], None if next_cursor in (None, "") else str(next_cursor), attempt)


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _snippet(text: str, limit: int = 200) -> str:
    return text[:limit].replace("\n", " ")


def page_file_name(resource: str, since: str | None, cursor: str | None) -> str:
    digest = hashlib.sha256(f"{resource}|{since or ''}|{cursor or ''}".encode()).hexdigest()[:16]
    return f"api-{resource}-{digest}.jsonl"


def write_page(landing_dir: Path, resource: str, since: str | None, cursor: str | None,
               data: list[dict[str, Any]]) -> Path:
    """Write one page as JSON lines atomically (dot-file, fsync, rename)."""
    folder = landing_dir / resource
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / page_file_name(resource, since, cursor)
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"  # dot-files are ignored by ingestion
    # Rows are re-serialised as received (one line each): the page is bounded by page_size.
    payload = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in data)
    with tmp.open("w", encoding="utf-8") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def pull_resource(client: HttpApiClient, resource: str, landing_dir: Path, since: str | None) -> PullResult:
    """Follow next_cursor until it is null, landing each non-empty page as a file."""
    result = PullResult(resource=resource, since=since)
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        if result.pages >= client.config.max_pages:
            raise ApiSourceError(f"{resource}: more than {client.config.max_pages} pages; stopping")
        page = client.get_page(resource, since, cursor)
        result.pages += 1
        result.retries += page.attempts - 1
        if page.data:
            result.files.append(write_page(landing_dir, resource, since, cursor, page.data))
            result.rows += len(page.data)
        if page.next_cursor is None:
            return result
        if page.next_cursor in seen:
            raise ApiSourceError(f"{resource}: next_cursor {page.next_cursor!r} repeats; the API loops")
        seen.add(page.next_cursor)
        cursor = page.next_cursor


# Version column per resource, falling back to the creation time like the file contract does.
VERSION_EXPR = {
    "registrations": "coalesce(try_cast(json->>'updated_at' as timestamptz), try_cast(json->>'registered_at' as timestamptz))",
    "orders": "coalesce(try_cast(json->>'updated_at' as timestamptz), try_cast(json->>'ordered_at' as timestamptz))",
}


def high_water_mark(files: list[Path], resource: str, previous: str | None) -> str | None:
    """The max version timestamp in the pulled files (ISO-8601 UTC), never below `previous`."""
    if not files:
        return previous
    with open_parser() as parser:  # in-memory: a set-based scan of the pages just written
        newest = parser.execute(
            f"select strftime(max({VERSION_EXPR[resource]}), '%Y-%m-%dT%H:%M:%S.%fZ')"
            " from read_ndjson_objects(?, ignore_errors = true)",
            [[str(f) for f in files]],
        ).fetchall()[0][0]
    if newest is None:
        return previous
    if previous is not None and newest <= previous:
        return previous
    return newest


def read_cursor(con: Warehouse | object, resource: str) -> str | None:
    warehouse = as_warehouse(con)
    apply_migrations(warehouse)
    return warehouse.scalar('select "cursor" from source_cursors where resource = $resource', {"resource": resource})


def save_cursor(con: Warehouse | object, resource: str, cursor: str | None, at: Any) -> None:
    warehouse = as_warehouse(con)
    apply_migrations(warehouse)
    warehouse.execute(
        'insert into source_cursors (resource, "cursor", updated_at) values ($resource, $cursor, $at)'
        ' on conflict (resource) do update set "cursor" = excluded."cursor", updated_at = excluded.updated_at',
        {"resource": resource, "cursor": cursor, "at": at},
    )
