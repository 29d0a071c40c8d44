"""Helpers for the reliability tests: a small dispatch world on a temp warehouse, local counting
providers with seeded faults, and a dispatcher that runs in a subprocess so it can be SIGKILLed.

Run as a script (`python tests/helpers_reliability.py dispatch <world.json> <as_of>`) it is the
dispatcher under test: it builds the channels as the journey_dispatch asset does (channels.yaml +
credentials from the environment, the factory behind JourneyChannelsResource) and calls dispatch_all.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve()
ENVIRONMENT = "reliability"
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# Fake secrets: recognisable strings the secret scan looks for everywhere.
FAKE_SECRETS = {
    "SENDGRID_API_KEY": "SG.fake-reliability-7f3a9c1e55",
    "TWILIO_AUTH_TOKEN": "fake-twilio-token-5b2e90aa31",
    "FCM_ACCESS_TOKEN": "fake-fcm-token-91cd77e0b4",
    "CRMFLOW_WEBHOOK_SECRET": "fake-webhook-secret-44aa18f2c3",
    "CRMFLOW_API_TOKEN": "fake-api-token-0c0c6d3e9f",
    "CRMFLOW_BANNER_PUSH_TOKEN": "fake-banner-push-token-6d1f0b",
    "CRMFLOW_TASKS_PUSH_TOKEN": "fake-tasks-push-token-a83c52",
}
CHANNEL_STEPS = {"email": "hello_email", "sms": "hello_sms", "push": "hello_push", "webhook": "hello_webhook"}
TEMPLATES = {
    "email": '{subject: "Hi {{ first_name }}", body: "Welcome, {{ first_name }}!"}',
    "sms": '{text: "Hi {{ first_name }}, welcome"}',
    "push": '{title: "Hi {{ first_name }}", body: "Welcome!"}',
    "webhook": '{body: "welcome {{ first_name }}"}',
}


@dataclass
class World:
    """Paths of one dispatch world (all under a test's tmp_path)."""

    warehouse: str
    marketing_dir: str
    outbox_dir: str
    channels: list[str]
    users: int

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> World:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def journey_yaml(jid: str, channel: str, priority: int = 100) -> str:
    return textwrap.dedent(f"""\
        id: {jid}
        name: {jid}
        owner: reliability@example.com
        priority: {priority}
        trigger: {{type: segment, family: lifecycle, segment: new}}
        templates:
          hello:
            channel: {channel}
            locales:
              en-US: {TEMPLATES[channel]}
        steps:
          - {{id: {CHANNEL_STEPS[channel]}, type: send, channel: {channel}, template: hello}}
        """)


def policies_yaml(batch_size: int = 5, caps: str = "[]", quiet_channels: str = "[]",
                  delivery: str = "{}") -> str:
    return textwrap.dedent(f"""\
        default_timezone: UTC
        quiet_hours: {{start: "21:00", end: "08:00", channels: {quiet_channels}}}
        frequency_caps: {caps}
        dispatch: {{batch_size: {batch_size}, max_per_run: 100000, delivery: {delivery}}}
        """)


def channels_yaml(retry_on_timeout: bool = False, timeout_s: float = 5.0, backoff_base_s: float = 0.02,
                  max_concurrency: int = 4, max_attempts: int = 4) -> str:
    policy = (f"retry_on_timeout: {str(retry_on_timeout).lower()}, timeout_s: {timeout_s}, "
              f"backoff_base_s: {backoff_base_s}, max_concurrency: {max_concurrency}, "
              f"max_attempts: {max_attempts}, max_retry_after_s: 5")
    return textwrap.dedent(f"""\
        environments:
          {ENVIRONMENT}:
            email: {{provider: sendgrid, from_email: crm@example.com, {policy}}}
            sms: {{provider: twilio, status_callback_url: "http://127.0.0.1:9/twilio/status", {policy}}}
            push: {{provider: fcm, {policy}}}
            webhook: {{provider: outbox}}
        """)


def user_profile(i: int, **overrides: Any) -> dict[str, Any]:
    from helpers_journeys import profile

    uid = f"u{i:06d}"
    return profile(uid, email=f"person{i}@example.org", phone=f"+49151{i:08d}", push_token=f"tok-{i:08d}",
                   **overrides)


def build_world(root: Path, users: int, channels: tuple[str, ...] = ("email", "sms"), batch_size: int = 5,
                policies: str | None = None, channels_config: str | None = None,
                profiles: list[dict[str, Any]] | None = None) -> World:
    """Customer tables (no dbt), one journey per channel, policies and channels.yaml; ticks every
    journey once at AS_OF so the ledger holds `users` planned messages per channel."""
    from crmflow.warehouse import connect

    marketing = root / "marketing"
    (marketing / "journeys").mkdir(parents=True, exist_ok=True)
    for channel in channels:
        (marketing / "journeys" / f"rel_{channel}.yaml").write_text(journey_yaml(f"rel_{channel}", channel),
                                                                    encoding="utf-8")
    (marketing / "policies.yaml").write_text(policies or policies_yaml(batch_size), encoding="utf-8")
    (marketing / "channels.yaml").write_text(channels_config or channels_yaml(), encoding="utf-8")
    world = World(str(root / "warehouse.duckdb"), str(marketing), str(root / "outbox"), list(channels), users)
    rows = profiles if profiles is not None else [user_profile(i) for i in range(users)]
    with connect(world.warehouse) as con:
        seed_new_users_and_tick(con, marketing, channels, rows)
    return world


def seed_new_users_and_tick(wh: Any, marketing: Path, channels: tuple[str, ...] | list[str],
                            rows: list[dict[str, Any]]) -> None:
    """The customer tables of `rows` (every user lifecycle 'new' since an hour before AS_OF), then
    one tick at AS_OF of each marketing/journeys/rel_<channel>.yaml: a planned message per user and
    channel. `wh`: a Warehouse or a DuckDB connection (build_world, build_dispatch_world, the
    two-backend dispatch test)."""
    from helpers_journeys import make_customer_tables

    from crmflow.journeys.runner import JourneyConfig, tick_journey_file

    make_customer_tables(wh, customer_profile=rows, customer_segment_history=[
        {"user_id": r["user_id"], "segment_family": "lifecycle", "segment": "new",
         "valid_from": AS_OF - timedelta(hours=1), "valid_to": None} for r in rows])
    config = JourneyConfig(marketing)
    for channel in channels:
        tick_journey_file(wh, config, marketing / "journeys" / f"rel_{channel}.yaml", AS_OF)


# ---- local providers ---------------------------------------------------------------------------
def request_keys(path: str, body: bytes) -> list[str]:
    """The ledger message keys one provider request carries (SendGrid custom_args, Twilio
    StatusCallback query, FCM data)."""
    route = urlsplit(path).path
    if route == "/v3/mail/send":
        return [p.get("custom_args", {}).get("message_key", "") for p in json.loads(body)["personalizations"]]
    if route.endswith("/Messages.json"):
        callback = parse_qs(body.decode()).get("StatusCallback", [""])[0]
        return [parse_qs(urlsplit(callback).query).get("message_key", [""])[0]]
    if route.endswith("/messages:send"):
        return [json.loads(body)["message"].get("data", {}).get("message_key", "")]
    return []


@dataclass
class FaultLog:
    at: float  # time.monotonic() at the mock when the request arrived
    keys: list[str]
    action: str  # ok | 429 | 500 | 503 | reset | hang | drop | stall


class FaultScript:
    """Stands in for MockProvider.script: every request gets an action drawn from a seeded RNG
    (`rate` of them faults) and is logged with its arrival time and message keys."""

    def __init__(self, provider: Any, seed: int, rate: float = 0.3, hang_s: float = 0.0,
                 faults: tuple[str, ...] = ("429", "500", "503", "reset", "hang"), delay_s: float = 0.0):
        self.provider = provider
        self.rng = random.Random(seed)
        self.rate = rate
        self.hang_s = hang_s
        self.faults = faults
        self.delay_s = delay_s  # every accepted request takes this long (widens the kill window)
        self.log: list[FaultLog] = []

    def __bool__(self) -> bool:
        return True

    def popleft(self) -> Any:
        from connectors.channels.mock_server import Action

        # Called under the provider's lock right after the request was recorded.
        last = self.provider.requests[-1]
        kind = self.rng.choice(self.faults) if self.rng.random() < self.rate else "ok"
        self.log.append(FaultLog(time.monotonic(), request_keys(last.path, last.body), kind))
        if kind == "429":
            return Action.error(429, {"errors": [{"message": "rate limited"}], "message": "Too Many Requests"},
                                Retry_After="0.2")
        if kind in ("500", "503"):
            return Action.error(int(kind), {"errors": [{"message": f"upstream {kind}"}], "message": kind})
        if kind == "reset":
            return Action("reset")
        if kind == "hang":
            return Action("hang", delay_s=self.hang_s)
        if kind == "drop":  # accepted, then the connection is reset before the answer
            return Action("drop")
        if kind == "stall":  # not accepted, no answer until after the client's timeout
            return Action("stall", delay_s=self.hang_s)
        return Action("hang", delay_s=self.delay_s) if self.delay_s else Action()


@dataclass
class Providers:
    """One local counting provider per channel (SendGrid, Twilio, FCM) and the environment the
    dispatcher needs to reach them with fake credentials."""

    email: Any
    sms: Any
    push: Any
    scripts: dict[str, FaultScript] = field(default_factory=dict)

    def all(self) -> dict[str, Any]:
        return {"email": self.email, "sms": self.sms, "push": self.push}

    def env(self) -> dict[str, str]:
        return {
            **FAKE_SECRETS, "CRMFLOW_ENV": ENVIRONMENT,
            "SENDGRID_HOST": self.email.url,
            "TWILIO_ACCOUNT_SID": "ACfakefakefakefakefakefakefakefake", "TWILIO_FROM": "+15005550006",
            "TWILIO_API_BASE": self.sms.url,
            "FCM_PROJECT_ID": "fake-project", "FCM_API_BASE": self.push.url,
        }

    def accepted(self) -> dict[str, int]:
        """message key -> times any provider accepted it."""
        out: dict[str, int] = {}
        for provider in self.all().values():
            for key, count in provider.accepted.items():
                out[key] = out.get(key, 0) + count
        return out


class providers_running:  # noqa: N801 - used as a context manager like open()
    def __init__(self, seed: int = 0, rate: float = 0.0, hang_s: float = 0.0, delay_s: float = 0.0,
                 faults: tuple[str, ...] = ("429", "500", "503", "reset", "hang")):
        from connectors.channels.mock_server import MockProvider

        self.providers = Providers(
            MockProvider(expected_auth=f"Bearer {FAKE_SECRETS['SENDGRID_API_KEY']}"),
            MockProvider(), MockProvider(expected_auth=f"Bearer {FAKE_SECRETS['FCM_ACCESS_TOKEN']}"))
        for i, (name, provider) in enumerate(self.providers.all().items()):
            script = FaultScript(provider, seed * 31 + i, rate, hang_s, faults, delay_s)
            provider.script = script
            self.providers.scripts[name] = script

    def __enter__(self) -> Providers:
        for provider in self.providers.all().values():
            provider.__enter__()
        return self.providers

    def __exit__(self, *exc: object) -> None:
        for provider in self.providers.all().values():
            provider.__exit__(*exc)


# ---- the dispatcher in a subprocess ------------------------------------------------------------
@dataclass
class DispatcherRun:
    returncode: int
    stdout: str
    stderr: str
    killed: bool

    @property
    def report(self) -> dict[str, Any] | None:
        for line in self.stdout.splitlines():
            if line.startswith("DONE "):
                return json.loads(line[5:])
        return None


def start_dispatcher(world_file: Path, as_of: datetime, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE), "dispatch", str(world_file), as_of.isoformat()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(HERE.parent.parent),
        env={**os.environ, **env, "PYTHONPATH": str(HERE.parent)},
    )


