"""POST records as JSON batches to an HTTP endpoint, retrying transient failures with backoff.

Body of each request: {"kind": <kind>, "batch": <n>, "records": [...]}. 2xx = accepted; 408, 429
and 5xx or a connection error are retried (Retry-After honoured, capped); any other status fails
the batch at once. A failed batch does not stop the others: the result lists which batches failed
(`accepted_mask`), so the caller marks only the delivered records as pushed and sends the rest again
on its next run (banner_assignment_changes.pushed_at, operator_task_pushes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import requests

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class PushConfig:
    url: str
    token: str | None = None  # sent as a Bearer token; never logged
    batch_size: int = 500
    max_attempts: int = 4
    backoff_seconds: float = 0.5  # 0.5, 1, 2, ... between attempts
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0


@dataclass
class PushResult:
    records: int = 0
    batches: int = 0
    batches_failed: int = 0
    records_failed: int = 0
    attempts: int = 0
    errors: list[str] = field(default_factory=list)  # status / exception class per failed batch
    failed_batches: list[int] = field(default_factory=list)  # 1-based batch numbers
    batch_size: int = 500

    @property
    def ok(self) -> bool:
        return self.batches_failed == 0

    def accepted_mask(self) -> np.ndarray:
        """One bool per pushed record, in order: True when its batch was accepted."""
        mask = np.ones(self.records, dtype=bool)
        for number in self.failed_batches:
            mask[(number - 1) * self.batch_size: number * self.batch_size] = False
        return mask

    def summary(self) -> str:
        return (f"{self.records - self.records_failed}/{self.records} records, {self.batches_failed} failed "
                f"batches (retried next run)")


def _batches(records: Iterable[Mapping[str, Any]], size: int) -> Iterable[list[Mapping[str, Any]]]:
    batch: list[Mapping[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _retry_after(response: requests.Response, default: float, cap: float) -> float:
    value = response.headers.get("Retry-After")
    try:
        return min(float(value), cap) if value is not None else default
    except ValueError:
        return default


def push_records(
    config: PushConfig,
    kind: str,
    records: Iterable[Mapping[str, Any]],
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    result = PushResult(batch_size=config.batch_size)
    headers = {"Content-Type": "application/json"}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    own_session = session is None
    session = session or requests.Session()
    try:
        for number, batch in enumerate(_batches(records, config.batch_size), start=1):
            result.batches += 1
            result.records += len(batch)
            error = None
            for attempt in range(1, config.max_attempts + 1):
                result.attempts += 1
                delay = min(config.backoff_seconds * 2 ** (attempt - 1), config.max_backoff_seconds)
                try:
                    response = session.post(config.url, json={"kind": kind, "batch": number, "records": batch},
                                             headers=headers, timeout=config.timeout_seconds)
                except (requests.ConnectionError, requests.Timeout) as exc:
                    error = f"batch {number}: {type(exc).__name__}"
                else:
                    if 200 <= response.status_code < 300:
                        error = None
                        break
                    error = f"batch {number}: HTTP {response.status_code}"
                    if response.status_code not in RETRYABLE_STATUS:
                        break
                    delay = _retry_after(response, delay, config.max_backoff_seconds)
                if attempt < config.max_attempts:
                    sleep(delay)
            if error is not None:
                result.batches_failed += 1
                result.records_failed += len(batch)
                result.errors.append(error)
                result.failed_batches.append(number)
    finally:
        if own_session:
            session.close()
    return result


def push_table(config: PushConfig, kind: str, pending: pa.Table,
               drop_columns: tuple[str, ...] = ()) -> tuple[PushResult, pa.Table]:
    """Push the rows of `pending` (without `drop_columns`, bookkeeping the endpoint does not get);
    return the result and the rows the endpoint accepted, for the caller to mark as delivered."""
    result = push_records(config, kind, pending.drop_columns(list(drop_columns)).to_pylist())
    return result, pending.filter(result.accepted_mask())
