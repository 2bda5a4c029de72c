"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

pywebpush does the payload encryption (``WebPusher.encode``) and py_vapid the JWT, but the
request itself goes out through httpx's async client: pywebpush's own ``send`` uses the
blocking ``requests`` library, which would stall the event loop of a worker running 64
deliveries at once.

Push endpoints come from browsers via the profile API, i.e. they are user-controlled URLs;
they pass the same address rules as webhooks when registered and again at every send
(the request goes to the checked address, redirects are not followed).

A message counts as delivered when *at least one* of the user's devices accepted it: the
user has been reached, and retrying the whole fan-out would duplicate the notification on
the devices that did get it. Per-subscription results are in ``SendResult.targets``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher, WebPushException

from clarion.delivery.channels.base import (
    Channel,
    Contact,
    Outcome,
    PushSubscription,
    RenderedMessage,
    SendResult,
    TargetResult,
    redact_url,
)
from clarion.delivery.channels.http_status import (
    classify_status,
    parse_retry_after,
    read_detail,
    transport_error_detail,
)
from clarion.services.netguard import BlockedURL, UrlGuard

log = logging.getLogger(__name__)

#: Push services accept 4096 bytes of *encrypted* record; aes128gcm adds 86 bytes of header,
#: a 16-byte tag and a delimiter. Stay safely under.
MAX_PLAINTEXT = 3800
JWT_LIFETIME = 12 * 3600
_URGENCY = {"low": "low", "normal": "normal", "high": "high", "urgent": "high"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: ``(private, public)``, both URL-safe base64 without padding.

    The private key is the raw 32-byte P-256 scalar (the value for
    ``CLARION_VAPID_PRIVATE_KEY``); the public key is the 65-byte uncompressed point that
    browsers take as ``applicationServerKey`` in ``pushManager.subscribe``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(private), _b64url(public)


def load_vapid(private_key: str) -> Vapid02:
    """A signer from the settings value: raw base64url, base64 DER, or PEM.

    Raises ``ValueError`` so a bad key is reported at startup, not per delivery.
    """
    text = private_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            return Vapid02.from_pem(text.encode("ascii"))
        return Vapid02.from_string(text)
    except Exception as exc:  # py_vapid raises assorted types for malformed keys
        raise ValueError("CLARION_VAPID_PRIVATE_KEY is not a valid P-256 private key") from exc


def vapid_public_key(signer: Vapid02) -> str:
    """The applicationServerKey (base64url) belonging to a loaded signer."""
    raw: bytes = signer.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(raw)


def build_push_payload(message: RenderedMessage) -> bytes:
    """The JSON the service worker receives; the full notification JSON if it fits."""
    body: dict[str, Any] = {
        "delivery_id": message.delivery_id,
        "notification_id": message.notification_id,
        "type": message.type,
        "priority": message.priority,
        "title": message.push_title or message.title,
        "body": message.push_body or message.text,
        "url": message.url,
    }
    full = dict(body, data=dict(message.payload))
    for candidate in (full, body):
        try:
            encoded = json.dumps(candidate, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError):
            continue
        if len(encoded) <= MAX_PLAINTEXT:
            return encoded
    # Title and body alone are too long: trim the body, which is the part users skim.
    body["body"] = str(body["body"])[:1000]
    body["title"] = str(body["title"])[:200]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()[:MAX_PLAINTEXT]


class PushChannel(Channel):
    """Sends one encrypted message to every push subscription of the contact."""

    name: ClassVar[str] = "push"
    provider = "webpush"

    def __init__(
        self,
        *,
        vapid_private_key: str,
        vapid_subject: str,
        guard: UrlGuard | None = None,
        timeout: float = 10.0,
        ttl_seconds: int = 24 * 3600,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._vapid = load_vapid(vapid_private_key)
        self._subject = vapid_subject
        self._guard = guard or UrlGuard()
        self._ttl = ttl_seconds
        self._jwt_cache: dict[str, tuple[float, str]] = {}
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, transport=transport
        )

    def __repr__(self) -> str:
        return f"PushChannel(subject={self._subject!r})"

    @property
    def public_key(self) -> str:
        return vapid_public_key(self._vapid)

    def _authorization(self, endpoint: str) -> str:
        """``vapid t=<JWT>,k=<public key>``, cached per push service origin."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        cached = self._jwt_cache.get(audience)
        if cached is not None and cached[0] - now > 3600:
            return cached[1]
        exp = int(now) + JWT_LIFETIME
        headers = self._vapid.sign({"aud": audience, "exp": exp, "sub": self._subject})
        value = str(headers["Authorization"])
        self._jwt_cache[audience] = (float(exp), value)
        return value

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        subs = contact.push_subscriptions
        if not subs:
            return SendResult(Outcome.NO_CONTACT, self.provider, "user has no push subscription")
        plaintext = build_push_payload(message)
        urgency = _URGENCY.get(message.priority, "normal")
        results = await asyncio.gather(*(self._send_one(s, plaintext, urgency) for s in subs))

        targets = tuple(r for r, _, _ in results)
        gone = tuple(
            sub.endpoint for sub, (_, is_gone, _) in zip(subs, results, strict=True) if is_gone
        )
        retry_afters = [ra for _, _, ra in results if ra is not None]
        outcomes = {t.outcome for t in targets}
        summary = ", ".join(f"{t.target}: {t.detail}" for t in targets)
        if Outcome.DELIVERED in outcomes:
            outcome = Outcome.DELIVERED
        elif Outcome.TRANSIENT in outcomes:
            outcome = Outcome.TRANSIENT
        else:
            outcome = Outcome.PERMANENT
        delivered = sum(t.outcome is Outcome.DELIVERED for t in targets)
        log.info("push %s: %d/%d subscriptions accepted", outcome.value, delivered, len(targets))
        return SendResult(
            outcome,
            self.provider,
            f"{delivered}/{len(targets)} accepted; {summary}"[:1000],
            retry_after=max(retry_afters) if retry_afters else None,
            gone_subscriptions=gone,
            targets=targets,
        )

    async def _send_one(
        self, sub: PushSubscription, plaintext: bytes, urgency: str
    ) -> tuple[TargetResult, bool, float | None]:
        """Returns (result, subscription is gone, retry-after)."""
        where = redact_url(sub.endpoint)
        try:
            checked = await self._guard.check(sub.endpoint)
        except BlockedURL as exc:
            return TargetResult(where, Outcome.PERMANENT, f"blocked: {exc}"), False, None
        try:
            pusher = WebPusher(
                {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}}
            )
            encrypted = pusher.encode(plaintext, "aes128gcm")["body"]
            authorization = self._authorization(sub.endpoint)
        except (WebPushException, ValueError, TypeError) as exc:
            # Malformed subscription keys never get better: drop the subscription.
            detail = f"invalid subscription: {type(exc).__name__}"
            return TargetResult(where, Outcome.PERMANENT, detail), True, None
        request = checked.pinned_request(
            "POST",
            headers={
                "Authorization": authorization,
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
                "TTL": str(self._ttl),
                "Urgency": urgency,
            },
            content=encrypted,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            return TargetResult(where, Outcome.TRANSIENT, transport_error_detail(exc)), False, None
        try:
            status = response.status_code
            if status in (404, 410):
                return (
                    TargetResult(where, Outcome.PERMANENT, f"HTTP {status} gone", status),
                    True,
                    None,
                )
            outcome = classify_status(status)
            if outcome is Outcome.DELIVERED:
                return TargetResult(where, outcome, f"HTTP {status}", status), False, None
            if 300 <= status < 400:
                # Never followed: the next hop would be a URL nobody checked.
                location = response.headers.get("location")
                shown = redact_url(location) if location else "nowhere"
                detail = f"HTTP {status}: redirect to {shown} not followed"
                return TargetResult(where, Outcome.PERMANENT, detail, status), False, None
            retry_after = None
            if outcome is Outcome.TRANSIENT:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            try:
                text = await read_detail(response)
            except httpx.HTTPError:
                text = ""
            detail = f"HTTP {status}" + (f": {text[:120]}" if text else "")
            return TargetResult(where, outcome, detail, status), False, retry_after
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
