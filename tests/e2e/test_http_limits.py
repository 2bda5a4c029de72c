"""Limits of the HTTP layer (api/server_protocol.py) against real ``clarion serve``
processes: header size (431), header time (closed), open connections (503)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Server, clarion_env, start_server
from tests.e2e.test_realtime import token_for

SECRET = "e2e-secret-" + "h" * 40
HEADER_TIMEOUT = 2.0


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _connect(server: Server, timeout: float = 20.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(server)), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends until it closes; (data, closed by the server)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        except TimeoutError:
            return data, False
        if not chunk:
            return data, True
        data += chunk


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _token(user: str) -> str:
    return token_for(user, secret=SECRET)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("limits")
    env = clarion_env(
        tmp_path,
        CLARION_SECRET_KEY=SECRET,
        CLARION_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        CLARION_EMBEDDED_WORKER="false",
    )
    server = start_server(tmp_path, env)
    try:
        yield server
    finally:
        server.stop()


class _Prober:
    """Another client's requests, one after another, while a test misbehaves."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=10) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.get("/healthz")
                    if r.status_code != 200:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.latencies.append(time.monotonic() - t0)
                time.sleep(0.01)

    def __enter__(self) -> _Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def test_a_1_mb_header_gets_431_at_once_and_others_are_not_held_up(limited: Server) -> None:
    request = (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    )
    with _Prober(limited) as prober:
        time.sleep(0.3)
        sock = _connect(limited)
        t0 = time.monotonic()
        sock.sendall(request)
        data, closed = _read_until_closed(sock)
        elapsed = time.monotonic() - t0
        sock.close()
        time.sleep(0.3)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), data[:300]
    assert b"connection: close" in head.lower()
    assert orjson.loads(body)["error"]["code"] == "headers_too_large"
    assert closed, "the server must close the connection after 431"
    assert elapsed < 5, elapsed
    assert not prober.failures, prober.failures
    assert len(prober.latencies) > 5
    # Generous: the machine running the suite is shared; what matters is no long stall.
    assert max(prober.latencies) < 3.0, max(prober.latencies)


def test_headers_at_the_limit_pass_and_one_byte_more_is_refused(limited: Server) -> None:
    def request_of(size: int) -> bytes:
        start = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
        end = b"\r\n\r\n"
        return start + b"p" * (size - len(start) - len(end)) + end

    # Default CLARION_MAX_HEADER_BYTES: 16,384, the request line and headers together.
    for size, status in ((16_384, b"200"), (16_385, b"431")):
        sock = _connect(limited)
        sock.sendall(request_of(size))
        data = sock.recv(65536)
        sock.close()
        assert data.startswith(b"HTTP/1.1 " + status), (size, data[:200])


def test_a_50_mb_header_is_not_read(limited: Server) -> None:
    """The server stops reading: the sender is cut off, the server's memory stays put."""
    before = _rss_kib(limited.proc.pid)
    sock = _connect(limited)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
    chunk = b"a" * 1_048_576
    sent = 0
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        for _ in range(50):
            sock.sendall(chunk)
            sent += len(chunk)
    sock.close()
    assert sent < 8 * 1_048_576, sent  # a few socket buffers at most
    assert httpx.get(f"{limited.url}/healthz", timeout=10).status_code == 200
    grown = _rss_kib(limited.proc.pid) - before
    assert grown < 16 * 1024, f"server RSS grew by {grown} KiB"


def test_slow_headers_are_cut_at_the_timeout(limited: Server) -> None:
    """Connections trickling their headers, or sending nothing, or trickling the next
    request after a first one, are closed once CLARION_HEADER_TIMEOUT_SECONDS passed."""
    t_open = time.monotonic()  # no connection's clock starts before this
    silent = [_connect(limited) for _ in range(10)]
    trickling = [_connect(limited) for _ in range(40)]
    kept_alive = _connect(limited)
    kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")
    trickling.append(kept_alive)
    t0 = time.monotonic()
    for s in trickling:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    open_ = set(trickling)
    closed_at: list[float] = []
    while open_ and time.monotonic() - t0 < HEADER_TIMEOUT * 5:
        time.sleep(0.3)
        for s in list(open_):
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                open_.discard(s)
                closed_at.append(time.monotonic() - t_open)
    assert not open_, f"{len(open_)} slow connections still open"
    # Cut after the timeout, not before (one 0.3 s tick and a send or two of slack).
    assert min(closed_at) >= HEADER_TIMEOUT - 0.2, closed_at
    for s in silent:
        data, closed = _read_until_closed(s)
        assert closed and data == b""
    for s in silent + trickling:
        s.close()
    assert httpx.get(f"{limited.url}/healthz", timeout=10).status_code == 200


async def test_answered_requests_are_not_timed(limited: Server) -> None:
    """A Server-Sent Events stream and a WebSocket outlive the header timeout: the clock
    stops once the headers are complete."""
    user = "long-lived"
    ws_url = limited.url.replace("http://", "ws://") + f"/api/v1/ws?token={_token(user)}"
    async with (
        websockets.connect(ws_url) as ws,
        httpx.AsyncClient(base_url=limited.url, timeout=15) as client,
        client.stream(
            "GET", "/api/v1/notifications/stream", params={"token": _token(user)}
        ) as stream,
    ):
        assert stream.status_code == 200
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "unread_count"
        await asyncio.sleep(HEADER_TIMEOUT * 2)
        r = await client.post(
            "/api/v1/notifications",
            json={"user_id": user, "type": "follow", "title": "still here"},
            headers={"Authorization": f"Bearer {limited.key}"},
        )
        assert r.status_code == 202, r.text
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "notification.created"
        async for line in stream.aiter_lines():
            if line.startswith("data: ") and "still here" in line:
                break


@pytest.fixture
def few(tmp_path: Path) -> Iterator[Server]:
    env = clarion_env(
        tmp_path,
        CLARION_SECRET_KEY=SECRET,
        CLARION_MAX_CONNECTIONS="20",
        CLARION_HEADER_TIMEOUT_SECONDS="60",
        CLARION_EMBEDDED_WORKER="false",
    )
    server = start_server(tmp_path, env)
    try:
        yield server
    finally:
        server.stop()


async def test_connections_beyond_the_limit_get_503(few: Server) -> None:
    time.sleep(0.5)  # the readiness probe's connections are gone
    ws_url = few.url.replace("http://", "ws://") + "/api/v1/ws?token="
    sockets = [_connect(few) for _ in range(10)]
    sockets_ws = [await websockets.connect(ws_url + _token(f"u{i}")) for i in range(10)]
    try:
        for ws in sockets_ws:
            assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "unread_count"
        # One more, over HTTP and over WebSocket: 503, closed.
        extra = _connect(few)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data, closed = _read_until_closed(extra)
        extra.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), data[:300]
        assert orjson.loads(body)["error"]["code"] == "too_many_connections"
        assert closed
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(ws_url + _token("u-extra"))
        assert refused.value.response.status_code == 503
        # The connections already open keep working.
        for s in sockets:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
        await sockets_ws[0].send('{"type": "ping"}')
        assert orjson.loads(await asyncio.wait_for(sockets_ws[0].recv(), 10))["type"] == "pong"
        # One leaves: a new one gets in.
        sockets.pop().close()
        await asyncio.sleep(0.5)
        assert httpx.get(f"{few.url}/healthz", timeout=10).status_code == 200
    finally:
        for s in sockets:
            s.close()
        for ws in sockets_ws:
            await ws.close()
