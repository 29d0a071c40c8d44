"""Twilio SMS, FCM push and signed webhooks against a local mock provider: spec-valid requests,
fault injection (429/5xx/reset/timeout/permanent 4xx), no duplicate delivery."""

from __future__ import annotations

import base64
import json

import jsonschema
import pytest
from helpers_channels import message, validate_fcm_body, validate_twilio_form

from connectors.channels.config import FcmConfig, TwilioConfig, WebhookConfig
from connectors.channels.fcm import FcmChannel
from connectors.channels.mock_server import Action, MockProvider
from connectors.channels.twilio import TwilioChannel
from connectors.channels.webhook import SIGNATURE_HEADER, WebhookChannel, verify_webhook

SID, TOKEN = "AC" + "1" * 32, "twilio-auth-token"
POLICY = dict(backoff_base_s=0.0, timeout_s=2.0, max_concurrency=4)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def twilio(server: MockProvider, sleeps=None, **kw) -> TwilioChannel:
    config = TwilioConfig(provider="twilio", status_callback_url="https://hooks.example.com/twilio/status",
                          **{**POLICY, **kw})
    return TwilioChannel(config, SID, TOKEN, from_number="+15005550006", api_base=server.url,
                         sleep=sleeps if sleeps is not None else Sleeps())


def fcm(server: MockProvider, sleeps=None, **kw) -> FcmChannel:
    return FcmChannel(FcmConfig(provider="fcm", **{**POLICY, **kw}), "demo-project", "ya29.token",
                      api_base=server.url, sleep=sleeps if sleeps is not None else Sleeps())


def webhook(server: MockProvider, sleeps=None, **kw) -> WebhookChannel:
    return WebhookChannel(WebhookConfig(provider="webhook", **{**POLICY, **kw}), server.url + "/hook", "whsec",
                          sleep=sleeps if sleeps is not None else Sleeps(), clock=lambda: 1_795_000_000)


BUILDERS = {"sms": twilio, "push": fcm, "webhook": webhook}
BASIC = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()


@pytest.fixture
def server():
    with MockProvider() as provider:
        yield provider


def test_twilio_requests_match_the_spec(server):
    results = twilio(server).send_batch([message(i, "sms") for i in range(20)])
    assert all(r.status == "sent" and r.provider_message_id.startswith("SM") for r in results)
    assert len(server.requests) == 20
    for request in server.requests:
        assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
        assert request.headers["Authorization"] == BASIC
        form = validate_twilio_form(request.body)
        assert form["From"] == "+15005550006"
        assert form["StatusCallback"].startswith("https://hooks.example.com/twilio/status?message_key=j1%3As1%3Au")


def test_twilio_messaging_service_and_invalid_numbers(server):
    channel = TwilioChannel(TwilioConfig(provider="twilio", **POLICY), SID, TOKEN, messaging_service_sid="MG" + "2" * 32,
                            api_base=server.url)
    results = channel.send_batch([message(1, "sms"), message(2, "sms", to="0151 1234"), message(3, "sms", body="")])
    assert [r.status for r in results] == ["sent", "failed", "failed"]
    assert results[1].error == "invalid E.164 phone number" and results[1].address_dead
    assert len(server.requests) == 1
    form = validate_twilio_form(server.requests[0].body)
    assert "MessagingServiceSid" in form and "From" not in form


def test_fcm_requests_match_the_discovery_schema(server):
    msgs = [message(i, "push", deep_link="app://offer/1") for i in range(5)]
    results = fcm(server).send_batch(msgs)
    assert all(r.status == "sent" and r.provider_message_id.startswith("projects/demo-project/messages/")
               for r in results)
    for request in server.requests:
        assert request.path == "/v1/projects/demo-project/messages:send"
        assert request.headers["Authorization"] == "Bearer ya29.token"
        validate_fcm_body(request.json())
    dry = fcm(server, validate_only=True).request_body(msgs[0])
    validate_fcm_body(dry)
    assert dry["validateOnly"] is True
    with pytest.raises(jsonschema.ValidationError):  # the converted schema does catch a wrong field
        validate_fcm_body({"message": {"token": "t", "notification": {"titel": "x"}}})


