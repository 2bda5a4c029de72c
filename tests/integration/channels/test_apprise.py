"""Apprise through its ``json://`` and ``form://`` schemes to a local HTTP server, and the
address rules on every Apprise target (up front and at dial time)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from clarion.delivery.channels.apprise import AppriseChannel
from clarion.delivery.channels.base import Contact, Outcome
from clarion.services.netguard import UrlGuard

from .conftest import Receiver, make_message


def channel(urls: tuple[str, ...] = (), allow_private: bool = True) -> AppriseChannel:
    return AppriseChannel(urls=urls, guard=UrlGuard(allow_private=allow_private), timeout=10)


async def test_json_and_form_targets_receive_the_message(receiver: Receiver) -> None:
    port = receiver.port
    user_url = f"json://127.0.0.1:{port}/chat?token=s3cr3t"
    ops_url = f"form://127.0.0.1:{port}/ops"
    result = await channel((ops_url,)).send(
        make_message(url="https://x.test/n/42"), Contact(user_id="u1", apprise_urls=(user_url,))
    )

    assert result.outcome is Outcome.DELIVERED, result
    assert [t.outcome for t in result.targets] == [Outcome.DELIVERED, Outcome.DELIVERED]
    [chat] = receiver.at("/chat")
    body = json.loads(chat.body)
    assert body["title"] == "Ana followed you"
    assert body["message"].startswith("Ana started following you.")
    assert "https://x.test/n/42" in body["message"]
    [ops] = receiver.at("/ops")
    assert parse_qs(ops.body.decode())["title"] == ["Ana followed you"]
    # Targets are reported redacted: no tokens, paths or queries.
    for target in result.targets:
        assert "s3cr3t" not in target.target and "/chat" not in target.target


async def test_failing_target_recorded_as_failed(receiver: Receiver) -> None:
    receiver.reply("/broken", 500)
    port = receiver.port
    result = await channel().send(
        make_message(),
        Contact(
            user_id="u1",
            apprise_urls=(f"json://127.0.0.1:{port}/ok", f"json://127.0.0.1:{port}/broken"),
        ),
    )
    assert result.outcome is Outcome.DELIVERED
    assert [t.outcome for t in result.targets] == [Outcome.DELIVERED, Outcome.TRANSIENT]
    assert result.detail == (
        f"1/2 targets notified; json://127.0.0.1:{port}/…: service reported failure"
    )


async def test_all_failing_is_transient(receiver: Receiver) -> None:
    receiver.reply("/broken", 503)
    result = await channel((f"json://127.0.0.1:{receiver.port}/broken",)).send(
        make_message(), Contact(user_id="u1")
    )
    assert result.outcome is Outcome.TRANSIENT
    [target] = result.targets
    assert target.outcome is Outcome.TRANSIENT


async def test_invalid_url_is_permanent() -> None:
    result = await channel().send(
        make_message(), Contact(user_id="u1", apprise_urls=("nosuchscheme://whatever",))
    )
    assert result.outcome is Outcome.PERMANENT


async def test_none_configured_is_no_contact() -> None:
    result = await channel().send(make_message(), Contact(user_id="u1"))
    assert result.outcome is Outcome.NO_CONTACT


async def test_user_supplied_http_scheme_to_loopback_is_blocked(receiver: Receiver) -> None:
    result = await channel(allow_private=False).send(
        make_message(),
        Contact(user_id="u1", apprise_urls=(f"json://127.0.0.1:{receiver.port}/x",)),
    )
    assert result.outcome is Outcome.PERMANENT
    assert receiver.requests == []


@pytest.mark.parametrize("scheme", ["ntfy", "gotify", "apprise", "kodi", "mmost", "json"])
async def test_every_scheme_with_a_host_is_checked_operator_urls_too(
    receiver: Receiver, scheme: str
) -> None:
    url = f"{scheme}://127.0.0.1:{receiver.port}/token"
    for ch, contact in [
        (channel(allow_private=False), Contact(user_id="u1", apprise_urls=(url,))),
        (channel((url,), allow_private=False), Contact(user_id="u1")),
    ]:
        result = await ch.send(make_message(), contact)
        [target] = result.targets
        assert result.outcome is Outcome.PERMANENT
        assert target.detail == "blocked: address 127.0.0.1 is not a public address"
    assert receiver.requests == []


async def test_a_second_dns_answer_is_caught_when_dialling(receiver: Receiver) -> None:
    """The name passes the check up front (a public answer), then resolves to loopback in
    the thread that runs Apprise: the connection is refused there."""

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    guard = UrlGuard(resolver=public, sync_resolver=lambda host, port: ["127.0.0.1"])
    ch = AppriseChannel(guard=guard, timeout=10)
    urls = (f"json://hooks.example:{receiver.port}/x", "tgram://123456789:AAHsecretBot/987")
    result = await ch.send(make_message(), Contact(user_id="u1", apprise_urls=urls))
    await ch.aclose()
    assert result.outcome is Outcome.PERMANENT
    assert [t.detail for t in result.targets] == [
        "blocked: address 127.0.0.1 of 'hooks.example' is not a public address",
        "blocked: address 127.0.0.1 of 'api.telegram.org' is not a public address",
    ]
    assert receiver.requests == []


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.reply("/moved", 302, {"Location": receiver.url("/elsewhere")})
    result = await channel().send(
        make_message(),
        Contact(user_id="u1", apprise_urls=(f"json://127.0.0.1:{receiver.port}/moved",)),
    )
    assert result.outcome is Outcome.PERMANENT
    [target] = result.targets
    assert target.detail == f"blocked: redirect to http://127.0.0.1:{receiver.port}/… not followed"
    assert [r.path for r in receiver.requests] == ["/moved"]


async def test_services_on_this_machine_are_refused_unless_private_is_allowed() -> None:
    result = await channel(allow_private=False).send(
        make_message(), Contact(user_id="u1", apprise_urls=("syslog://",))
    )
    assert result.outcome is Outcome.PERMANENT
    assert result.targets[0].detail == "blocked: syslog:// notifies this machine itself"


def test_urls_are_redacted_in_repr() -> None:
    ch = AppriseChannel(urls=("tgram://123456789:AAHsecretBotToken/987654321",))
    assert "AAHsecretBotToken" not in repr(ch)
    contact = Contact(user_id="u1", apprise_urls=("slack://T000/B000/XXXXsecret",))
    assert "XXXXsecret" not in repr(contact)
