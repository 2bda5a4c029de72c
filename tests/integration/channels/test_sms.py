"""SMS against a local Twilio-shaped HTTP API."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import pytest

from clarion.delivery.channels.base import Contact, Outcome
from clarion.delivery.channels.sms import MAX_BODY, SmsChannel, normalize_e164
from clarion.errors import ValidationFailed
from clarion.services.netguard import UrlGuard

from .conftest import Receiver, closed_port, make_message

SID = "AC0123456789abcdef"
TOKEN = "tok_secret_value"
PATH = f"/2010-04-01/Accounts/{SID}/Messages.json"


def channel(base_url: str, *, allow_private: bool = True) -> SmsChannel:
    # The local stand-in for the provider is on 127.0.0.1: private targets allowed.
    return SmsChannel(
        base_url=base_url,
        account_sid=SID,
        auth_token=TOKEN,
        sender="+15005550006",
        timeout=5,
        guard=UrlGuard(allow_private=allow_private),
    )


async def test_twilio_request_shape_and_basic_auth(receiver: Receiver) -> None:
    sms = channel(receiver.url("/"))
    try:
        result = await sms.send(
            make_message(sms_text="Your code is 1234"),
            Contact(user_id="u1", phone="+49 151 23456789"),
        )
    finally:
        await sms.aclose()

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert result.provider == "twilio"
    [req] = receiver.requests
    assert req.method == "POST"
    assert req.path == PATH
    assert req.headers["content-type"].startswith("application/x-www-form-urlencoded")
    expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert req.headers["authorization"] == expected
    form = parse_qs(req.body.decode())
    assert form == {
        "To": ["+4915123456789"],
        "From": ["+15005550006"],
        "Body": ["Your code is 1234"],
    }


async def test_body_falls_back_to_title_and_text_and_is_capped(receiver: Receiver) -> None:
    sms = channel(receiver.url())
    try:
        await sms.send(make_message(), Contact(user_id="u1", phone="+14155550123"))
        await sms.send(
            make_message(sms_text="y" * 5000), Contact(user_id="u1", phone="+14155550123")
        )
    finally:
        await sms.aclose()
    first, second = (parse_qs(r.body.decode())["Body"][0] for r in receiver.requests)
    assert first == "Ana followed you: Ana started following you."
    assert len(second) == MAX_BODY


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (400, Outcome.PERMANENT),
        (401, Outcome.PERMANENT),
        (429, Outcome.TRANSIENT),
        (503, Outcome.TRANSIENT),
    ],
)
async def test_status_classification(receiver: Receiver, status: int, outcome: Outcome) -> None:
    receiver.reply(PATH, status, {"Retry-After": "7"})
    sms = channel(receiver.url())
    try:
        result = await sms.send(make_message(), Contact(user_id="u1", phone="+14155550123"))
    finally:
        await sms.aclose()
    assert result.outcome is outcome
    assert result.retry_after == (7.0 if outcome is Outcome.TRANSIENT else None)
    assert TOKEN not in (result.detail or "")


async def test_api_down_is_transient() -> None:
    sms = channel(f"http://127.0.0.1:{closed_port()}")
    try:
        result = await sms.send(make_message(), Contact(user_id="u1", phone="+14155550123"))
    finally:
        await sms.aclose()
    assert result.outcome is Outcome.TRANSIENT


async def test_no_phone_is_no_contact_and_bad_phone_is_permanent(receiver: Receiver) -> None:
    sms = channel(receiver.url())
    try:
        none = await sms.send(make_message(), Contact(user_id="u1"))
        bad = await sms.send(make_message(), Contact(user_id="u1", phone="12"))
    finally:
        await sms.aclose()
    assert none.outcome is Outcome.NO_CONTACT
    assert bad.outcome is Outcome.PERMANENT
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("+1 (415) 555-0123", "+14155550123"), ("+44 20 7946 0958", "+442079460958")],
)
def test_normalize_e164(raw: str, expected: str) -> None:
    assert normalize_e164(raw) == expected


@pytest.mark.parametrize("raw", ["", "hello", "0151 23456789", "+1 555", "+999 123456"])
def test_normalize_e164_rejects(raw: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalize_e164(raw)
    assert info.value.code == "validation_failed"
    assert info.value.__cause__ is not None or raw.startswith("+")


def test_token_not_in_repr() -> None:
    assert TOKEN not in repr(channel("http://127.0.0.1:1"))


async def test_base_url_on_a_private_address_is_blocked(receiver: Receiver) -> None:
    sms = channel(receiver.url("/"), allow_private=False)
    try:
        result = await sms.send(make_message(), Contact(user_id="u1", phone="+14155550123"))
    finally:
        await sms.aclose()
    assert result.outcome is Outcome.PERMANENT
    assert result.detail is not None and result.detail.startswith("blocked: ")
    assert receiver.requests == []
