"""Resources for the optional HTTP pushes of banner assignments and operator tasks.

URL and token arrive as dg.EnvVar, and only when the variable is set: without
CRMFLOW_BANNER_PUSH_URL / CRMFLOW_TASKS_PUSH_URL the push is skipped (files are still exported).
"""

import os

import dagster as dg

from connectors.exports.http_push import PushConfig


class ExportPushResource(dg.ConfigurableResource):
    url: str | None = None
    token: str | None = None
    batch_size: int = 500
    max_attempts: int = 4
    backoff_seconds: float = 0.5
    timeout_seconds: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def push_config(self) -> PushConfig:
        if not self.url:
            raise ValueError("push endpoint is not configured")
        return PushConfig(url=self.url, token=self.token, batch_size=self.batch_size,
                          max_attempts=self.max_attempts, backoff_seconds=self.backoff_seconds,
                          timeout_seconds=self.timeout_seconds)


def _from_env(url_env: str, token_env: str) -> ExportPushResource:
    fields = {"url": url_env, "token": token_env}
    return ExportPushResource(**{name: dg.EnvVar(env) for name, env in fields.items() if os.environ.get(env)})


def banner_push_from_env() -> ExportPushResource:
    return _from_env("CRMFLOW_BANNER_PUSH_URL", "CRMFLOW_BANNER_PUSH_TOKEN")


def tasks_push_from_env() -> ExportPushResource:
    return _from_env("CRMFLOW_TASKS_PUSH_URL", "CRMFLOW_TASKS_PUSH_TOKEN")
