"""Webhooks, signed per Standard Webhooks (https://www.standardwebhooks.com/).

Receivers verify ``webhook-signature`` with any Standard Webhooks library and dedupe on
``webhook-id`` (our stable ``delivery_id``), so retries are harmless to them.

Redirects are *not* followed: a receiver that moved should update its URL, and following
would let a public host bounce us to an internal one. A 3xx is a permanent failure whose
detail names the (redacted) location. Every URL passes :class:`UrlGuard` and the request
is sent to the very address the guard checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import ClassVar

import httpx

from clarion.delivery.channels._http import (
    classify_status,
    parse_retry_after,
    read_detail,
    transport_error_detail,
)
from clarion.delivery.channels.base import (
    Channel,
    Contact,
    Outcome,
    RenderedMessage,
    SendResult,
    redact_url,
)
from clarion.delivery.channels.netguard import BlockedURL, UrlGuard

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "Clarion-Webhooks/1"


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


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>``."""
    key = decode_secret(secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookChannel(Channel):
    """POSTs the notification JSON to the contact's webhook endpoint."""

    name: ClassVar[str] = "webhook"
    provider = "webhook"

    def __init__(
        self,
        *,
        guard: UrlGuard | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._guard = guard or UrlGuard()
        # trust_env=False: an environment proxy would re-resolve the host and undo the
        # address pinning that protects against DNS rebinding.
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        target = contact.webhook
        if target is None:
            return SendResult(Outcome.NO_CONTACT, self.provider, "user has no webhook")
        where = redact_url(target.url)
        try:
            body = json.dumps(
                dict(message.payload), separators=(",", ":"), ensure_ascii=False
            ).encode("utf-8")
        except (TypeError, ValueError) as exc:
            return self._result(Outcome.PERMANENT, f"payload is not JSON: {exc}", where)

        try:
            checked = await self._guard.check(target.url)
        except BlockedURL as exc:
            return self._result(Outcome.PERMANENT, f"blocked: {exc}", where)

        timestamp = int(time.time())
        try:
            signature = sign(target.secret, message.delivery_id, timestamp, body)
        except ValueError as exc:
            return self._result(Outcome.PERMANENT, str(exc), where)

        request = checked.pinned_request(
            "POST",
            headers={
                "Content-Type": "application/json",
                "webhook-id": message.delivery_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature,
            },
            content=body,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            return self._result(Outcome.TRANSIENT, transport_error_detail(exc), where)
        try:
            return await self._classify(response, where)
        finally:
            await response.aclose()

    async def _classify(self, response: httpx.Response, where: str) -> SendResult:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location")
            shown = redact_url(location) if location else "nowhere"
            return self._result(
                Outcome.PERMANENT, f"HTTP {status}: redirect to {shown} not followed", where
            )
        if status == 410:
            return SendResult(
                Outcome.PERMANENT,
                self.provider,
                f"HTTP 410 from {where}: endpoint gone, disabling",
                disable_endpoint=True,
            )
        outcome = classify_status(status)
        if outcome is Outcome.DELIVERED:
            return SendResult(Outcome.DELIVERED, self.provider, f"HTTP {status}")
        retry_after = None
        if outcome is Outcome.TRANSIENT:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        try:
            text = await read_detail(response)
        except httpx.HTTPError:
            text = ""
        detail = f"HTTP {status}" + (f": {text[:200]}" if text else "")
        return self._result(outcome, detail, where, retry_after=retry_after)

    def _result(
        self, outcome: Outcome, detail: str, where: str, *, retry_after: float | None = None
    ) -> SendResult:
        log.info("webhook %s to %s: %s", outcome.value, where, detail)
        return SendResult(outcome, self.provider, f"{detail} ({where})", retry_after=retry_after)

    async def aclose(self) -> None:
        await self._client.aclose()
