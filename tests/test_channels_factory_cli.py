"""Channel config, factory fallbacks, `crmflow channels list/check` against local servers, the rate
limiter (injectable clock + one short real-time run) and the webhook receiver."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers_channels import new_p256_key, sendgrid_headers
from typer.testing import CliRunner

from connectors.channels.config import ChannelsConfigError, load_channels_config
from connectors.channels.factory import build_channels, plan_channels
from connectors.channels.fcm import FcmChannel
from connectors.channels.mock_server import MockProvider
from connectors.channels.outbox import OutboxChannel
from connectors.channels.ratelimit import TokenBucket
from connectors.channels.sendgrid import SendGridChannel
from connectors.channels.twilio import TwilioChannel
from connectors.channels.webhook import WebhookChannel
from connectors.delivery.receiver import ReceiverConfig, WebhookReceiver
from connectors.delivery.signatures import TWILIO_SIGNATURE_HEADER, twilio_signature
from orchestration.cli import app

REPO_CONFIG = Path(__file__).resolve().parent.parent / "marketing" / "channels.yaml"
SECRETS = {"SENDGRID_API_KEY": "SG.secret-value", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
           "TWILIO_AUTH_TOKEN": "tw-secret-value", "TWILIO_FROM": "+15005550006", "FCM_PROJECT_ID": "p1",
           "FCM_ACCESS_TOKEN": "ya29.secret-value", "CRMFLOW_WEBHOOK_SECRET": "wh-secret-value",
           "CRMFLOW_WEBHOOK_URL": "http://127.0.0.1:9/hook"}


def test_repo_config_parses_and_dev_is_all_outbox(tmp_path):
    config = load_channels_config(REPO_CONFIG)
    assert set(config.environments) >= {"dev", "staging", "prod"}
    channels = build_channels(config, "dev", tmp_path, environ=SECRETS)
    assert all(isinstance(c, OutboxChannel) for c in channels.values())


def test_prod_with_credentials_builds_real_channels(tmp_path):
    channels = build_channels(load_channels_config(REPO_CONFIG), "prod", tmp_path, environ=SECRETS)
    assert isinstance(channels["email"], SendGridChannel) and isinstance(channels["sms"], TwilioChannel)
    assert isinstance(channels["push"], FcmChannel) and isinstance(channels["webhook"], WebhookChannel)


def test_missing_credentials_fall_back_to_outbox_with_warning_without_values(tmp_path, caplog):
    partial = {k: v for k, v in SECRETS.items() if not k.startswith("TWILIO")}
    channels = build_channels(load_channels_config(REPO_CONFIG), "prod", tmp_path, environ=partial)
    assert isinstance(channels["sms"], OutboxChannel) and isinstance(channels["email"], SendGridChannel)
    assert "TWILIO_ACCOUNT_SID" in caplog.text
    assert not any(v in caplog.text for v in SECRETS.values())
    plans = {p.channel: p for p in plan_channels(load_channels_config(REPO_CONFIG), "prod", partial)}
    assert plans["sms"].effective == "outbox" and plans["email"].effective == "sendgrid"


def test_config_typos_are_errors(tmp_path):
    path = tmp_path / "channels.yaml"
    path.write_text("environments:\n  dev:\n    email: {provider: sendgrid, from_email: a@b.co, rate_limt_per_s: 5}\n")
    with pytest.raises(ChannelsConfigError, match="rate_limt_per_s"):
        load_channels_config(path)
    path.write_text("environments:\n  dev:\n    sms: {provider: sendgrid, from_email: a@b.co}\n")
    with pytest.raises(ChannelsConfigError, match="sms"):
        load_channels_config(path)
    with pytest.raises(KeyError, match="known: dev"):
        load_channels_config(REPO_CONFIG.parent / "nope.yaml").for_environment("prod")


def test_channels_check_against_local_servers(tmp_path, monkeypatch):
    with MockProvider() as provider:
        env = {**SECRETS, "SENDGRID_HOST": provider.url, "TWILIO_API_BASE": provider.url,
               "FCM_API_BASE": provider.url, "CRMFLOW_WEBHOOK_URL": provider.url + "/hook",
               "CRMFLOW_OUTBOX_DIR": str(tmp_path)}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        runner = CliRunner()
        result = runner.invoke(app, ["channels", "check", "--env", "prod", "--config", str(REPO_CONFIG)])
        assert result.exit_code == 0, result.output
        assert result.output.count(": OK") == 4
        methods = sorted((r.method, r.path.split("?")[0]) for r in provider.requests)
        assert ("GET", "/v3/scopes") in methods and ("HEAD", "/hook") in methods
        assert ("GET", f"/2010-04-01/Accounts/{SECRETS['TWILIO_ACCOUNT_SID']}.json") in methods
        assert not provider.accepted  # nothing was sent
        assert all(v not in result.output for v in SECRETS.values())
        monkeypatch.delenv("FCM_ACCESS_TOKEN")
        result = runner.invoke(app, ["channels", "check", "--env", "prod", "--config", str(REPO_CONFIG)])
        assert result.exit_code == 1 and "FAIL missing FCM_ACCESS_TOKEN" in result.output
        listing = runner.invoke(app, ["channels", "list", "--env", "prod", "--config", str(REPO_CONFIG)])
        assert "effective=outbox" in listing.output and "effective=sendgrid" in listing.output


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_token_bucket_is_exact_with_a_fake_clock():
    clock = FakeClock()
    bucket = TokenBucket(50, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(1001):
        bucket.acquire()
    assert clock.now == pytest.approx(20.0)  # 1000 intervals of 20 ms
    clock = FakeClock()
    bursty = TokenBucket(10, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bursty.acquire()
    assert clock.now == 0.0  # the burst is free
    bursty.acquire()
    assert clock.now == pytest.approx(0.1)
    bursty.defer(2.0)  # a provider 429 with Retry-After pushes everyone back
    bursty.acquire()
    assert clock.now >= 2.1


def test_token_bucket_real_time_within_5_percent():
    bucket = TokenBucket(50, burst=1)
    started = time.perf_counter()
    for _ in range(31):
        bucket.acquire()
    rate = 30 / (time.perf_counter() - started)
    assert 47.5 <= rate <= 52.5


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_receiver_stores_verified_and_rejects_the_rest(tmp_path):
    private, public_b64 = new_p256_key()
    config = ReceiverConfig(tmp_path, public_base_url="https://hooks.example.com", sendgrid_public_key=public_b64,
                            twilio_auth_token="tw-token")
    receiver = WebhookReceiver(config).start()
    try:
        body = json.dumps([{"event": "delivered", "sg_event_id": "e1", "timestamp": 1795000000}]) + "\r\n"
        assert _post(receiver.url + "/sendgrid/events", body.encode(), sendgrid_headers(private, body)) == 200
        assert _post(receiver.url + "/sendgrid/events", body.replace("delivered", "bounce").encode(),
                     sendgrid_headers(private, body)) == 403
        assert _post(receiver.url + "/sendgrid/events", body.encode(), {}) == 403
        form = "MessageSid=SM1&MessageStatus=delivered&To=%2B15005550006"
        signature = twilio_signature("tw-token", "https://hooks.example.com/twilio/status?message_key=k1",
                                     [("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", "+15005550006")])
        headers = {TWILIO_SIGNATURE_HEADER: signature, "Content-Type": "application/x-www-form-urlencoded"}
        assert _post(receiver.url + "/twilio/status?message_key=k1", form.encode(), headers) == 200
        assert _post(receiver.url + "/twilio/status?message_key=k2", form.encode(), headers) == 403
        assert _post(receiver.url + "/elsewhere", b"{}", {}) == 404
    finally:
        receiver.stop()
    stored = sorted(p.relative_to(tmp_path).parts[1] for p in (tmp_path / "delivery_events").rglob("*.json*"))
    assert stored == ["sendgrid", "twilio"]
    line = next((tmp_path / "delivery_events" / "twilio").glob("*.jsonl")).read_text().splitlines()
    assert len(line) == 1 and json.loads(line[0])["url"].endswith("/twilio/status?message_key=k1")