@pytest.mark.parametrize("error,dead", [
    ({"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
      "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}, True),
    ({"code": 400, "status": "INVALID_ARGUMENT", "message": "The registration token is not a valid FCM registration token",
      "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}]}, True),
    ({"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid JSON payload received. Unknown name \"x\"",
      "details": []}, False),
])
def test_fcm_dead_tokens(server, error, dead):
    server.push(Action.error(error["code"], {"error": error}))
    result = fcm(server).send_batch([message(1, "push")])[0]
    assert result.status == "failed" and result.attempts == 1 and result.address_dead is dead
    assert error["status"] in result.error


def test_webhook_is_signed(server):
    result = webhook(server).send_batch([message(1, "webhook")])[0]
    assert result.status == "sent"
    request = server.requests[0]
    assert json.loads(request.body)["message_key"] == "j1:s1:u1"
    header = request.headers[SIGNATURE_HEADER]
    assert header.startswith("t=1795000000,v1=")
    assert verify_webhook("whsec", request.body, header, now=1_795_000_010)
    assert not verify_webhook("whsec", request.body + b" ", header, now=1_795_000_010)
    assert not verify_webhook("other", request.body, header, now=1_795_000_010)
    assert not verify_webhook("whsec", request.body, header, now=1_795_009_999)  # too old


FAULTS = [
    pytest.param(Action.error(429, {"code": 20429, "message": "Too Many Requests",
                                    "error": {"status": "RESOURCE_EXHAUSTED", "message": "quota"}},
                              Retry_After="2"), id="429-retry-after"),
    pytest.param(Action.error(500), id="500"),
    pytest.param(Action.error(503), id="503"),
    # A reset may come after the provider accepted: retried only with the opt-in at-least-once.
    pytest.param(Action("reset"), id="connection-reset"),
]


@pytest.mark.parametrize("channel", ["sms", "push", "webhook"])
@pytest.mark.parametrize("fault", FAULTS)
def test_transient_faults_end_sent_after_one_retry(server, channel, fault):
    sleeps = Sleeps()
    server.push(fault)
    msgs = [message(i, channel) for i in range(1)]
    result = BUILDERS[channel](server, sleeps, max_concurrency=1,
                               retry_on_timeout=fault.kind == "reset").send_batch(msgs)[0]
    assert result.status == "sent" and result.attempts == 2
    assert server.request_count == 2 and sum(server.accepted.values()) == 1  # delivered exactly once
    if fault.status == 429:
        assert sleeps == [2.0]


@pytest.mark.parametrize("channel", ["sms", "push", "webhook"])
@pytest.mark.parametrize("status", [400, 401])
def test_permanent_errors_are_not_retried(server, channel, status):
    server.push(Action.error(status, {"code": 21211, "message": "The 'To' number is not valid",
                                      "error": {"status": "INVALID_ARGUMENT", "message": "bad request"}}))
    result = BUILDERS[channel](server).send_batch([message(1, channel)])[0]
    assert result.status == "failed" and result.attempts == 1 and f"HTTP {status}" in result.error
    assert server.request_count == 1 and not server.accepted
    if channel == "sms":
        assert "twilio 21211" in result.error and result.address_dead


@pytest.mark.parametrize("channel", ["sms", "push", "webhook"])
def test_timeouts(server, channel):
    server.push(Action("hang", delay_s=0.5))
    result = BUILDERS[channel](server, timeout_s=0.25, retry_on_timeout=False).send_batch([message(1, channel)])[0]
    assert result.status == "unknown" and "outcome unknown" in result.error and result.attempts == 1
    server.push(Action("hang", delay_s=0.5))
    # the default is at-most-once: unknown, not retried
    result = BUILDERS[channel](server, timeout_s=0.25).send_batch([message(2, channel)])[0]
    assert result.status == "unknown" and result.attempts == 1
    server.push(Action("hang", delay_s=0.5))
    result = BUILDERS[channel](server, timeout_s=0.25, retry_on_timeout=True).send_batch([message(3, channel)])[0]
    assert result.status == "sent" and result.attempts == 2


def test_connection_refused_is_retried_then_fails(server):
    dead_port = TwilioChannel(TwilioConfig(provider="twilio", max_attempts=2, backoff_base_s=0, timeout_s=1),
                              SID, TOKEN, from_number="+15005550006", api_base="http://127.0.0.1:9")
    result = dead_port.send_batch([message(1, "sms")])[0]
    assert result.status == "failed" and result.attempts == 2 and "connect failed" in result.error


def test_concurrent_batch_returns_one_result_per_message_in_order(server):
    msgs = [message(i, "push") for i in range(200)]
    server.push(*[Action.error(503)] * 3)  # at most 3 failures for one message: max_attempts is 4
    results = fcm(server, max_concurrency=8).send_batch(msgs)
    assert [r.message_key for r in results] == [m.message_key for m in msgs]
    assert all(r.status == "sent" for r in results)
    assert server.request_count == 203 and max(server.accepted.values()) == 1
