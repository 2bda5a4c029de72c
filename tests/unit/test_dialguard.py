"""The dial-time guard: what a guarded call may connect to, and that nothing else is touched
(other threads, the event loop, the same thread after the call, redirects outside)."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from clarion.delivery.channels import dialguard
from clarion.delivery.channels.dialguard import DialBlocked, DialScope, run_guarded

dialguard.install()


class Canary:
    """A loopback TCP listener that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)  # closing does not wake a blocked accept() everywhere
        self.port: int = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.hits += 1
            conn.close()

    def count(self, expected: int) -> int:
        """The hits so far, waiting (briefly) for ``expected`` of them to be accepted."""
        deadline = time.monotonic() + 2
        while self.hits < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.hits

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    try:
        yield c
    finally:
        c.close()


def dial(port: int, host: str = "127.0.0.1") -> None:
    with socket.create_connection((host, port), timeout=5):
        pass


def table(answers: dict[str, Sequence[str]]) -> Callable[[str, int], Sequence[str]]:
    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise OSError(f"no such name {host!r}")
        return answers[host]

    return resolve


def test_loopback_in_every_spelling_is_refused(canary: Canary) -> None:
    scope = DialScope()
    for host in ("127.0.0.1", "2130706433", "0x7f.1", "017700000001", "127.1"):
        with pytest.raises(DialBlocked):
            run_guarded(scope, dial, canary.port, host)
    with pytest.raises(DialBlocked):
        run_guarded(scope, dial, canary.port, "localhost")
    with pytest.raises(DialBlocked):  # a raw connect with a name, no getaddrinfo first
        run_guarded(scope, socket.socket().connect, ("localhost", canary.port))
    assert canary.hits == 0
    assert len(scope.blocked) == 7
    assert all("not a public address" in b or "loopback name" in b for b in scope.blocked)


def test_names_are_judged_by_every_address_and_pinned() -> None:
    scope = DialScope(
        resolver=table(
            {
                "hooks.example": ["93.184.216.34"],
                "inside.example": ["10.1.2.3"],
                "mixed.example": ["93.184.216.34", "127.0.0.1"],
                "meta.example": ["169.254.169.254"],
                "v6.example": ["fd00::1"],
            }
        )
    )

    def admitted(host: str) -> Any:
        return run_guarded(scope, scope.admit, socket.AF_INET, (host, 443))

    # A name is connected to at the address that was checked, not resolved again.
    assert admitted("hooks.example") == ("93.184.216.34", 443)
    for host in ("inside.example", "mixed.example", "meta.example", "v6.example"):
        with pytest.raises(DialBlocked):
            admitted(host)
    with pytest.raises(socket.gaierror):
        admitted("unknown.example")
    infos = run_guarded(scope, socket.getaddrinfo, "hooks.example", 80)
    assert [i[4] for i in infos] == [("93.184.216.34", 80)]
    with pytest.raises(DialBlocked):
        run_guarded(scope, socket.getaddrinfo, "mixed.example", 80)


def test_private_ranges_udp_and_unix_sockets_are_refused(tmp_path: Any) -> None:
    scope = DialScope()
    for address in ("10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254"):
        with pytest.raises(DialBlocked):
            run_guarded(scope, scope.admit, socket.AF_INET, (address, 80))
    for address in ("fd00::1", "fe80::1", "::1", "::ffff:127.0.0.1"):
        with pytest.raises(DialBlocked):
            run_guarded(scope, scope.admit, socket.AF_INET6, (address, 80, 0, 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with udp, pytest.raises(DialBlocked):
        run_guarded(scope, udp.sendto, b"x", ("127.0.0.1", 514))
    unix = socket.socket(socket.AF_UNIX)
    with unix, pytest.raises(DialBlocked):
        run_guarded(scope, unix.connect, str(tmp_path / "sock"))


def test_allow_private_lets_loopback_through(canary: Canary) -> None:
    run_guarded(DialScope(allow_private=True), dial, canary.port)
    assert canary.count(1) == 1


def test_the_scope_ends_with_the_call_and_stays_in_its_thread(canary: Canary) -> None:
    inside = threading.Event()
    release = threading.Event()

    def guarded_and_waiting() -> None:
        inside.set()
        release.wait(5)
        dial(canary.port)

    scope = DialScope()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run_guarded, scope, guarded_and_waiting)
        assert inside.wait(5)
        # While a guarded call runs: this thread and a fresh one connect as usual.
        dial(canary.port)
        other = threading.Thread(target=dial, args=(canary.port,))
        other.start()
        other.join(5)
        assert canary.count(2) == 2
        release.set()
        with pytest.raises(DialBlocked):
            future.result(5)
        # The same pool thread, after the call: no scope left behind.
        pool.submit(dial, canary.port).result(5)
    assert canary.count(3) == 3
    assert dialguard.current_scope() is None


async def test_the_event_loop_is_not_affected(canary: Canary) -> None:
    started = threading.Event()
    release = threading.Event()

    def guarded() -> None:
        started.set()
        release.wait(5)

    loop = asyncio.get_running_loop()
    call = loop.run_in_executor(None, run_guarded, DialScope(), guarded)
    assert await asyncio.to_thread(started.wait, 5)
    _reader, writer = await asyncio.open_connection("127.0.0.1", canary.port)
    writer.close()
    await asyncio.to_thread(dial, canary.port)  # a default-executor thread, too
    release.set()
    await call
    assert await asyncio.to_thread(canary.count, 2) == 2


def test_work_handed_on_by_the_guarded_call_stays_guarded(canary: Canary) -> None:
    """Apprise runs services in its own pool with a copy of the caller's context, and some
    plugins start threads of their own: both stay under the scope."""
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            dial(canary.port)
        except BaseException as exc:
            errors.append(exc)

    def hand_on() -> None:
        with ThreadPoolExecutor(1) as pool:
            context = contextvars.copy_context()
            with pytest.raises(DialBlocked):
                pool.submit(context.run, dial, canary.port).result(5)
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join(5)

    scope = DialScope()
    run_guarded(scope, hand_on)
    assert canary.hits == 0
    assert len(errors) == 1 and isinstance(errors[0], DialBlocked)
    assert len(scope.blocked) == 2


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_redirects_are_not_followed_inside_and_are_outside(canary: Canary) -> None:
    handler = type("Handler", (_Redirect,), {"target": f"http://127.0.0.1:{canary.port}/x"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        scope = DialScope(allow_private=True)  # the redirector itself is on loopback
        response = run_guarded(scope, requests.get, url, timeout=5)
        assert response.status_code == 302
        assert canary.hits == 0
        assert scope.blocked == [f"redirect to http://127.0.0.1:{canary.port}/… not followed"]
        # Outside a guarded call requests behaves as ever (and reaches the canary).
        with pytest.raises(requests.RequestException):
            requests.get(url, timeout=5)
        assert canary.count(1) == 1
    finally:
        server.shutdown()
        server.server_close()
