"""The registry, failover between real SMTP providers, and building from Settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from clarion.config import Settings
from clarion.delivery.channels.base import Contact, Outcome
from clarion.delivery.channels.email import EmailChannel
from clarion.delivery.channels.push import generate_vapid_keys
from clarion.delivery.channels.registry import ChannelRegistry, FailoverChannel, build_registry
from clarion.delivery.channels.webhook import WebhookChannel

from .conftest import SmtpServer, closed_port, make_message


async def test_failover_to_second_smtp_when_first_is_down(smtp_server: SmtpServer) -> None:
    down = EmailChannel(host="127.0.0.1", port=closed_port(), timeout=2, provider="smtp-primary")
    up = EmailChannel(host="127.0.0.1", port=smtp_server.port, timeout=5, provider="smtp-backup")
    email = FailoverChannel("email", [down, up])

    result = await email.send(make_message(), Contact(user_id="u1", email="bob@example.com"))

    assert result.outcome is Outcome.DELIVERED
    assert result.provider == "smtp-backup"
    assert len(smtp_server.sink.messages) == 1


async def test_failover_stops_at_a_permanent_answer(smtp_server: SmtpServer) -> None:
    smtp_server.sink.rcpt_replies["gone@example.com"] = "550 no such user"
    first = EmailChannel(host="127.0.0.1", port=smtp_server.port, timeout=5, provider="a")
    second = EmailChannel(host="127.0.0.1", port=smtp_server.port, timeout=5, provider="b")
    result = await FailoverChannel("email", [first, second]).send(
        make_message(), Contact(user_id="u1", email="gone@example.com")
    )
    assert result.outcome is Outcome.PERMANENT
    assert result.provider == "a"


async def test_all_providers_down_is_transient() -> None:
    providers = [
        EmailChannel(host="127.0.0.1", port=closed_port(), timeout=2, provider=f"p{i}")
        for i in range(2)
    ]
    result = await FailoverChannel("email", providers).send(
        make_message(), Contact(user_id="u1", email="bob@example.com")
    )
    assert result.outcome is Outcome.TRANSIENT
    assert result.provider == "p1"


async def test_registry_refuses_duplicates() -> None:
    registry = ChannelRegistry()
    registry.register(EmailChannel(host="127.0.0.1"))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(FailoverChannel("email", [EmailChannel(host="127.0.0.1")]))
    assert registry.names() == ["email"]
    assert "email" in registry and registry.get("sms") is None
    await registry.aclose()


async def test_build_registry_registers_configured_channels_only() -> None:
    bare = build_registry(Settings(_env_file=None))
    assert sorted(bare.names()) == ["apprise", "webhook"]
    await bare.aclose()

    full = build_registry(
        Settings(
            _env_file=None,
            smtp_host="127.0.0.1",
            vapid_private_key=SecretStr(generate_vapid_keys()[0]),
            sms_base_url="http://127.0.0.1:1",
            sms_account_sid="AC1",
            sms_auth_token=SecretStr("t"),
            sms_from="+15005550006",
        )
    )
    assert sorted(full.names()) == ["apprise", "email", "push", "sms", "webhook"]
    assert isinstance(full["webhook"], WebhookChannel)
    await full.aclose()


def test_build_registry_rejects_half_configured_sms() -> None:
    with pytest.raises(ValueError, match="SMS"):
        build_registry(Settings(_env_file=None, sms_base_url="http://127.0.0.1:1"))
