"""Webhook signature verification for SendGrid (ECDSA P-256) and Twilio (HMAC-SHA1)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"


class SignatureKeyError(ValueError):
    pass


def load_sendgrid_public_key(key_b64: str) -> ec.EllipticCurvePublicKey:
    """SendGrid shows the verification key as base64 DER (SubjectPublicKeyInfo) of a P-256 key."""
    try:
        key = serialization.load_der_public_key(base64.b64decode(key_b64.strip()))
    except (ValueError, binascii.Error) as exc:
        raise SignatureKeyError("SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SignatureKeyError("SENDGRID_WEBHOOK_PUBLIC_KEY is not a P-256 (secp256r1) EC key")
    return key


def verify_sendgrid(public_key: ec.EllipticCurvePublicKey, body: bytes, signature_b64: str | None,
                    timestamp: str | None) -> bool:
    """ECDSA-SHA256 over timestamp + raw body; the signature is base64 DER. Missing -> False."""
    if not signature_b64 or not timestamp:
        return False
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sign_sendgrid(private_key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    """What SendGrid does; used by tests and the local demo sender."""
    return base64.b64encode(private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """base64(HMAC-SHA1(auth token, url + every POST param name+value, sorted by name then value))."""
    payload = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def _url_variants(url: str) -> list[str]:
    """Twilio signs the URL as configured; proxies may add or drop the default port."""
    parts = urlsplit(url)
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    host = parts.hostname or ""
    if parts.port is not None:
        variants.append(urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)))
    elif default_port:
        variants.append(urlunsplit((parts.scheme, f"{host}:{default_port}", parts.path, parts.query,
                                    parts.fragment)))
    return variants


def verify_twilio(auth_token: str, url: str, params: list[tuple[str, str]], signature: str | None) -> bool:
    if not signature:
        return False
    return any(hmac.compare_digest(twilio_signature(auth_token, u, params), signature) for u in _url_variants(url))
