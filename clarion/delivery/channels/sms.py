"""SMS through a Twilio-compatible HTTP API.

Twilio's ``Messages.json`` shape is the de-facto standard several providers and
self-hosted gateways imitate, so one implementation covers them all: only
``CLARION_SMS_BASE_URL`` changes. The base URL is operator configuration, not user input,
so no SSRF guard applies here.
"""

from __future__ import annotations

import logging
from typing import ClassVar
from urllib.parse import quote

import httpx
import phonenumbers

from clarion.delivery.channels._http import (
    classify_status,
    parse_retry_after,
    transport_error_detail,
)
from clarion.delivery.channels.base import Channel, Contact, Outcome, RenderedMessage, SendResult
from clarion.errors import ValidationFailed

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = (
            f"{base_url.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}"
            "/Messages.json"
        )
        self._sender = sender
        self.provider = provider
        self._client = httpx.AsyncClient(
            timeout=timeout,
            auth=httpx.BasicAuth(account_sid, auth_token),
            follow_redirects=False,
            transport=transport,
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
            response = await self._client.post(self._url, data=form)
        except httpx.HTTPError as exc:
            return self._done(Outcome.TRANSIENT, transport_error_detail(exc))
        status = response.status_code
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
