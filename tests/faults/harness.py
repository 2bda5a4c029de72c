"""The fault suite's toolkit: processes it may kill, receivers that record every copy they
get, a checker that classifies what arrived, and the JSON figures each test leaves behind.

Everything listens on 127.0.0.1 only, and every process is started here with ``Popen`` and
stopped by its own PID (``kill()`` is SIGKILL, ``stop()`` is SIGTERM then SIGKILL): nothing
is ever stopped by name, and the shared PostgreSQL/Redis are never touched.

API
---

Processes
    ``ClarionProcess(role, workdir, env, port=None)``: one ``clarion serve`` (role
    ``"serve"``, a fixed port so a restart comes back at the same URL) or ``clarion worker``
    (role ``"worker"``). ``start(wait=True)`` waits for ``/readyz`` (serve) or for the
    worker's SIGTERM handler (so that a SIGTERM drains instead of killing), ``kill()``
    sends SIGKILL by PID, ``stop()`` SIGTERM (the drain) and returns the exit code,
    ``restart()`` starts it again, ``url``, ``pid``, ``log``. ``ProcessSet`` keeps every
    process a test starts and stops the ones still running at teardown (fixture
    ``processes``). The environment comes from ``tests.e2e.conftest.clarion_env``;
    ``cli(env, *args, cwd=)`` runs a one-off command (``migrate``, ``api-key create``).

``PrivatePostgres(root)``
    A PostgreSQL of the test's own (``initdb`` + ``postgres`` from
    /usr/lib/postgresql/*/bin) on a free 127.0.0.1 port, data under ``root`` (a directory
    the ``postgres`` account can enter: run as root, the server runs as that account).
    ``start()`` waits until it accepts connections, ``stop("fast" | "immediate")``
    signals its postmaster PID (SIGINT / SIGQUIT, as ``pg_ctl -m`` does) and waits for it
    to exit, ``restart(mode)``, ``refused_at`` (when the last connection attempt that
    failed during ``start()`` began: the server was certainly down then),
    ``create_database(name)``, ``url`` (SQLAlchemy, asyncpg),
    ``dsn``, ``pid``. Fixture ``private_pg`` gives a started one with database
    ``clarion`` and stops it at teardown.

Receivers (each records every copy, duplicates included)
    ``WebhookReceiver(identify, delay=0.0)``: an aiohttp server in a thread of its own;
    ``identify(payload, headers)`` returns the client-side identity a copy carries; each
    POST is recorded as a ``Copy(channel="webhook", identity, copy_id=webhook-id)``.
    ``SmtpReceiver(identify)``: an aiosmtpd server in a thread; ``identify(message)``
    returns the identity, ``copy_id`` is the ``Message-ID``. Both have ``start()``,
    ``stop()``, ``port``, ``copies()``, ``count``.

Checker
    ``classify(sent, copies)``: ``sent`` maps each identity the client sent to whether it
    was acknowledged; ``copies`` is everything the receivers (or a store read) saw. The
    answer, like Jepsen's queue checker, counts identities delivered exactly once,
    duplicated (more than one copy, all with the same copy id: a receiver can drop the
    extras), ``conflicting`` (copies with different copy ids: two distinct deliveries of
    one send), ``lost`` (acknowledged, no copy), ``recovered`` (not acknowledged, yet
    delivered) and ``unexpected`` copies (an identity never sent).

Load and figures
    ``Load(url, key, statuses, clients=, budget=)``: client threads sending
    ``(identity, body)`` items, each through ``send_until_acknowledged``; ``sent()``
    gives ``identity -> acknowledged`` for ``classify``. ``ReadyProbe(url)`` samples
    ``/readyz``. ``stored_copies(database_url, type)``: stored notifications as copies
    (identity ``data.client_id``).
    ``StatusLog``: thread-safe counts of the HTTP statuses (and ``connect_error``,
    ``timeout``) clients saw, with every 503 checked for ``Retry-After``.
    ``send_until_acknowledged(...)``: one client send, retried with the same
    ``Idempotency-Key`` until a 202 or a deadline.
    ``write_result(name, figures)``: ``build/faults/<name>.json``;
    ``scripts/faults-table`` turns those files into the table in docs/reliability.md.
    ``expect(cond, msg)`` raises ``PendingBehaviour``: an assertion on behaviour not
    built yet, for ``xfail(strict=True, raises=PendingBehaviour)``.

Markers: every test under tests/faults is marked ``faults`` (tests/faults/conftest.py);
the ones also marked ``faults_quick`` run in ``make test`` as well, the rest only in
``make faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import httpx

from tests.e2e.conftest import CLARION, free_port

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "build" / "faults"


# --- processes -------------------------------------------------------------------------


class ClarionProcess:
    """One ``clarion serve`` or ``clarion worker`` process, restartable, stopped by PID."""

    def __init__(
        self,
        role: Literal["serve", "worker"],
        workdir: Path,
        env: Mapping[str, str],
        port: int | None = None,
        ready_timeout: float = 180.0,
    ) -> None:
        self.role = role
        self.workdir = workdir
        self.env = dict(env)
        self.port = port if port is not None or role == "worker" else free_port()
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = workdir / f"{role}-{id(self):x}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: bool = True) -> ClarionProcess:
        assert not self.running(), "already running"
        self.starts += 1
        args = [*CLARION, self.role]
        if self.role == "serve":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                args, env=self.env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_ready()
        return self

    def _handles_sigterm(self) -> bool:
        """Whether the process has installed its SIGTERM handler (the worker does so once
        it runs; before that SIGTERM kills it outright): bit 15 of SigCgt in /proc."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return False
        for line in status.splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
        return False

    def wait_ready(self, timeout: float | None = None) -> float:
        """Seconds until the process is ready: ``/readyz`` answered 200 (serve), or the
        SIGTERM handler is installed so that SIGTERM drains (worker)."""
        started = time.monotonic()
        deadline = started + (timeout or self.ready_timeout)
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"clarion {self.role} exited: {self.tail()}")
            if self.role == "worker":
                if self._handles_sigterm():
                    return time.monotonic() - started
            else:
                try:
                    if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"clarion {self.role} not ready: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL by PID: no drain, no cleanup, like a power cut of this process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM by PID (a worker drains), SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def restart(self, wait: bool = True) -> ClarionProcess:
        self.kill()
        return self.start(wait=wait)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def cli(env: Mapping[str, str], *args: str, cwd: Path, timeout: float = 300.0) -> str:
    """``clarion <args>``, its stdout. ``tests.e2e.conftest.run_cli`` with a timeout for
    a busy machine: start-up alone (imports) can take most of a minute under load."""
    out = subprocess.run(
        [*CLARION, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return out.stdout


class ProcessSet:
    """Every process a test starts; ``close()`` stops the ones still running, by PID."""

    def __init__(self) -> None:
        self.items: list[ClarionProcess] = []

    def add(self, proc: ClarionProcess) -> ClarionProcess:
        self.items.append(proc)
        return proc

    def close(self) -> None:
        for p in self.items:
            with contextlib.suppress(Exception):
                p.kill()


# --- a private PostgreSQL ----------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and postgres."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for path in reversed(found):
        if (path / "initdb").exists() and (path / "postgres").exists():
            return path
    return None


class PrivatePostgres:
    """A PostgreSQL of the test's own: free port, data under ``root``, stopped by PID."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise FileNotFoundError("no /usr/lib/postgresql/*/bin with initdb and postgres")
        self.bin = bindir
        self.root = root
        self.data = root / "pgdata"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "postgres.log"
        # When a connection attempt that started then was last refused (during start()).
        self.refused_at = 0.0
        # initdb and postgres refuse to run as root: the server then runs as ``postgres``.
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            pw = pwd.getpwnam("postgres")
            root.mkdir(parents=True, exist_ok=True)
            os.chown(root, pw.pw_uid, pw.pw_gid)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str = "clarion") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(a) for a in args],
            check=True,
            capture_output=True,
            timeout=120,
            user=self._user,
            cwd=self.root,
        )

    def start(self, timeout: float = 60.0) -> float:
        """Start (initdb on first use); seconds until it accepts connections."""
        if not (self.data / "PG_VERSION").exists():
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            )
        started = time.monotonic()
        out = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=32MB",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=self._user,
                cwd=self.root,
            )
        finally:
            out.close()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log.read_text()[-2000:]}")
            attempt = time.monotonic()
            if self._accepts():
                return time.monotonic() - started
            self.refused_at = attempt  # certainly not accepting connections yet
            time.sleep(0.05)
        raise RuntimeError(f"postgres not ready: {self.log.read_text()[-2000:]}")

    def _accepts(self) -> bool:
        import asyncpg

        async def probe() -> bool:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                return False
            await conn.close()
            return True

        return asyncio.run(probe())

    def stop(self, mode: Literal["fast", "immediate"] = "fast", timeout: float = 60.0) -> None:
        """What ``pg_ctl stop -m <mode>`` does, sent to our postmaster's PID: ``fast``
        (SIGINT) rolls back sessions and checkpoints, ``immediate`` (SIGQUIT) drops
        everything and recovers from the WAL on the next start."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, mode: Literal["fast", "immediate"] = "fast") -> float:
        self.stop(mode)
        return self.start()

    def create_database(self, name: str) -> str:
        import asyncpg

        async def create() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        return self.url(name)

    def close(self) -> None:
        """Stop (fast, then SIGKILL by PID) and remove the data directory."""
        with contextlib.suppress(Exception):
            self.stop("fast", timeout=20)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


# --- receivers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One copy a receiver got: whose send it is (``identity``), the id the copy carries
    for deduplication (``copy_id``: webhook-id, Message-ID, notification id), when."""

    channel: str
    identity: str
    copy_id: str
    at: float


class _Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: list[Copy] = []

    def record(self, copy: Copy) -> None:
        with self._lock:
            self._copies.append(copy)

    def copies(self) -> list[Copy]:
        with self._lock:
            return list(self._copies)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._copies)


class _LoopThread:
    """An asyncio loop in a daemon thread, for servers the test's own thread drives."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class WebhookReceiver(_Recorder):
    """Answers every POST 204 after ``delay`` seconds and records it as a copy."""

    def __init__(
        self,
        identify: Callable[[Any, Mapping[str, str]], str],
        delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.identify = identify
        self.delay = delay
        self.port = 0
        self._lt: _LoopThread | None = None
        self._runner: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            payload = json.loads(await request.read())
            if self.delay:
                await asyncio.sleep(self.delay)
            self.record(
                Copy(
                    "webhook",
                    self.identify(payload, request.headers),
                    request.headers.get("webhook-id", ""),
                    time.monotonic(),
                )
            )
            return web.Response(status=204)

        async def up() -> int:
            app = web.Application()
            app.router.add_post("/hook", hook)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

        self._lt = _LoopThread()
        self.port = self._lt.run(up())
        return self

    def stop(self) -> None:
        if self._lt is not None:
            with contextlib.suppress(Exception):
                self._lt.run(self._runner.cleanup())
            self._lt.close()
            self._lt = None


class SmtpReceiver(_Recorder):
    """An SMTP server accepting every message; each one is recorded as a copy."""

    def __init__(self, identify: Callable[[EmailMessage], str]) -> None:
        super().__init__()
        self.identify = identify
        self.port = 0
        self._lt: _LoopThread | None = None
        self._server: asyncio.Server | None = None

    def start(self) -> SmtpReceiver:
        from aiosmtpd.smtp import SMTP, Envelope, Session

        receiver = self

        class Handler:
            async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
                raw = envelope.original_content or b""
                msg = message_from_bytes(raw, policy=policy.default)
                assert isinstance(msg, EmailMessage)
                receiver.record(
                    Copy(
                        "email",
                        receiver.identify(msg),
                        str(msg.get("Message-ID", "")),
                        time.monotonic(),
                    )
                )
                return "250 Message accepted"

        handler = Handler()

        async def up() -> int:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(
                lambda: SMTP(handler, hostname="smtp.faults.test", loop=loop), "127.0.0.1", 0
            )
            return int(self._server.sockets[0].getsockname()[1])

        self._lt = _LoopThread()
        self.port = self._lt.run(up())
        return self

    def stop(self) -> None:
        if self._lt is not None:
            server = self._server

            async def down() -> None:
                if server is not None:
                    server.close()

            with contextlib.suppress(Exception):
                self._lt.run(down())
            self._lt.close()
            self._lt = None


# --- the checker -----------------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    acknowledged: int = 0
    delivered: int = 0  # identities with at least one copy
    once: int = 0  # exactly one copy
    duplicated: int = 0  # more than one copy, one copy id: the receiver can drop extras
    extra_copies: int = 0  # copies beyond the first, over all identities
    conflicting: int = 0  # copies with different copy ids: one send delivered twice
    lost: int = 0  # acknowledged, never arrived
    recovered: int = 0  # not acknowledged, arrived anyway (allowed)
    unexpected: int = 0  # copies of identities never sent
    examples: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(sent: Mapping[str, bool], copies: Iterable[Copy]) -> Tally:
    """Classify what arrived against what the client sent (``identity -> acknowledged``)."""
    by_identity: dict[str, list[Copy]] = defaultdict(list)
    tally = Tally(sent=len(sent), acknowledged=sum(1 for a in sent.values() if a))
    examples: dict[str, list[str]] = defaultdict(list)
    for c in copies:
        if c.identity not in sent:
            tally.unexpected += 1
            examples["unexpected"].append(f"{c.channel}:{c.identity}:{c.copy_id}")
            continue
        by_identity[c.identity].append(c)
    for identity, acked in sent.items():
        got = by_identity.get(identity, [])
        if not got:
            if acked:
                tally.lost += 1
                examples["lost"].append(identity)
            continue
        tally.delivered += 1
        if not acked:
            tally.recovered += 1
        if len(got) == 1:
            tally.once += 1
            continue
        tally.extra_copies += len(got) - 1
        if len({c.copy_id for c in got}) == 1:
            tally.duplicated += 1
            examples["duplicated"].append(identity)
        else:
            tally.conflicting += 1
            examples["conflicting"].append(f"{identity}: {sorted({c.copy_id for c in got})}")
    tally.examples = {k: v[:5] for k, v in examples.items()}
    return tally


def stored_copies(database_url: str, type_: str) -> list[Copy]:
    """The notifications of type ``type_`` as stored, one copy per row: identity is the
    ``data.client_id`` the client sent, copy id the notification id."""
    from sqlalchemy import select

    from clarion.store.db import Database
    from clarion.store.schema import notifications as t

    async def read() -> list[Copy]:
        db = Database(database_url)
        try:
            async with db.connect() as conn:
                rows = await conn.execute(select(t.c.id, t.c.data).where(t.c.type == type_))
                now = time.monotonic()
                return [
                    Copy("store", str((r.data or {}).get("client_id")), str(r.id), now)
                    for r in rows
                ]
        finally:
            await db.dispose()

    return asyncio.run(read())


# --- load ------------------------------------------------------------------------------


class StatusLog:
    """What clients saw, thread-safe: status codes (and transport errors), 503s without
    ``Retry-After``, and when each kind was last seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.without_retry_after = 0
        self.samples: dict[str, str] = {}

    def saw(self, what: str, response: httpx.Response | None = None) -> None:
        with self._lock:
            self.counts[what] += 1
            if response is not None and response.status_code >= 500:
                self.samples.setdefault(what, response.text[:300])
                if response.status_code == 503 and "retry-after" not in response.headers:
                    self.without_retry_after += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))


@dataclass
class SendOutcome:
    identity: str
    acknowledged: bool
    ids: list[int]
    attempts: int
    acked_at: float | None


def send_until_acknowledged(
    client: httpx.Client,
    url: Callable[[], str],
    body: Mapping[str, Any],
    identity: str,
    statuses: StatusLog,
    deadline: Callable[[], float],
    rng: random.Random,
) -> SendOutcome:
    """POST one notification with ``Idempotency-Key: identity`` until a 202 or the
    deadline. Waits as the service asks (``Retry-After``, capped at 2 s so a test keeps
    moving), briefly after transport errors and 409 ``idempotency_in_progress``.
    ``deadline()`` is read before every attempt, so a test can extend or cut it.

    A 409 answering a retry whose earlier attempt failed for certain (the connection
    dropped or was refused, or a 5xx) is also counted as ``409 after failure``: no request
    with that key can still be running, so the key should have been free."""
    attempts = 0
    failed_before = False
    while time.monotonic() < deadline():
        attempts += 1
        try:
            r = client.post(
                f"{url()}/api/v1/notifications",
                json=dict(body),
                headers={"Idempotency-Key": identity},
            )
        except httpx.TimeoutException:
            # The request may still be running: a 409 to the retry is then right.
            statuses.saw("timeout")
            time.sleep(0.1 + rng.random() * 0.2)
            continue
        except httpx.TransportError:
            statuses.saw("connect_error")
            failed_before = True
            time.sleep(0.2 + rng.random() * 0.2)
            continue
        statuses.saw(str(r.status_code), r)
        if r.status_code == 202:
            return SendOutcome(identity, True, list(r.json()["ids"]), attempts, time.monotonic())
        if r.status_code == 409 and failed_before:
            statuses.saw("409 after failure")
        if r.status_code >= 500:
            failed_before = True
        if r.status_code in (409, 429) or r.status_code >= 500:
            wait = 0.2
            with contextlib.suppress(ValueError):
                wait = float(r.headers.get("retry-after", wait))
            time.sleep(min(wait, 2.0) * (0.5 + rng.random()))
            continue
        raise AssertionError(f"send {identity}: unexpected {r.status_code} {r.text[:300]}")
    return SendOutcome(identity, False, [], attempts, None)


class Load:
    """``clients`` threads, each with its own keep-alive connection, sending ``items``
    (``(identity, body)``) one after another through ``send_until_acknowledged``. A send
    gives up ``budget`` seconds after its first attempt, but not while the load is held
    (``hold()`` while the server is down, ``release(t)`` once it is back: restarts are slow
    on a busy machine, so each send then has ``budget`` seconds from ``t``), and at
    ``cutoff()`` at the latest."""

    def __init__(
        self,
        url: Callable[[], str],
        key: str,
        statuses: StatusLog,
        *,
        clients: int,
        budget: float,
        seed: int = 7,
        cutoff: Callable[[], float] = lambda: float("inf"),
    ) -> None:
        self.url = url
        self.key = key
        self.statuses = statuses
        self.clients = clients
        self.budget = budget
        self.held_until = 0.0
        self.cutoff = cutoff
        self.rng = random.Random(seed)
        self.outcomes: dict[str, SendOutcome] = {}
        self._lock = threading.Lock()
        self._items: Iterator[tuple[str, Mapping[str, Any]]] = iter(())
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.errors: list[BaseException] = []

    def hold(self) -> None:
        """No send gives up from now until :meth:`release`."""
        self.held_until = float("inf")

    def release(self, back_at: float) -> None:
        """The server answers again since ``back_at``: each send has ``budget`` from it."""
        self.held_until = back_at + self.budget

    @property
    def acknowledged(self) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes.values() if o.acknowledged)

    def _next(self) -> tuple[str, Mapping[str, Any]] | None:
        with self._lock:
            if self._stop.is_set():
                return None
            return next(self._items, None)

    def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.Client(headers=headers, timeout=15) as client:
                while (item := self._next()) is not None:
                    identity, body = item
                    give_up = time.monotonic() + self.budget
                    outcome = send_until_acknowledged(
                        client,
                        self.url,
                        body,
                        identity,
                        self.statuses,
                        lambda g=give_up: min(max(g, self.held_until), self.cutoff()),
                        rng,
                    )
                    with self._lock:
                        self.outcomes[identity] = outcome
        except BaseException as exc:
            self.errors.append(exc)

    def start(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> Load:
        self._items = iter(items)
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(self.rng.random() + i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Start no new sends; the ones under way finish or give up."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = sum(t.is_alive() for t in self._threads)
        if alive:
            raise AssertionError(f"{alive} client threads still running after {timeout}s")
        if self.errors:
            raise self.errors[0]

    def wait_acknowledged(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.acknowledged < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.acknowledged} of {count} acknowledged")
            if self.errors:
                raise self.errors[0]
            time.sleep(0.02)

    def sent(self) -> dict[str, bool]:
        with self._lock:
            return {i: o.acknowledged for i, o in self.outcomes.items()}


class ReadyProbe:
    """Polls ``/readyz`` in a thread, keeping ``(monotonic time, status)`` samples."""

    def __init__(self, url: Callable[[], str], interval: float = 0.1) -> None:
        self.url = url
        self.interval = interval
        self.samples: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                try:
                    status = str(client.get(f"{self.url()}/readyz").status_code)
                except httpx.HTTPError:
                    status = "connect_error"
                self.samples.append((time.monotonic(), status))
                self._stop.wait(self.interval)

    def start(self) -> ReadyProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def between(self, start: float, end: float) -> list[str]:
        return [s for t, s in self.samples if start <= t <= end]

    def first_ready_after(self, moment: float) -> float | None:
        for t, s in self.samples:
            if t >= moment and s == "200":
                return t
        return None


class PendingBehaviour(AssertionError):
    """An assertion on behaviour that is specified but not built yet. Tests mark
    themselves ``xfail(strict=True, raises=PendingBehaviour, reason=...)``: a broken
    guarantee (a plain ``AssertionError``) still fails them, and once the behaviour lands
    the strict xfail turns into a failure that says to remove the mark."""


def expect(condition: bool, message: str) -> None:
    """``assert`` for a ``PendingBehaviour``; check it after the guarantees."""
    if not condition:
        raise PendingBehaviour(message)


def assert_exactly_once(tally: Tally, statuses: StatusLog) -> None:
    """The guarantees of every fault: nothing acknowledged is lost or stored twice,
    nothing is invented, and no client is ever given a 500."""
    assert tally.lost == 0, tally.examples
    assert tally.duplicated == 0 and tally.conflicting == 0, tally.examples
    assert tally.unexpected == 0, tally.examples
    assert "500" not in statuses.counts, statuses.samples


def expect_prompt_retries(statuses: StatusLog, unacknowledged: int, after: str) -> None:
    """Retries after the fault are answered (a dead request's Idempotency-Key claim died
    with its transaction, so no 409 idempotency_in_progress) and every send is answered."""
    conflicts = statuses.counts["409 after failure"]
    expect(conflicts == 0, f"{conflicts} retries after {after} got 409 idempotency_in_progress")
    expect(not unacknowledged, f"{unacknowledged} sends never acknowledged")


# --- figures ---------------------------------------------------------------------------


def write_result(name: str, figures: Mapping[str, Any]) -> Path:
    """``build/faults/<name>.json``: the figures of one run, with when and where."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {
        "test": name,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": list(os.getloadavg()),
        **figures,
    }
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started
