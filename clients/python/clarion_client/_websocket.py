"""A minimal WebSocket client (RFC 6455) on asyncio streams: enough for the live inbox
(text frames, ping/pong, close), so that the client needs no WebSocket library. No
extensions are offered, so frames are never compressed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import ssl
import struct
from urllib.parse import urlsplit

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_FRAME = 16 * 1024 * 1024
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class HandshakeError(ConnectionError):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"WebSocket handshake answered {status}")
        self.status = status
        self.body = body


class WebSocketClosed(ConnectionError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason


def _mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return data
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class WebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.closed = False

    @classmethod
    async def connect(cls, url: str, *, within: float = 30.0) -> WebSocket:
        parts = urlsplit(url)
        secure = parts.scheme in ("wss", "https")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if secure else 80)
        context = ssl.create_default_context() if secure else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), within
        )
        ws = cls(reader, writer)
        try:
            await asyncio.wait_for(ws._handshake(parts.netloc, parts.path, parts.query), within)
        except BaseException:
            writer.close()
            raise
        return ws

    async def _handshake(self, netloc: str, path: str, query: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        target = (path or "/") + (f"?{query}" if query else "")
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nUser-Agent: clarion-client-python\r\n\r\n"
        )
        self._writer.write(request.encode())
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 101:
            length = int(headers.get("content-length", "0") or 0)
            body = await self._reader.readexactly(length) if length else b""
            raise HandshakeError(status, body)
        expected = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise ConnectionError("WebSocket handshake: wrong Sec-WebSocket-Accept")

    async def send_text(self, text: str) -> None:
        await self._send(OP_TEXT, text.encode())

    async def _send(self, opcode: int, payload: bytes) -> None:
        key = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self._writer.write(head + key + _mask(payload, key))
        await self._writer.drain()

    async def _frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = await self._reader.readexactly(2)
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self._reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self._reader.readexactly(8))
        if n > _MAX_FRAME:
            raise ConnectionError(f"WebSocket frame of {n} bytes")
        key = await self._reader.readexactly(4) if b2 & 0x80 else b""
        payload = await self._reader.readexactly(n)
        return bool(b1 & 0x80), b1 & 0x0F, _mask(payload, key) if key else payload

    async def recv(self) -> str:
        """The next text message; answers pings; raises :class:`WebSocketClosed` at the
        close frame."""
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = await self._frame()
            if opcode == OP_PING:
                await self._send(OP_PONG, payload)
            elif opcode == OP_PONG:
                continue
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                await self.close(code)
                raise WebSocketClosed(code, reason)
            else:
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8")

    async def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        sendable = code in _SENDABLE or 3000 <= code < 5000
        with contextlib.suppress(OSError, RuntimeError):
            await self._send(OP_CLOSE, struct.pack("!H", code if sendable else 1000))
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
