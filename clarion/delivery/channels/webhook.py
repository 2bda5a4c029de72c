"""Webhooks, signed per Standard Webhooks (https://www.standardwebhooks.com/).

Receivers verify ``webhook-signature`` with any Standard Webhooks library and dedupe on
``webhook-id`` (our stable ``delivery_id``), so retries are harmless to them.

Redirects are *not* followed: a receiver that moved should update its URL, and following
would let a public host bounce us to an internal one. A 3xx is a permanent failure whose
detail names the (redacted) location. Every URL passes :class:`UrlGuard` and the request
is sent to the very address the guard checked.

The POST goes through :class:`~clarion.delivery.channels.http1_client.Http1Pool` (keep-alive
connections per checked address and host name, a C response parser) rather than httpx:
per request it is several times cheaper, and webhook throughput is bound by exactly that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from clarion.delivery.channels.base import (
    Channel,
    Contact,
    Outcome,
    RenderedMessage,
    SendResult,
    redact_url,
)
from clarion.delivery.channels.http1_client import Dialer, Http1Pool, HttpError, PoolKey, Response
from clarion.delivery.channels.http_status import classify_status, parse_retry_after
from clarion.domain.webhook_secrets import decode_secret
from clarion.services.netguard import BlockedURL, CheckedTarget, UrlGuard

log = logging.getLogger(__name__)

USER_AGENT = "Clarion-Webhooks/1"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>``."""
    return sign_with_key(decode_secret(secret), msg_id, timestamp, body)


