"""One incremental pull of every API resource: read cursor, land pages, then advance the cursor.

The warehouse is opened only around the cursor reads/writes (DuckDB allows one writer; HTTP can
be slow): `connect()` yields a Warehouse (or a raw DuckDB connection, wrapped). The cursor moves only after all pages of a resource are on disk, so a failure part-way
re-pulls from the old cursor next time and ingestion dedupes what landed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from connectors.sources.http_api import (
    RESOURCES,
    HttpApiClient,
    PullResult,
    high_water_mark,
    pull_resource,
    read_cursor,
    save_cursor,
)
from crmflow.warehouse import Warehouse

Connect = Callable[[], AbstractContextManager[Warehouse]]


@dataclass(frozen=True)
class SyncResult:
    pull: PullResult
    cursor_before: str | None
    cursor_after: str | None


def sync_api_resources(
    client: HttpApiClient,
    connect: Connect,
    landing_dir: Path,
    saved_at: datetime,
    resources: Iterable[str] = RESOURCES,
) -> list[SyncResult]:
    results = []
    for resource in resources:
        if resource not in RESOURCES:
            raise ValueError(f"unknown API resource {resource!r}; expected one of {RESOURCES}")
        with connect() as con:
            before = read_cursor(con, resource)
        pulled = pull_resource(client, resource, landing_dir, before)
        after = high_water_mark(pulled.files, resource, before)
        with connect() as con:
            save_cursor(con, resource, after, saved_at)
        results.append(SyncResult(pulled, before, after))
    return results
