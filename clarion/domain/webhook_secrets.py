"""Webhook endpoint secrets: made when an endpoint is registered (services) and used to
sign every delivery (the webhook channel). Standard Webhooks' format: ``whsec_`` and the
base64 of the HMAC key.
"""

from __future__ import annotations

import base64
import binascii
import secrets

SECRET_PREFIX = "whsec_"


def generate_webhook_secret() -> str:
    """A new endpoint secret: ``whsec_`` + base64 of 24 random bytes (192 bits)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_...`` secret; ``ValueError`` if malformed."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not valid base64") from exc
    if len(key) < 16:
        raise ValueError("webhook secret is too short (need at least 16 bytes)")
    return key