def sign_with_key(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def encode_payload(payload: Any) -> bytes:
    """Compact UTF-8 JSON; orjson when it can (it refuses e.g. integers beyond 64 bits,
    which the standard library then encodes the same way as before)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A webhook ready to send: the receiver's URL, the address the guard checked for it,
    and the Standard Webhooks headers' values for exactly this body."""

    url: str
    checked: CheckedTarget
    delivery_id: str
    timestamp: int
    signature: str
    body: bytes


class WebhookChannel(Channel):
    """POSTs the notification JSON to the contact's webhook endpoint."""

    name: ClassVar[str] = "webhook"
    provider = "webhook"

    #: Decoded secrets and request heads kept per endpoint (cleared when full).
    CACHE_SIZE = 4096

    def __init__(
        self,
        *,
        guard: UrlGuard | None = None,
        timeout: float = 10.0,
        dialer: Dialer | None = None,
        keepalive_seconds: float = 5.0,
    ) -> None:
        self._guard = guard or UrlGuard()
        # No proxy support at all (the httpx path used trust_env=False for the same
        # reason): a proxy would re-resolve the host and undo the address pinning.
        self._pool = Http1Pool(timeout=timeout, keepalive_seconds=keepalive_seconds, dialer=dialer)
        self._keys: dict[str, bytes] = {}
        self._heads: dict[str, tuple[bytes, str, int, str]] = {}

    @property
    def pool(self) -> Http1Pool:
        return self._pool

    def _key(self, secret: str) -> bytes:
        key = self._keys.get(secret)
        if key is None:
            key = decode_secret(secret)  # ValueError: malformed (not cached)
            if len(self._keys) >= self.CACHE_SIZE:
                self._keys.clear()
            self._keys[secret] = key
        return key

    def _head(self, url: str, checked: CheckedTarget) -> tuple[bytes, str, int, str]:
        """The request line and fixed headers for ``url``, plus the pool key's parts."""
        cached = self._heads.get(url)
        if cached is None:
            parsed = checked.url
            scheme = parsed.scheme
            port = parsed.port or (443 if scheme == "https" else 80)
            head = (
                b"POST " + (parsed.raw_path or b"/") + b" HTTP/1.1\r\n"
                b"Host: " + parsed.netloc + b"\r\n"
                b"User-Agent: " + USER_AGENT.encode() + b"\r\n"
                b"Accept: */*\r\n"
                b"Content-Type: application/json\r\n"
            )
            cached = (head, scheme, port, checked.host)
            if len(self._heads) >= self.CACHE_SIZE:
                self._heads.clear()
            self._heads[url] = cached
        return cached

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        signed = await self.sign_request(message, contact)
        if isinstance(signed, SendResult):
            return signed
        return await self.exchange(signed)

    async def sign_request(
        self, message: RenderedMessage, contact: Contact
    ) -> SignedRequest | SendResult:
        """Everything before the wire: the body, the guard's checked address and the
        signature, or the failure that ends the delivery without a request."""
        target = contact.webhook
        if target is None:
            return SendResult(Outcome.NO_CONTACT, self.provider, "user has no webhook")
        try:
            body = encode_payload(dict(message.payload))
        except (TypeError, ValueError) as exc:
            return self._result(Outcome.PERMANENT, f"payload is not JSON: {exc}", target.url)

        try:
            checked = await self._guard.check(target.url)
        except BlockedURL as exc:
            return self._result(Outcome.PERMANENT, f"blocked: {exc}", target.url)

        timestamp = int(time.time())
        try:
            signature = sign_with_key(
                self._key(target.secret), message.delivery_id, timestamp, body
            )
        except ValueError as exc:
            return self._result(Outcome.PERMANENT, str(exc), target.url)
        return SignedRequest(target.url, checked, message.delivery_id, timestamp, signature, body)

    async def exchange(self, signed: SignedRequest) -> SendResult:
        """The POST itself, over :class:`Http1Pool`, and the answer classified."""
        checked, body = signed.checked, signed.body
        head, scheme, port, host = self._head(signed.url, checked)
        # The delivery id is a UUID we made, the rest is ours: no header injection.
        data = b"".join(
            (
                head,
                b"webhook-id: ",
                signed.delivery_id.encode("ascii", "replace"),
                b"\r\nwebhook-timestamp: ",
                str(signed.timestamp).encode(),
                b"\r\nwebhook-signature: ",
                signed.signature.encode(),
                b"\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )
        key: PoolKey = (scheme, checked.address, port, host)
        try:
            response = await self._pool.request(key, data)
        except HttpError as exc:
            return self._result(Outcome.TRANSIENT, _error_detail(exc), signed.url)
        return self._classify(response, signed.url)

    def _classify(self, response: Response, url: str) -> SendResult:
        status = response.status
        if 200 <= status < 300:
            return SendResult(Outcome.DELIVERED, self.provider, f"HTTP {status}")
        if 300 <= status < 400:
            location = response.headers.get("location")
            shown = redact_url(location) if location else "nowhere"
            return self._result(
                Outcome.PERMANENT, f"HTTP {status}: redirect to {shown} not followed", url
            )
        if status == 410:
            return SendResult(
                Outcome.PERMANENT,
                self.provider,
                f"HTTP 410 from {redact_url(url)}: endpoint gone, disabling",
                disable_endpoint=True,
            )
        outcome = classify_status(status)
        retry_after = None
        if outcome is Outcome.TRANSIENT:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        text = response.body.decode("utf-8", "replace").strip()
        detail = f"HTTP {status}" + (f": {text[:200]}" if text else "")
        return self._result(outcome, detail, url, retry_after=retry_after)

    def _result(
        self, outcome: Outcome, detail: str, url: str, *, retry_after: float | None = None
    ) -> SendResult:
        where = redact_url(url)
        log.info("webhook %s to %s: %s", outcome.value, where, detail)
        return SendResult(outcome, self.provider, f"{detail} ({where})", retry_after=retry_after)

    async def aclose(self) -> None:
        await self._pool.aclose()


def _error_detail(exc: HttpError) -> str:
    """A short, secret-free description of a transport failure (as with httpx before)."""
    if exc.kind == "timeout":
        return f"timeout ({exc.name})"
    return f"connection failed ({exc.name})"