def run_dispatcher(world_file: Path, as_of: datetime, env: dict[str, str],
                   kill_when: Callable[[], bool] | None = None, timeout: float = 120) -> DispatcherRun:
    """Run one dispatch; with kill_when, SIGKILL it as soon as kill_when() is true (polled every
    2 ms once it is ready to send, i.e. imports done), unless it finished first."""
    proc = start_dispatcher(world_file, as_of, env)
    killed = False
    if kill_when is not None:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # "READY": imports and channel setup are done
        if ready.startswith("READY"):
            deadline = time.monotonic() + timeout
            while proc.poll() is None and not kill_when() and time.monotonic() < deadline:
                time.sleep(0.002)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed = True
        out, err = proc.communicate(timeout=timeout)
        out = ready + out
    else:
        out, err = proc.communicate(timeout=timeout)
    return DispatcherRun(proc.returncode, out, err, killed)


def ledger_rows(warehouse: str) -> list[dict[str, Any]]:
    from crmflow.warehouse import connect

    with connect(warehouse) as con:
        cur = con.execute("select message_key, channel, state, reason, error, attempts from send_ledger")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


FINAL_STATES = {"sent", "failed", "suppressed", "capped", "skipped", "unknown"}


def _dispatch_main(world_file: str, as_of_text: str) -> int:
    from connectors.channels.config import load_channels_config
    from connectors.channels.factory import build_channels
    from crmflow.journeys.dispatch import DispatchLockedError
    from crmflow.journeys.runner import JourneyConfig, dispatch_all
    from crmflow.settings import parse_as_of
    from crmflow.warehouse import connect

    world = World.load(world_file)
    marketing = Path(world.marketing_dir)
    # What JourneyChannelsResource.channels() does, without importing Dagster (saves a second per run).
    channels = build_channels(load_channels_config(marketing / "channels.yaml"), ENVIRONMENT, world.outbox_dir)
    as_of = parse_as_of(as_of_text)
    print("READY", flush=True)
    try:
        with connect(world.warehouse) as con:
            report = dispatch_all(con, JourneyConfig(marketing), as_of, channels, Path(world.warehouse))
    except DispatchLockedError as exc:
        print(f"LOCKED {exc}", flush=True)
        return 3
    print("DONE " + json.dumps(report.metadata(), default=str), flush=True)
    return 0


