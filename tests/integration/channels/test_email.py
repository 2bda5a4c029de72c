"""Email against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from clarion.delivery.channels.base import Contact, Outcome
from clarion.delivery.channels.email import EmailChannel

from .conftest import SmtpServer, closed_port, make_message


def channel(port: int) -> EmailChannel:
    return EmailChannel(
        host="127.0.0.1", port=port, sender="Clarion <notify@example.org>", timeout=5
    )


async def test_multipart_message_with_stable_id_and_one_click_unsubscribe(
    smtp_server: SmtpServer,
) -> None:
    message = make_message(
        email_subject="You have a new follower",
        html="<p>Ana started <b>following</b> you.</p>",
        unsubscribe_url="https://clarion.example/u/unsub?t=abc",
    )
    result = await channel(smtp_server.port).send(
        message, Contact(user_id="u1", email="bob@example.com")
    )

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert result.provider == "smtp"
    [(envelope, mail)] = smtp_server.sink.messages
    assert envelope.rcpt_tos == ["bob@example.com"]
    assert envelope.mail_from == "notify@example.org"
    assert mail["Subject"] == "You have a new follower"
    assert mail["Message-ID"] == "<dlv_01HZX3K9TESTDELIVERY@example.org>"
    assert mail["List-Unsubscribe"] == "<https://clarion.example/u/unsub?t=abc>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert plain.get_content().strip() == "Ana started following you."
    assert "<b>following</b>" in html.get_content()


async def test_text_only_without_unsubscribe_headers(smtp_server: SmtpServer) -> None:
    result = await channel(smtp_server.port).send(
        make_message(), Contact(user_id="u1", email="bob@example.com")
    )
    assert result.outcome is Outcome.DELIVERED
    [(_, mail)] = smtp_server.sink.messages
    assert mail.get_content_type() == "text/plain"
    assert mail["Subject"] == "Ana followed you"
    assert "List-Unsubscribe" not in mail


async def test_550_recipient_rejected_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.sink.rcpt_replies["gone@example.com"] = "550 5.1.1 No such user"
    result = await channel(smtp_server.port).send(
        make_message(), Contact(user_id="u1", email="gone@example.com")
    )
    assert result.outcome is Outcome.PERMANENT
    assert result.detail is not None and "550" in result.detail
    assert smtp_server.sink.messages == []


async def test_451_greylisting_is_transient(smtp_server: SmtpServer) -> None:
    smtp_server.sink.rcpt_replies["grey@example.com"] = "451 4.7.1 Try again later"
    result = await channel(smtp_server.port).send(
        make_message(), Contact(user_id="u1", email="grey@example.com")
    )
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail is not None and "451" in result.detail


async def test_server_down_is_transient() -> None:
    result = await channel(closed_port()).send(
        make_message(), Contact(user_id="u1", email="bob@example.com")
    )
    assert result.outcome is Outcome.TRANSIENT


async def test_no_email_is_no_contact() -> None:
    result = await channel(closed_port()).send(make_message(), Contact(user_id="u1"))
    assert result.outcome is Outcome.NO_CONTACT


async def test_header_injection_in_address_is_permanent(smtp_server: SmtpServer) -> None:
    result = await channel(smtp_server.port).send(
        make_message(), Contact(user_id="u1", email="bob@example.com\r\nBcc: eve@example.com")
    )
    assert result.outcome is Outcome.PERMANENT
    assert smtp_server.sink.messages == []
