"""A TCP proxy in front of a real server that can misbehave the way networks and crashed
servers do: answer a request itself (a 503 from a load balancer, a 429), or pass a request
on and cut the connection once the server has started to answer (the answer is lost).
One request per connection: it asks the server to close after each answer."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.e2e.conftest import free_port


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    answered: bytes = b""


@dataclass
class FaultProxy:
    upstream_port: int
    port: int = field(default_factory=free_port)
    #: Canned answers for the next requests, in order (raw HTTP responses).
    canned: list[bytes] = field(default_factory=list)
    #: Called (in the proxy's thread) when the server has begun to answer; the answer is
    #: then dropped and the client's connection closed.
    cut_after_forward: Callable[[], None] | None = None
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> asyncio.Server:
            return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        server = self._loop.run_until_complete(start())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            payload = await reader.readexactly(length) if length else b""
            seen = Seen(method, path, headers)
            self.seen.append(seen)
            if self.canned:
                seen.answered = self.canned.pop(0)
                writer.write(seen.answered)
                await writer.drain()
                return
            kept = [ln for ln in lines[1:] if ln and not ln.lower().startswith("connection:")]
            request = "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode()
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.upstream_port
                )
            except OSError:
                return  # the server is down: the client sees its connection closed
            up_writer.write(request + payload)
            await up_writer.drain()
            if self.cut_after_forward is not None:
                first = await up_reader.read(1)
                cut, self.cut_after_forward = self.cut_after_forward, None
                if first:
                    cut()
                    up_writer.close()
                    return
            answer = await up_reader.read()
            seen.answered = answer
            up_writer.close()
            writer.write(answer)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()


def answer(status: int, code: str, *, retry_after: str | None = None) -> bytes:
    """A raw error answer in Clarion's error shape."""
    import json

    body = json.dumps(
        {
            "error": {
                "code": code,
                "message": code.replace("_", " "),
                "details": None,
                "doc": f"/docs/errors#{code}",
            }
        }
    ).encode()
    head = [
        f"HTTP/1.1 {status} X",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