def _hold_lock_main(warehouse: str, seconds: str) -> int:
    """Hold the dispatch lock (as a running dispatcher does) for `seconds`."""
    from crmflow.journeys.dispatch import dispatch_lock, lock_path_for

    with dispatch_lock(lock_path_for(warehouse)):
        print("LOCKED-BY-ME", flush=True)
        threading.Event().wait(float(seconds))
    return 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "dispatch":
        sys.exit(_dispatch_main(*args))
    if command == "hold-lock":
        sys.exit(_hold_lock_main(*args))
    raise SystemExit(f"unknown command {command!r}")


def scan_text_columns(con: Any, needles: list[str], exact: list[str] = (), skip: tuple[str, ...] = ()) -> list[str]:
    """Every (table.column) of every table whose text holds one of `needles` (substring) or equals one
    of `exact`; one SQL pass per column, over all rows."""
    hits = []
    cols = con.execute("""select table_name, column_name from information_schema.columns
        where table_schema = current_schema() and (data_type like 'VARCHAR%' or data_type = 'JSON')""").fetchall()
    for table, column in cols:
        if table in skip:
            continue
        found = con.execute(
            f'select count(*) from "{table}" where list_has_any([cast("{column}" as varchar)], $exact) '
            f'or regexp_matches(cast("{column}" as varchar), $pattern)',
            {"exact": list(exact) or [""], "pattern": "|".join(_escape(n) for n in needles) or "$^"},
        ).fetchone()[0]
        if found:
            hits.append(f"{table}.{column}")
    return hits


def _escape(text: str) -> str:
    return "".join(ch if ch.isalnum() else "\\" + ch for ch in text)


# ---- comparing one table between backends ----------------------------------------------------------
def table_rows(warehouse: Any, relation: str, columns: list[str] | None = None) -> list[tuple[Any, ...]]:
    """A table's rows (or some columns of them) as sorted tuples, comparable between engines:
    timestamps as UTC instants, floats to 1e-9."""
    table = warehouse.fetch_arrow(relation if columns is None else f"select {', '.join(columns)} from {relation}")

    def normal(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        if isinstance(value, float):
            return round(value, 9)
        return value

    return sorted((tuple(normal(v) for v in row.values()) for row in table.to_pylist()), key=repr)
