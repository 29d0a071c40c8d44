"""Dispatch on DuckDB and on PostgreSQL, against the same local provider servers (SendGrid, Twilio,
FCM on 127.0.0.1 with seeded 429/500/503 faults and retries): the same planned ledger (opt-outs, a
missing address, an earlier suppression, rows a crashed run left in 'sending') ends in the same rows,
states, reasons, errors and attempts, with the same suppressions and decisions, and each provider
accepts every message at most once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from helpers_postgres import postgres_url, postgres_warehouse  # noqa: F401 - fixtures
from helpers_reliability import (
    AS_OF,
    ENVIRONMENT,
    channels_yaml,
    journey_yaml,
    policies_yaml,
    providers_running,
    seed_new_users_and_tick,
    table_rows,
    user_profile,
)

from connectors.channels.config import load_channels_config
from connectors.channels.factory import build_channels
from crmflow.journeys.runner import JourneyConfig, dispatch_all
from crmflow.warehouse import open_warehouse

CHANNELS = ("email", "sms", "push")
USERS = 24
LEDGER = ["message_key", "journey_id", "user_id", "channel", "state", "reason", "error", "attempts",
          "send_after", "sent_at", "content_ref is not null as rendered"]


def marketing(root: Path) -> Path:
    folder = root / "marketing"
    (folder / "journeys").mkdir(parents=True)
    for channel in CHANNELS:
        (folder / "journeys" / f"rel_{channel}.yaml").write_text(journey_yaml(f"rel_{channel}", channel))
    (folder / "policies.yaml").write_text(policies_yaml(batch_size=5, delivery="{push: at_least_once}"))
    # one request at a time: the seeded faults hit the same requests on every run
    (folder / "channels.yaml").write_text(channels_yaml(max_concurrency=1, max_attempts=3))
    return folder


def profiles() -> list[dict[str, Any]]:
    rows = [user_profile(i) for i in range(USERS)]
    rows[1] = user_profile(1, email_opt_in=False, sms_opt_in=False)
    rows[2] = {**rows[2], "phone": None}
    return rows


def dispatch_on(wh, root: Path, seed: int) -> dict[str, Any]:
    folder = marketing(root)
    rows = profiles()
    seed_new_users_and_tick(wh, folder, CHANNELS, rows)
    config = JourneyConfig(folder)
    wh.write_arrow(pa.table({"channel": ["email"], "address": ["person3@example.org"], "user_id": ["u000003"],
                             "reason": ["bounce"], "source": ["sendgrid"],
                             "suppressed_at": pa.array([AS_OF], pa.timestamp("us", tz="UTC"))}), "suppression_list")
    # a crashed run claimed these and never recorded them: email becomes unknown, push is requeued
    wh.execute("""update send_ledger set state = 'sending', attempts = 1
                  where user_id in ('u000005', 'u000006') and channel in ('email', 'push')""")
    with providers_running(seed=seed, rate=0.3, faults=("429", "500", "503")) as providers:
        channels = build_channels(load_channels_config(folder / "channels.yaml"), ENVIRONMENT, root / "outbox",
                                  environ=providers.env(), sleep=lambda _s: None)
        report = dispatch_all(wh, config, AS_OF + timedelta(minutes=5), channels, None)
        accepted = providers.accepted()
    return {
        "report": report.metadata(),
        "unknown": sorted(r["message_key"] for r in report.reconciled_unknown),
        "accepted": accepted,
        "ledger": table_rows(wh, "send_ledger", LEDGER),
        "suppression_list": table_rows(wh, "suppression_list"),
        "decisions": table_rows(wh, "journey_decisions", ["decision_key", "message_key", "decision", "reason"]),
    }


def test_dispatch_is_the_same_on_duckdb_and_postgres(tmp_path, postgres_warehouse):  # noqa: F811
    with open_warehouse(tmp_path / "duck" / "w.duckdb") as duck:
        on_duckdb = dispatch_on(duck, tmp_path / "duck", seed=7)
    on_postgres = dispatch_on(postgres_warehouse, tmp_path / "pg", seed=7)
    states = {}
    for row in on_duckdb["ledger"]:
        states[row[4]] = states.get(row[4], 0) + 1
    report = on_duckdb["report"]
    assert len(on_duckdb["ledger"]) == USERS * len(CHANNELS)
    assert report["reconciled_unknown"] == 2 and report["requeued_after_crash"] == 2
    assert states.get("unknown") == 2 and states.get("suppressed", 0) >= 3 and states.get("skipped") == 1
    assert states["sent"] + states.get("failed", 0) == report["claimed"] and states["sent"] > 0
    assert max(row[7] for row in on_duckdb["ledger"]) > 1  # the faults made some messages retry
    assert all(count == 1 for count in on_duckdb["accepted"].values())  # never sent twice
    for key, value in on_duckdb.items():
        assert on_postgres[key] == value, key
