"""Shared helpers for the channel and delivery tests: vendor-spec validators, messages, signing."""

from __future__ import annotations

import base64
import copy
import json
from functools import cache
from typing import Any
from urllib.parse import parse_qs

import jsonschema
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.channels.base import OutboundMessage
from connectors.delivery.envelope import Envelope
from connectors.delivery.signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    sign_sendgrid,
    twilio_signature,
)
from crmflow.settings import REPO_ROOT

SPECS = REPO_ROOT.parent / "shared" / "specs"  # ../shared/specs beside the clone, as in CI
TWILIO_MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"

# The published test vector from sendgrid-python (test/unit/test_eventwebhook.py).
SENDGRID_VECTOR_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw"
                       "+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==")
SENDGRID_VECTOR_SIGNATURE = ("MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89"
                             "M15TluLtEZtM=")
SENDGRID_VECTOR_TIMESTAMP = "1600112502"
SENDGRID_VECTOR_PAYLOAD = json.dumps([{
    "email": "hello@world.com", "event": "dropped", "reason": "Bounced Address",
    "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
    "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
    "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>", "timestamp": 1600112492,
}], sort_keys=True, separators=(",", ":")) + "\r\n"


def message(i: int, channel: str = "email", to: str | None = None, **overrides: Any) -> OutboundMessage:
    default_to = {"email": f"user{i}@example.com", "sms": f"+1500555{i:04d}", "push": f"token-{i:06d}",
                  "webhook": f"rcpt-{i}"}[channel]
    fields: dict[str, Any] = dict(
        message_key=f"j1:s1:u{i}", channel=channel, user_id=f"u{i}", to=to or default_to, journey_id="j1",
        step_id="s1", subject=f"Hello {i}", body=f"Hi user {i}", html=None, title="Title")
    fields.update(overrides)
    return OutboundMessage(**fields)


# ---- vendor specs ----------------------------------------------------------------------------
@cache
def _sendgrid_validator() -> jsonschema.Validator:
    spec = json.loads((SPECS / "tsg_mail_v3.json").read_text())
    schema = copy.deepcopy(spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]
                           ["schema"])
    schema["components"] = spec["components"]  # so "#/components/..." $refs resolve
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_sendgrid_body(body: dict[str, Any]) -> None:
    _sendgrid_validator().validate(body)
    # Rules the schema leaves to prose.
    personalizations = body["personalizations"]
    assert 1 <= len(personalizations) <= 1000
    for p in personalizations:
        assert all(isinstance(v, str) for v in p.get("custom_args", {}).values()), "custom_args values are strings"
        assert body.get("subject") or p.get("subject") or body.get("template_id"), "subject required"
    if "content" in body:
        assert body["content"][0]["type"] == "text/plain", "text/plain must come first"


@cache
def _twilio_form_schema() -> dict[str, Any]:
    spec = json.loads((SPECS / "twilio_api_v2010.json").read_text())
    op = spec["paths"][TWILIO_MESSAGES_PATH]["post"]
    schema = copy.deepcopy(op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"])
    schema["additionalProperties"] = False
    return schema


def validate_twilio_form(raw_body: bytes) -> dict[str, str]:
    parsed = parse_qs(raw_body.decode(), keep_blank_values=True)
    assert all(len(v) == 1 for k, v in parsed.items() if k != "MediaUrl")
    form = {k: v[0] for k, v in parsed.items()}
    jsonschema.Draft7Validator(_twilio_form_schema()).validate(form)
    # x-twilio.conditional: From or MessagingServiceSid; Body, MediaUrl or ContentSid.
    assert form.get("From") or form.get("MessagingServiceSid")
    assert form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")
    return form


@cache
def _fcm_validator() -> jsonschema.Validator:
    """The FCM discovery document's schemas converted to JSON Schema (refs -> $defs, no extras)."""
    doc = json.loads((SPECS / "fcm.v1.json").read_text())

    def convert(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: convert(v) for k, v in node.items() if k not in ("id", "description", "enumDescriptions",
                                                                       "readOnly")}
            if "$ref" in out:
                return {"$ref": f"#/$defs/{out['$ref']}"}
            if out.get("type") == "object" and "properties" in out:
                out.setdefault("additionalProperties", False)
            if out.get("format") in ("int64", "uint64", "google-duration", "google-datetime", "byte"):
                out.pop("format")
            return out
        if isinstance(node, list):
            return [convert(v) for v in node]
        return node

    defs = {name: convert(schema) for name, schema in doc["schemas"].items()}
    return jsonschema.Draft202012Validator({"$ref": "#/$defs/SendMessageRequest", "$defs": defs})


def validate_fcm_body(body: dict[str, Any]) -> None:
    _fcm_validator().validate(body)
    targets = [k for k in ("token", "topic", "condition") if k in body["message"]]
    assert len(targets) == 1, "exactly one target"


# ---- signing ---------------------------------------------------------------------------------
def new_p256_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public_der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(public_der).decode()


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, body: str, timestamp: str = "1795000000") -> dict[str, str]:
    return {SENDGRID_SIGNATURE_HEADER: sign_sendgrid(private, body.encode(), timestamp),
            SENDGRID_TIMESTAMP_HEADER: timestamp, "Content-Type": "application/json"}


def sendgrid_envelope(private: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]],
                      received_at: str = "2026-11-22T10:00:00+00:00") -> Envelope:
    body = json.dumps(events) + "\r\n"
    return Envelope("sendgrid", received_at, "https://hooks.example.com/sendgrid/events",
                    sendgrid_headers(private, body), body)


def twilio_envelope(auth_token: str, params: dict[str, str], path: str = "/twilio/status",
                    received_at: str = "2026-11-22T10:00:00+00:00", query: str = "") -> Envelope:
    from urllib.parse import urlencode

    url = f"https://hooks.example.com{path}" + (f"?{query}" if query else "")
    body = urlencode(params)
    return Envelope("twilio", received_at, url,
                    {TWILIO_SIGNATURE_HEADER: twilio_signature(auth_token, url, list(params.items()))}, body)
