"""Real local peers for the channel tests: an HTTP receiver and an SMTP server on 127.0.0.1.

Nothing here imitates Clarion code; these are stand-ins for the outside world (a webhook
receiver, a push service, a Twilio-like API, an SMTP relay), spoken to over real sockets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from clarion.delivery.channels.base import RenderedMessage


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Receiver:
    """An HTTP server that records every request and answers per path."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: dict[str, Reply] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reply(self, path: str, status: int, headers: dict[str, str] | None = None) -> None:
        self.replies[path] = Reply(status, headers or {})

    def at(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        reply = self.replies.get(request.path, Reply(200))
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


class SmtpSink:
    """aiosmtpd handler: keeps messages, refuses recipients by local part."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.rcpt_replies: dict[str, str] = {}  # address -> SMTP reply, e.g. "550 no"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope, msg))
        return "250 Message accepted"


@dataclass
class SmtpServer:
    sink: SmtpSink
    port: int


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    sink = SmtpSink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="smtp.test", loop=loop), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield SmtpServer(sink, port)
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def make_message(**overrides: Any) -> RenderedMessage:
    fields: dict[str, Any] = {
        "delivery_id": "dlv_01HZX3K9TESTDELIVERY",
        "notification_id": 42,
        "user_id": "u1",
        "type": "follow",
        "priority": "normal",
        "title": "Ana followed you",
        "text": "Ana started following you.",
        "payload": {"id": 42, "type": "follow", "title": "Ana followed you", "data": {"a": 1}},
    }
    fields.update(overrides)
    return RenderedMessage(**fields)
