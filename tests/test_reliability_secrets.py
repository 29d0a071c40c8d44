"""Secrets and PII in the open: with fake keys set, Dagster runs of the journey assets against local
providers (with faults, so warnings get logged), and of the API pull, banner/task pushes and signed
webhooks against a local server that checks each credential, leave no secret in captured
stdout/stderr, Python logging, Dagster event metadata or stored event log, any file under the run's
folders (outbox, exports, landing, Dagster storage; Parquet/HTML/CSV/JSONL/SQLite read as bytes), a
privacy export, or any text column of any warehouse table; emails and phone numbers appear in logs
only masked."""

import logging
import os
import shutil
import time
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
    # every file, whatever its suffix (.parquet, .html, .duckdb included), read as bytes
    files = "\n".join(p.read_bytes().decode("utf-8", errors="replace") for p in tmp_path.rglob("*") if p.is_file())
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


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file under root (outputs, exports, landing, Dagster storage), as bytes: Parquet and
    SQLite are binary, and a secret would sit in them as plain UTF-8."""
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_no_secret_leaks_from_api_pull_pushes_and_signed_webhooks(tmp_path: Path, monkeypatch, caplog,
                                                                   capfd) -> None:
    """The other secret-using paths in one Dagster run on a persistent temp instance: the API pull
    (CRMFLOW_API_TOKEN), the banner and task pushes (CRMFLOW_BANNER_PUSH_TOKEN / _TASKS_), whose first
    attempt fails so warnings are logged, and signed outbound webhooks (CRMFLOW_WEBHOOK_SECRET). The
    local server checks each credential, so "not found" below means the secret was really used."""
    import json

    from helpers_banners_tasks import make_lifecycle, make_value_tier
    from helpers_ingest import order, registration
    from helpers_reliability import channels_yaml, user_profile
    from pytest_httpserver import HTTPServer
    from werkzeug import Request, Response

    from assets.api_pull import api_pull
    from assets.banners import build_banner_assets
    from assets.tasks import build_task_assets, task_outcomes
    from connectors.channels.webhook import SIGNATURE_HEADER, verify_webhook
    from orchestration.resources_banners_tasks import ExportPushResource
    from orchestration.resources_sources import api_source_from_env

    repo = Path(__file__).resolve().parent.parent
    seen: dict[str, list[bool]] = {"api": [], "banners": [], "tasks": [], "hook": []}

    def bearer_ok(request: Request, name: str) -> bool:
        return request.headers.get("Authorization") == f"Bearer {FAKE_SECRETS[name]}"

    def api(request: Request) -> Response:
        seen["api"].append(bearer_ok(request, "CRMFLOW_API_TOKEN"))
        data = [registration("u900001", email="api-person@example.org")] if request.path.endswith(
            "registrations") else [order("o-api-1", user_id="u900001")]
        return Response(json.dumps({"data": data, "next_cursor": None}), content_type="application/json")

    def push(kind: str, token: str):
        def handler(request: Request) -> Response:
            seen[kind].append(bearer_ok(request, token))
            # the first push fails (one attempt allowed): the warning path runs and the rows stay pending
            return Response("busy", status=503) if len(seen[kind]) == 1 else Response("ok")
        return handler

    def hook(request: Request) -> Response:
        seen["hook"].append(verify_webhook(FAKE_SECRETS["CRMFLOW_WEBHOOK_SECRET"], request.get_data(),
                                           request.headers.get(SIGNATURE_HEADER, ""), now=int(time.time())))
        return Response("ok")

    profiles = [user_profile(i, locale="de-DE", country="DE", revenue=900, order_count=5) for i in range(USERS)]
    world = build_world(tmp_path / "world", USERS, ("webhook",), profiles=profiles, channels_config=channels_yaml()
                        .replace("webhook: {provider: outbox}", "webhook: {provider: webhook, backoff_base_s: 0.01}"))
    with connect(world.warehouse) as con:  # a silent high-value customer: the task rule recalls them
        make_lifecycle(con, {"u000001": "silent"})
        make_value_tier(con, [{"user_id": "u000001", "customer_type": "individual", "value_tier": "high"}])
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/api/registrations").respond_with_handler(api)
    server.expect_request("/api/orders").respond_with_handler(api)
    server.expect_request("/banners").respond_with_handler(push("banners", "CRMFLOW_BANNER_PUSH_TOKEN"))
    server.expect_request("/tasks").respond_with_handler(push("tasks", "CRMFLOW_TASKS_PUSH_TOKEN"))
    server.expect_request("/hook").respond_with_handler(hook)
    server.start()
    for key, value in {**FAKE_SECRETS, "CRMFLOW_ENV": "reliability", "CRMFLOW_API_BASE_URL": server.url_for("/api"),
                       "CRMFLOW_BANNER_PUSH_URL": server.url_for("/banners"),
                       "CRMFLOW_TASKS_PUSH_URL": server.url_for("/tasks"),
                       "CRMFLOW_WEBHOOK_URL": server.url_for("/hook")}.items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.DEBUG)
    marketing = Path(world.marketing_dir)
    for name in ("banners.yaml", "operators.yaml", "task_rules.yaml"):  # the shipped banner and task config
        shutil.copy(repo / "marketing" / name, marketing / name)
    exports, landing, dagster_home = tmp_path / "exports", tmp_path / "landing", tmp_path / "dagster_home"
    try:
        dagster_home.mkdir()
        with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
            result = dg.materialize(
                [api_pull, *build_banner_assets([]), task_outcomes, *build_task_assets([]),
                 *build_journey_assets(marketing / "journeys", mart_deps=[])],
                resources={
                    "warehouse": WarehouseResource(path=world.warehouse),
                    "settings": CrmflowSettingsResource(
                        landing_dir=str(landing), outbox_dir=world.outbox_dir, export_dir=str(exports),
                        marketing_dir=world.marketing_dir),
                    # every secret reaches its resource only as dg.EnvVar / through the environment
                    "api_source": api_source_from_env(),
                    "banner_push": ExportPushResource(url=dg.EnvVar("CRMFLOW_BANNER_PUSH_URL"),
                                                      token=dg.EnvVar("CRMFLOW_BANNER_PUSH_TOKEN"), max_attempts=1),
                    "tasks_push": ExportPushResource(url=dg.EnvVar("CRMFLOW_TASKS_PUSH_URL"),
                                                     token=dg.EnvVar("CRMFLOW_TASKS_PUSH_TOKEN"), max_attempts=1),
                    "journey_channels": JourneyChannelsResource(outbox_dir=world.outbox_dir,
                                                                channels_file=str(marketing / "channels.yaml"),
                                                                environment="reliability"),
                },
                tags=as_of_tags(AS_OF + timedelta(minutes=1)), instance=instance,
            )
            # the run's whole event log as stored (user log messages included), not only the result
            events = event_text(result) + "\n".join(
                repr(entry) for entry in instance.all_logs(result.run_id))
    finally:
        server.clear()
        server.stop()
    assert result.success
    # each credential was presented and checked by the local server
    assert seen["api"] and all(seen["api"]), seen
    assert seen["banners"] == [True] and seen["tasks"] == [True], seen
    assert len(seen["hook"]) == USERS and all(seen["hook"]), seen
    outputs = file_bytes(tmp_path)
    suffixes = {Path(p).suffix for p in outputs}
    assert {".parquet", ".csv", ".jsonl"} <= suffixes and any(p.startswith(str(dagster_home)) for p in outputs)
    with connect(world.warehouse) as con:
        table_hits = scan_text_columns(con, list(FAKE_SECRETS.values()))
        export_text = repr(export_person(con, "u000001", AS_OF, exports, Path(world.outbox_dir)))
    out, err = capfd.readouterr()
    logs = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "push kept for the next run" in events  # the failure path ran and logged
    places = {"stdout": out, "stderr": err, "logging": logs, "dagster events": events, "privacy export": export_text}
    for name, secret in FAKE_SECRETS.items():
        for place, text in places.items():
            assert secret not in text, f"{name} leaked into {place}"
        leaked = [p for p, data in outputs.items() if secret.encode() in data]
        assert leaked == [], f"{name} leaked into {leaked}"
    assert table_hits == [], table_hits
