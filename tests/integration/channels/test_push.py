"""Web Push to a local push service that decrypts with ``http_ece`` and checks VAPID."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from clarion.delivery.channels.base import Contact, Outcome, PushSubscription
from clarion.delivery.channels.push import (
    MAX_PLAINTEXT,
    PushChannel,
    generate_vapid_keys,
    load_vapid,
    vapid_public_key,
)
from clarion.services.netguard import UrlGuard

from .conftest import Receiver, Recorded, closed_port, make_message

SUBJECT = "mailto:ops@example.org"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """What a browser keeps for one subscription: its ECDH key and auth secret."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str

    @classmethod
    def new(cls, endpoint: str) -> Browser:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16), endpoint)

    def subscription(self) -> PushSubscription:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return PushSubscription(self.endpoint, b64url(public), b64url(self.auth))

    def decrypt(self, body: bytes) -> dict[str, Any]:
        plain = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        result: dict[str, Any] = json.loads(plain)
        return result


def verify_vapid(header: str, audience: str, expected_public_key: str) -> dict[str, Any]:
    """Check ``vapid t=<jwt>,k=<key>`` the way a push service does (RFC 8292)."""
    scheme, _, params = header.partition(" ")
    assert scheme == "vapid"
    parts = dict(p.split("=", 1) for p in params.split(","))
    assert parts["k"] == expected_public_key
    header_b64, claims_b64, sig_b64 = parts["t"].split(".")
    jwt_header = json.loads(unb64url(header_b64))
    assert jwt_header["alg"] == "ES256"
    sig = unb64url(sig_b64)
    assert len(sig) == 64
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(parts["k"]))
    key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    claims: dict[str, Any] = json.loads(unb64url(claims_b64))
    assert claims["aud"] == audience
    assert claims["sub"] == SUBJECT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    return claims


@pytest.fixture
def vapid_keys() -> tuple[str, str]:
    return generate_vapid_keys()


def make_channel(private_key: str) -> PushChannel:
    return PushChannel(
        vapid_private_key=private_key,
        vapid_subject=SUBJECT,
        guard=UrlGuard(allow_private=True),
        timeout=5,
    )


def only(requests: list[Recorded]) -> Recorded:
    [req] = requests
    return req


async def test_encrypted_payload_and_vapid_signature(
    receiver: Receiver, vapid_keys: tuple[str, str]
) -> None:
    private, public = vapid_keys
    browser = Browser.new(receiver.url("/push/abc"))
    receiver.reply("/push/abc", 201)
    channel = make_channel(private)
    message = make_message(push_title="New follower", push_body="Ana", url="https://x.test/n/42")
    try:
        result = await channel.send(
            message, Contact(user_id="u1", push_subscriptions=(browser.subscription(),))
        )
    finally:
        await channel.aclose()

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert result.gone_subscriptions == ()
    req = only(receiver.at("/push/abc"))
    assert req.headers["content-encoding"] == "aes128gcm"
    assert int(req.headers["ttl"]) > 0
    assert req.headers["urgency"] == "normal"
    verify_vapid(req.headers["authorization"], f"http://127.0.0.1:{receiver.port}", public)
    data = browser.decrypt(req.body)
    assert data["title"] == "New follower"
    assert data["body"] == "Ana"
    assert data["url"] == "https://x.test/n/42"
    assert data["delivery_id"] == message.delivery_id
    assert data["data"] == dict(message.payload)


async def test_one_message_to_every_subscription_and_410_is_gone(
    receiver: Receiver, vapid_keys: tuple[str, str]
) -> None:
    phone = Browser.new(receiver.url("/push/phone"))
    laptop = Browser.new(receiver.url("/push/laptop"))
    receiver.reply("/push/phone", 201)
    receiver.reply("/push/laptop", 410)
    channel = make_channel(vapid_keys[0])
    try:
        result = await channel.send(
            make_message(priority="urgent"),
            Contact(
                user_id="u1",
                push_subscriptions=(phone.subscription(), laptop.subscription()),
            ),
        )
    finally:
        await channel.aclose()

    assert result.outcome is Outcome.DELIVERED
    assert result.gone_subscriptions == (laptop.endpoint,)
    assert [t.outcome for t in result.targets] == [Outcome.DELIVERED, Outcome.PERMANENT]
    assert only(receiver.at("/push/phone")).headers["urgency"] == "high"
    # Both got the same plaintext, each encrypted to its own keys.
    assert phone.decrypt(only(receiver.at("/push/phone")).body)["title"] == "Ana followed you"
    assert laptop.decrypt(only(receiver.at("/push/laptop")).body)["title"] == "Ana followed you"


