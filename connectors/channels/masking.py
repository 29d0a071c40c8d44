"""Masking helpers: addresses appear in logs and error strings only in masked form."""

from __future__ import annotations

import re

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_e164(phone: str) -> bool:
    return bool(_E164.match(phone or ""))


def is_email(address: str) -> bool:
    return bool(_EMAIL.match(address or ""))


def mask_email(address: str | None) -> str:
    """'alice@example.com' -> 'a***@example.com' (domain kept: it matters for deliverability)."""
    if not address:
        return ""
    local, at, domain = address.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str:
    """'+4915112345678' -> '+49*******5678' (country code and last 4 digits kept)."""
    if not phone:
        return ""
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_token(token: str | None) -> str:
    """Push tokens are credentials for one device: keep only a short prefix."""
    if not token:
        return ""
    return f"{token[:6]}…({len(token)})"


def mask_address(channel: str, address: str | None) -> str:
    if channel == "email":
        return mask_email(address)
    if channel == "sms":
        return mask_phone(address)
    if channel == "push":
        return mask_token(address)
    return address or ""
