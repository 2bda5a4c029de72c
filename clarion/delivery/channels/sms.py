"""SMS through a Twilio-compatible HTTP API.

Twilio's ``Messages.json`` shape is the de-facto standard several providers and
self-hosted gateways imitate, so one implementation covers them all: only
``CLARION_SMS_BASE_URL`` changes. The base URL is operator configuration, yet it passes the
same address rules as every URL Clarion contacts (:class:`UrlGuard`, dialled at the checked
address, no redirects, no proxy from the environment): a gateway on the private network
needs ``CLARION_WEBHOOK_ALLOW_PRIVATE=true``.
"""

from __future__ import annotations

import base64
import logging
from typing import ClassVar
from urllib.parse import quote, urlencode

import httpx
import phonenumbers

from clarion.delivery.channels.base import (
    Channel,
    Contact,
    Outcome,
    RenderedMessage,
    SendResult,
    redact_url,
)
from clarion.delivery.channels.http_status import (
    classify_status,
    parse_retry_after,
    transport_error_detail,
)
from clarion.errors import ValidationFailed
from clarion.services.netguard import BlockedURL, UrlGuard

log = logging.getLogger(__name__)

#: Twilio refuses bodies over 1600 characters; longer texts are cut rather than lost.
MAX_BODY = 1600


def normalize_e164(raw: str, default_region: str | None = None) -> str:
    """``raw`` as an E.164 number (``+4915112345678``); :class:`ValidationFailed` if invalid.

    Without ``default_region`` the number must carry its country code (``+...``): guessing a
    region for a notification service would text the wrong person.
    """
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(
            "phone number cannot be parsed; use international format like +14155550123",
            details={"field": "phone"},
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed("phone number is not valid", details={"field": "phone"})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def sms_body(message: RenderedMessage) -> str:
    text = message.sms_text or (
        f"{message.title}: {message.text}" if message.text else message.title
    )
    if len(text) > MAX_BODY:
        text = text[: MAX_BODY - 1] + "…"
    return text


class SmsChannel(Channel):
    """POSTs ``To``/``From``/``Body`` to ``{base}/2010-04-01/Accounts/{sid}/Messages.json``."""

    name: ClassVar[str] = "sms"

    def __init__(
        self,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        timeout: float = 10.0,
        provider: str = "twilio",
        guard: UrlGuard | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = (
            f"{base_url.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}"
            "/Messages.json"
        )
        self._sender = sender
        self.provider = provider
        self._guard = guard or UrlGuard()
        credentials = f"{account_sid}:{auth_token}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
        # trust_env=False: a proxy from the environment would re-resolve the checked name.
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, transport=transport
        )

    def __repr__(self) -> str:
        return f"SmsChannel(provider={self.provider!r})"

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        if not contact.phone:
            return SendResult(Outcome.NO_CONTACT, self.provider, "user has no phone number")
        try:
            to = normalize_e164(contact.phone)
        except ValidationFailed as exc:
            return self._done(Outcome.PERMANENT, f"invalid phone number: {exc.message}")
        form = {"To": to, "From": self._sender, "Body": sms_body(message)}
        try:
            checked = await self._guard.check(self._url)
        except BlockedURL as exc:
            return self._done(Outcome.PERMANENT, f"blocked: {exc}")
        request = checked.pinned_request(
            "POST",
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/x-www-form-urlencoded",
            },
            content=urlencode(form).encode(),
        )
        try:
            response = await self._client.send(request)
        except httpx.HTTPError as exc:
            return self._done(Outcome.TRANSIENT, transport_error_detail(exc))
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location")
            shown = redact_url(location) if location else "nowhere"
            return self._done(Outcome.PERMANENT, f"HTTP {status}: redirect to {shown} not followed")
        outcome = classify_status(status)
        if outcome is Outcome.DELIVERED:
            sid: str | None = None
            try:
                body = response.json()
                sid = str(body["sid"]) if isinstance(body, dict) and "sid" in body else None
            except ValueError:
                sid = None
            return self._done(outcome, f"HTTP {status}", provider_message_id=sid)
        retry_after = None
        if outcome is Outcome.TRANSIENT:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        text = response.text[:200].strip()
        detail = f"HTTP {status}" + (f": {text[:200]}" if text else "")
        return self._done(outcome, detail, retry_after=retry_after)

    def _done(
        self,
        outcome: Outcome,
        detail: str,
        *,
        retry_after: float | None = None,
        provider_message_id: str | None = None,
    ) -> SendResult:
        log.info("sms %s via %s: %s", outcome.value, self.provider, detail)
        return SendResult(
            outcome,
            self.provider,
            detail,
            retry_after=retry_after,
            provider_message_id=provider_message_id,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
