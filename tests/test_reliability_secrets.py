"""Secrets and PII in the open: with fake provider keys set, a Dagster run of the journey assets
against local providers (with faults, so warnings get logged) leaves no secret in captured
stdout/stderr, Python logging, Dagster event metadata, outbox or export files, or any text column
of any warehouse table; emails and phone numbers appear in logs only masked."""

import logging
import os
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
from helpers_reliability import AS_OF, FAKE_SECRETS, build_world, providers_running, scan_text_columns

from assets.journeys import build_journey_assets
from crmflow.privacy import export_person
from crmflow.warehouse import connect
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_journeys import JourneyChannelsResource

USERS = 8


def event_text(result: dg.ExecuteInProcessResult) -> str:
    """Every event of the run, metadata included, as text."""
    parts = []
    for event in result.all_events:
        parts.append(repr(event))
        data = event.event_specific_data
        for attr in ("materialization", "asset_check_evaluation"):
            inner = getattr(data, attr, None)
            if inner is not None:
                parts.append(repr(getattr(inner, "metadata", {})))
    return "\n".join(parts)


def test_no_secret_leaks_anywhere_and_addresses_are_masked(tmp_path: Path, monkeypatch, caplog, capfd) -> None:
    world = build_world(tmp_path, USERS, ("email", "sms", "push"))
    exports = tmp_path / "exports"
    caplog.set_level(logging.DEBUG)
    with providers_running(seed=5, rate=0.5, faults=("500", "503", "reset")) as providers:
        for key, value in providers.env().items():
            monkeypatch.setenv(key, value)
        marketing = Path(world.marketing_dir)
        result = dg.materialize(
            build_journey_assets(marketing / "journeys", mart_deps=[]),
            resources={
                "warehouse": WarehouseResource(path=world.warehouse),
                "settings": CrmflowSettingsResource(landing_dir=str(tmp_path), outbox_dir=world.outbox_dir,
                                                    export_dir=str(exports), marketing_dir=world.marketing_dir),
                # secrets reach the channels only through the environment (the factory reads it)
                "journey_channels": JourneyChannelsResource(outbox_dir=world.outbox_dir,
                                                            channels_file=str(marketing / "channels.yaml"),
                                                            environment="reliability"),
            },
            tags=as_of_tags(AS_OF + timedelta(minutes=1)),
        )
        assert result.success
        accepted = providers.accepted()
        # the keys were really used: the providers saw them (and accepted the sends)
        sendgrid_auth = {r.headers.get("Authorization") for r in providers.email.requests}
    assert sendgrid_auth == {f"Bearer {FAKE_SECRETS['SENDGRID_API_KEY']}"} and len(accepted) > USERS
    with connect(world.warehouse) as con:
        export_text = repr(export_person(con, "u000001", AS_OF, exports))
        table_hits = scan_text_columns(con, list(FAKE_SECRETS.values()))
    out, err = capfd.readouterr()
    logs = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    files = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                      for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".csv", ".log"))
    places = {"stdout": out, "stderr": err, "logging": logs, "dagster events": event_text(result),
              "files": files, "privacy export": export_text}
    for name, secret in FAKE_SECRETS.items():
        for place, text in places.items():
            assert secret not in text, f"{name} leaked into {place}"
    assert table_hits == [], table_hits
    # channel warnings were logged (faults) and name people only by masked address
    assert any("failed" in r.getMessage() for r in caplog.records if r.name.startswith("crmflow.channels"))
    for i in range(USERS):
        assert f"person{i}@example.org" not in logs and f"+49151{i:08d}" not in logs
        assert f"person{i}@example.org" not in event_text(result)


def test_secret_values_never_in_resource_config_or_repr() -> None:
    """Secrets are read from the environment when channels are built, not stored in resource config."""
    resource = JourneyChannelsResource(outbox_dir="/tmp/x", channels_file="marketing/channels.yaml")
    text = repr(resource) + repr(resource.model_dump())
    assert not any(value in text for value in FAKE_SECRETS.values())
    assert "SENDGRID_API_KEY" not in os.environ or os.environ["SENDGRID_API_KEY"] not in text
    duckdb.connect().close()
