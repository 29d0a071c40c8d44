"""Dagster resource for the HTTP API source (connectors/sources/http_api.py).

The base URL and the bearer token arrive as dg.EnvVar. An unset variable is not passed at all, so
the resource sees None: without CRMFLOW_API_BASE_URL the api_pull asset reports "not configured" and
does nothing (the demo and `dagster dev` keep working offline).
"""

import os
import time
from collections.abc import Callable

import dagster as dg
from pydantic import Field

from connectors.sources.http_api import RESOURCES, ApiClientConfig, HttpApiClient

BASE_URL_ENV = "CRMFLOW_API_BASE_URL"
TOKEN_ENV = "CRMFLOW_API_TOKEN"


class HttpApiSourceResource(dg.ConfigurableResource):
    """Where the REST source lives and how patiently to read it."""

    base_url: str | None = None
    token: str | None = None
    resources: list[str] = Field(default_factory=lambda: list(RESOURCES))
    page_size: int = 500
    timeout_seconds: float = 10.0
    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0

    @property
    def configured(self) -> bool:
        return bool(self.base_url)

    def client(self, sleep: Callable[[float], None] = time.sleep) -> HttpApiClient:
        if not self.base_url:
            raise ValueError(f"HTTP API source is not configured: set {BASE_URL_ENV}")
        return HttpApiClient(
            ApiClientConfig(
                base_url=self.base_url,
                token=self.token,
                page_size=self.page_size,
                timeout_seconds=self.timeout_seconds,
                max_attempts=self.max_attempts,
                backoff_base_seconds=self.backoff_base_seconds,
                backoff_max_seconds=self.backoff_max_seconds,
            ),
            sleep=sleep,
        )


def api_source_from_env() -> HttpApiSourceResource:
    """The resource with dg.EnvVar for every variable that is set (values resolve at run time)."""
    secrets = {"base_url": BASE_URL_ENV, "token": TOKEN_ENV}
    return HttpApiSourceResource(**{field: dg.EnvVar(env) for field, env in secrets.items() if os.environ.get(env)})
