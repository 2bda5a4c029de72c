"""Email over SMTP (aiosmtplib): multipart text + HTML, one-click unsubscribe.

One connection per message keeps the channel simple and robust against servers that drop
idle connections; pooling is a later optimisation if a benchmark asks for it.

Classification follows SMTP's own reply classes: 4xx replies mean "try later" (greylisting,
mailbox busy), 5xx replies mean "never" (550 no such user). Connection problems are
transient. Authentication failures are classified transient on purpose: they are a
configuration fault on our side, and parking mail for retries gives the operator time to
fix the password instead of killing every email sent meanwhile.
"""

from __future__ import annotations

import logging
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import ClassVar, Literal

import aiosmtplib

from clarion.delivery.channels.base import (
    Channel,
    Contact,
    Outcome,
    RenderedMessage,
    SendResult,
)

log = logging.getLogger(__name__)

TlsMode = Literal["none", "starttls", "tls"]


def _domain_of(address: str) -> str:
    _, addr = parseaddr(address)
    domain = addr.rpartition("@")[2]
    return domain or "clarion"


def build_message(message: RenderedMessage, to: str, sender: str) -> EmailMessage:
    """The MIME message for ``message``; ``ValueError`` for unusable addresses/headers.

    Message-ID is derived from the delivery id, so a retried delivery carries the same id
    and receiving systems (and our own bounce handling) can recognise duplicates.
    """
    msg = EmailMessage()
    msg["Subject"] = message.email_subject or message.title
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{message.delivery_id}@{_domain_of(sender)}>"
    # RFC 3834: stop vacation responders from answering a machine.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Clarion-Delivery-Id"] = message.delivery_id
    if message.unsubscribe_url:
        # RFC 2369 + RFC 8058: mail clients show an unsubscribe button that POSTs to the URL.
        msg["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(message.text)
    if message.html:
        msg.add_alternative(message.html, subtype="html")
    # Touch every header now so injection attempts fail here, not half-way into SMTP.
    msg.as_bytes()
    return msg


class EmailChannel(Channel):
    """Sends through one SMTP server (``CLARION_SMTP_*``)."""

    name: ClassVar[str] = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        sender: str = "Clarion <notifications@localhost>",
        tls: TlsMode = "none",
        timeout: float = 10.0,
        provider: str = "smtp",
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._sender = sender
        self._tls: TlsMode = tls
        self._timeout = timeout
        self.provider = provider

    def __repr__(self) -> str:
        return f"EmailChannel(host={self._host!r}, port={self._port}, tls={self._tls!r})"

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        if not contact.email:
            return SendResult(Outcome.NO_CONTACT, self.provider, "user has no email address")
        try:
            # Address() validates the syntax and refuses CR/LF (header injection).
            to = str(Address(addr_spec=contact.email))
            mime = build_message(message, to, self._sender)
        except (ValueError, TypeError, IndexError) as exc:
            return self._done(Outcome.PERMANENT, f"cannot build message: {exc}")
        try:
            responses, _ = await aiosmtplib.send(
                mime,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._tls == "tls",
                start_tls=self._tls == "starttls",
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            worst = max(codes) if codes else 550
            return self._reply(worst, "; ".join(f"{r.code} {r.message}" for r in exc.recipients))
        except aiosmtplib.SMTPAuthenticationError as exc:
            return self._done(Outcome.TRANSIENT, f"authentication failed: {exc.code}")
        except aiosmtplib.SMTPResponseException as exc:
            return self._reply(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connect errors, timeouts, disconnects, TLS handshake failures.
            return self._done(Outcome.TRANSIENT, f"{type(exc).__name__}: {exc}")
        refused = {rcpt: resp for rcpt, resp in responses.items() if resp.code >= 400}
        if refused:
            code = max(resp.code for resp in refused.values())
            return self._reply(code, "; ".join(f"{r.code} {r.message}" for r in refused.values()))
        return self._done(Outcome.DELIVERED, "accepted by SMTP server")

    def _reply(self, code: int, text: str) -> SendResult:
        outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TRANSIENT
        return self._done(outcome, f"SMTP {code}: {text}".strip())

    def _done(self, outcome: Outcome, detail: str) -> SendResult:
        log.info("email %s via %s: %s", outcome.value, self.provider, detail)
        return SendResult(outcome, self.provider, detail[:500])