async def test_all_gone_is_permanent(receiver: Receiver, vapid_keys: tuple[str, str]) -> None:
    receiver.reply("/a", 404)
    receiver.reply("/b", 410)
    subs = (Browser.new(receiver.url("/a")), Browser.new(receiver.url("/b")))
    channel = make_channel(vapid_keys[0])
    try:
        result = await channel.send(
            make_message(),
            Contact(user_id="u1", push_subscriptions=tuple(b.subscription() for b in subs)),
        )
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.PERMANENT
    assert set(result.gone_subscriptions) == {receiver.url("/a"), receiver.url("/b")}


async def test_429_is_transient_with_retry_after(
    receiver: Receiver, vapid_keys: tuple[str, str]
) -> None:
    receiver.reply("/busy", 429, {"Retry-After": "30"})
    channel = make_channel(vapid_keys[0])
    try:
        result = await channel.send(
            make_message(),
            Contact(
                user_id="u1",
                push_subscriptions=(Browser.new(receiver.url("/busy")).subscription(),),
            ),
        )
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.TRANSIENT
    assert result.retry_after == 30.0
    assert result.gone_subscriptions == ()


async def test_push_service_down_is_transient(vapid_keys: tuple[str, str]) -> None:
    channel = make_channel(vapid_keys[0])
    browser = Browser.new(f"http://127.0.0.1:{closed_port()}/push")
    try:
        result = await channel.send(
            make_message(), Contact(user_id="u1", push_subscriptions=(browser.subscription(),))
        )
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.TRANSIENT


async def test_large_payload_drops_data_but_keeps_the_notification(
    receiver: Receiver, vapid_keys: tuple[str, str]
) -> None:
    browser = Browser.new(receiver.url("/p"))
    channel = make_channel(vapid_keys[0])
    big = make_message(payload={"blob": "x" * 10_000})
    try:
        result = await channel.send(
            big, Contact(user_id="u1", push_subscriptions=(browser.subscription(),))
        )
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.DELIVERED
    req = only(receiver.at("/p"))
    assert len(req.body) <= 4096
    data = browser.decrypt(req.body)
    assert "data" not in data and data["title"] == "Ana followed you"
    assert MAX_PLAINTEXT < 4096


async def test_no_subscriptions_is_no_contact(vapid_keys: tuple[str, str]) -> None:
    channel = make_channel(vapid_keys[0])
    try:
        result = await channel.send(make_message(), Contact(user_id="u1"))
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.NO_CONTACT


async def test_private_push_endpoint_is_blocked_without_allow_private(
    receiver: Receiver, vapid_keys: tuple[str, str]
) -> None:
    channel = PushChannel(vapid_private_key=vapid_keys[0], vapid_subject=SUBJECT)
    browser = Browser.new(receiver.url("/p"))
    try:
        result = await channel.send(
            make_message(), Contact(user_id="u1", push_subscriptions=(browser.subscription(),))
        )
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.PERMANENT
    assert receiver.requests == []


async def test_redirects_are_permanent_and_not_followed(
    receiver: Receiver, vapid_keys: tuple[str, str]
) -> None:
    receiver.reply("/moved", 307, {"Location": receiver.url("/elsewhere")})
    channel = make_channel(vapid_keys[0])
    browser = Browser.new(receiver.url("/moved"))
    try:
        result = await channel.send(
            make_message(), Contact(user_id="u1", push_subscriptions=(browser.subscription(),))
        )
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.PERMANENT
    [target] = result.targets
    assert target.detail == f"HTTP 307: redirect to http://127.0.0.1:{receiver.port}/… not followed"
    assert receiver.at("/elsewhere") == []
    assert result.gone_subscriptions == ()


def test_generated_keys_round_trip(vapid_keys: tuple[str, str]) -> None:
    private, public = vapid_keys
    assert len(unb64url(private)) == 32
    raw_public = unb64url(public)
    assert len(raw_public) == 65 and raw_public[0] == 4
    assert "=" not in private + public
    assert vapid_public_key(load_vapid(private)) == public


def test_subscription_repr_hides_auth_and_endpoint_token() -> None:
    sub = PushSubscription("https://fcm.googleapis.com/fcm/send/SECRETTOKEN", "p256", "AUTHKEY")
    assert "AUTHKEY" not in repr(sub)
    assert "SECRETTOKEN" not in repr(sub)
