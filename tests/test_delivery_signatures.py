"""Webhook signature verification: published SendGrid test vector, own P-256 keys, Twilio example."""

from __future__ import annotations

import pytest
from helpers_channels import (
    SENDGRID_VECTOR_KEY,
    SENDGRID_VECTOR_PAYLOAD,
    SENDGRID_VECTOR_SIGNATURE,
    SENDGRID_VECTOR_TIMESTAMP,
    new_p256_key,
)

from connectors.channels.masking import is_e164, mask_email, mask_phone, mask_token
from connectors.delivery.signatures import (
    SignatureKeyError,
    load_sendgrid_public_key,
    sign_sendgrid,
    twilio_signature,
    verify_sendgrid,
    verify_twilio,
)


def test_sendgrid_published_vector_verifies():
    key = load_sendgrid_public_key(SENDGRID_VECTOR_KEY)
    body = SENDGRID_VECTOR_PAYLOAD.encode()
    assert verify_sendgrid(key, body, SENDGRID_VECTOR_SIGNATURE, SENDGRID_VECTOR_TIMESTAMP)
    assert not verify_sendgrid(key, body.replace(b"dropped", b"delivered"), SENDGRID_VECTOR_SIGNATURE,
                               SENDGRID_VECTOR_TIMESTAMP)
    assert not verify_sendgrid(key, body.rstrip(b"\r\n"), SENDGRID_VECTOR_SIGNATURE, SENDGRID_VECTOR_TIMESTAMP)
    assert not verify_sendgrid(key, body, SENDGRID_VECTOR_SIGNATURE, "1600112503")
    assert not verify_sendgrid(key, body, None, SENDGRID_VECTOR_TIMESTAMP)
    assert not verify_sendgrid(key, body, "not base64!!", SENDGRID_VECTOR_TIMESTAMP)


def test_sendgrid_own_key_roundtrip_and_wrong_key():
    private, public_b64 = new_p256_key()
    _, other_b64 = new_p256_key()
    body = b'[{"event":"open","sg_event_id":"e1","timestamp":1795000000}]\r\n'
    signature = sign_sendgrid(private, body, "1795000000")
    assert verify_sendgrid(load_sendgrid_public_key(public_b64), body, signature, "1795000000")
    assert not verify_sendgrid(load_sendgrid_public_key(other_b64), body, signature, "1795000000")
    with pytest.raises(SignatureKeyError):
        load_sendgrid_public_key("bm90IGEga2V5")


def test_twilio_signature_known_example():
    # The example from twilio-python's RequestValidator tests.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
              ("From", "+14158675309"), ("To", "+18005551212")]
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert verify_twilio("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert verify_twilio("12345", url.replace(".com", ".com:443"), params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not verify_twilio("12345", url, params[:-1] + [("To", "+18005551213")], "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not verify_twilio("54321", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not verify_twilio("12345", url, params, None)


def test_masking_helpers():
    assert mask_email("alice@example.com") == "a***@example.com"
    assert mask_phone("+4915112345678") == "+49*******5678"
    assert mask_token("abcdefghijklmnop") == "abcdef…(16)"
    assert mask_email("") == "" and mask_phone("+1") == "**"
    assert is_e164("+14155550100") and not is_e164("004915112345678") and not is_e164("+0123")
