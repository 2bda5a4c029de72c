"""The address rules at dial time, for code that opens its own connections (Apprise).

Apprise and its plugins resolve names, speak HTTP through ``requests`` (which follows
redirects), and some open SMTP, MQTT, XMPP or syslog sockets of their own. Clarion cannot
hand them an address it checked, so checking the URL text first is not enough: a
redirect, a second DNS answer (rebinding) or a plugin that dials another host would get
past it. This module checks the address of every connection *as it is made*, with the
same rules as :class:`~clarion.services.netguard.UrlGuard`.

How it is scoped. :func:`install` wraps, once per process, the few Python entry points
every such connection passes through:

* ``socket.socket.connect``/``connect_ex`` and ``sendto``/``sendmsg`` (TCP, UDP; TLS
  sockets inherit them): the address being dialled is checked, a host name in it is
  resolved here and the socket is connected to the checked address;
* ``socket.getaddrinfo``: a name with *any* internal address is refused as a whole, as
  :class:`UrlGuard` does (otherwise a client would quietly fall back to the public one);
* ``requests``' redirect hook: a redirect is never followed, the 3xx goes back to the
  plugin, which reports a failure;
* ``threading.Thread.start``: a thread started inside a guarded call is guarded too
  (Apprise's XMPP plugin runs its client in a thread of its own).

Each wrapper reads one :class:`~contextvars.ContextVar` and, when it is unset, calls the
original at once: outside a guarded call the cost is that lookup. The variable is set
only by :func:`run_guarded`, in a fresh context that exists for that one call. A
``ContextVar`` and not a thread-local, because Apprise runs a service in its own thread
pool with a *copy of the caller's context* (``submit_with_context``): a thread-local set
in Clarion's thread would be missing there, the context variable travels with the work.
It cannot leak the other way either: ``run_in_executor``/``to_thread`` callers, the event
loop and unrelated threads never see the fresh context, and it is gone when the call
returns (also when Clarion stopped waiting for it: the abandoned call stays guarded).

``clarion serve`` runs on uvloop, whose connections are made in C and never pass through
these wrappers; the webhook, push and SMS clients dial the address :class:`UrlGuard`
checked. What is not covered: native code that opens sockets without Python (no Apprise
plugin does), and UNIX sockets and other families, which are refused outright unless
private targets are allowed.
"""

from __future__ import annotations

import contextvars
import errno
import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, ParamSpec, TypeVar

from clarion.delivery.channels.base import redact_url
from clarion.services.netguard import (
    IPAddress,
    SyncResolver,
    is_localhost_name,
    is_public_address,
    parse_literal_host,
)

P = ParamSpec("P")
R = TypeVar("R")

_INET = (socket.AF_INET, socket.AF_INET6)


class DialBlocked(PermissionError):
    """A connection the address rules refused.

    An ``OSError`` (``EACCES``), so every client library handles it as the failed connect
    it is: ``requests`` raises ``ConnectionError``, ``smtplib`` its ``OSError``, and the
    plugin reports a failed notification instead of crashing.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, f"blocked by Clarion's address rules: {reason}")
        self.reason = reason


@dataclass(eq=False, slots=True)
class DialScope:
    """The rules for one guarded call, and what they refused during it.

    ``blocked`` collects the reasons (no secrets: addresses, host names and redacted
    redirect targets), so the caller can report a blocked target as blocked rather than
    as whatever error the plugin made of the refused connection.
    """

    allow_private: bool = False
    resolver: SyncResolver | None = None
    blocked: list[str] = field(default_factory=list)

    def refuse(self, reason: str) -> NoReturn:
        self.blocked.append(reason)
        raise DialBlocked(reason)

    # --- the checks ------------------------------------------------------------------

    def check_ip(self, ip: IPAddress, host: str, scope_id: int = 0) -> None:
        if self.allow_private:
            return
        if scope_id or not is_public_address(ip):
            shown = f"{ip}" if host == str(ip) else f"{ip} of {host!r}"
            self.refuse(f"address {shown} is not a public address")

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host``, all of them allowed (or :class:`DialBlocked`)."""
        if not self.allow_private and is_localhost_name(host):
            self.refuse(f"{host!r} is a loopback name")
        try:
            raw = (
                self.resolver(host, port)
                if self.resolver is not None
                else [
                    str(info[4][0])
                    for info in _original_getaddrinfo(host, port, 0, socket.SOCK_STREAM)
                ]
            )
        except (OSError, UnicodeError) as exc:
            raise socket.gaierror(socket.EAI_NONAME, f"cannot resolve {host!r}") from exc
        addresses: list[IPAddress] = []
        for item in raw:
            ip = parse_literal_host(item)
            if ip is None:
                raise socket.gaierror(socket.EAI_FAIL, f"resolver answered {item!r}")
            self.check_ip(ip, host)
            addresses.append(ip)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host!r} has no addresses")
        return addresses

    def admit(self, family: int, address: Any) -> Any:
        """The address to really dial for ``address``: checked, and pinned if it was a name."""
        if family not in _INET:
            if self.allow_private:
                return address
            # UNIX sockets and the rest reach this machine or its kernel, never a service.
            self.refuse(f"address family {family!r} is not allowed")
        if not isinstance(address, tuple) or len(address) < 2:
            return address  # malformed: the real call raises its own error
        host = address[0]
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str):
            return address
        scope_id = int(address[3]) if len(address) >= 4 and isinstance(address[3], int) else 0
        literal = parse_literal_host(host)
        if literal is not None:
            self.check_ip(literal, host, scope_id)
            # Dial the address we judged, not a spelling the C library might read otherwise.
            pinned: IPAddress = literal
        else:
            if self.allow_private and self.resolver is None:
                return address
            port = address[1] if isinstance(address[1], int) else 0
            pinned = self._pick(self.resolve(host, port), family)
        if isinstance(pinned, ipaddress.IPv4Address) and family == socket.AF_INET6:
            pinned = ipaddress.IPv6Address(f"::ffff:{pinned}")
        return (str(pinned), *address[1:])

    @staticmethod
    def _pick(addresses: list[IPAddress], family: int) -> IPAddress:
        for ip in addresses:
            if (ip.version == 6) == (family == socket.AF_INET6):
                return ip
        return addresses[0]

    def getaddrinfo(
        self, host: Any, port: Any, family: int, type: int, proto: int, flags: int
    ) -> list[Any]:
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        if not isinstance(name, str) or parse_literal_host(name) is not None:
            # Literals (and None, the local host): judged when they are dialled.
            return _original_getaddrinfo(host, port, family, type, proto, flags)
        if self.resolver is None:
            if self.allow_private:
                return _original_getaddrinfo(host, port, family, type, proto, flags)
            if is_localhost_name(name):
                self.refuse(f"{name!r} is a loopback name")
            infos = _original_getaddrinfo(host, port, family, type, proto, flags)
            for info in infos:
                ip = parse_literal_host(str(info[4][0]))
                if ip is not None:
                    self.check_ip(ip, name)
            return infos
        # An injected resolver (tests): answer as getaddrinfo would, from its addresses.
        number = port if isinstance(port, int) else int(port or 0)
        out: list[Any] = []
        for ip in self.resolve(name, number):
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            if family not in (0, fam):
                continue
            sockaddr = (str(ip), number, 0, 0) if ip.version == 6 else (str(ip), number)
            out.append((fam, type or socket.SOCK_STREAM, proto or socket.IPPROTO_TCP, "", sockaddr))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, f"{name!r} has no such addresses")
        return out

    def redirect(self, location: str) -> None:
        self.blocked.append(f"redirect to {redact_url(location)} not followed")


_scope: contextvars.ContextVar[DialScope | None] = contextvars.ContextVar(
    "clarion_dial_scope", default=None
)


def current_scope() -> DialScope | None:
    """The scope of the running call, if it is guarded."""
    return _scope.get()


def run_guarded(scope: DialScope, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call ``fn`` with every connection it (and threads it starts) makes checked by ``scope``.

    Runs in a fresh context: nothing of the caller's context is visible, and nothing set
    here outlives the call. Meant for a worker thread; :func:`install` must have run.
    """

    def call() -> R:
        _scope.set(scope)
        return fn(*args, **kwargs)

    return contextvars.Context().run(call)


# --- the wrappers -----------------------------------------------------------------------

_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_original_sendto = socket.socket.sendto
_original_sendmsg = socket.socket.sendmsg
_original_getaddrinfo = socket.getaddrinfo
_original_thread_start = threading.Thread.start


def _connect(self: socket.socket, address: Any, /) -> None:
    scope = _scope.get()
    if scope is not None:
        address = scope.admit(self.family, address)
    _original_connect(self, address)


def _connect_ex(self: socket.socket, address: Any, /) -> int:
    scope = _scope.get()
    if scope is not None:
        address = scope.admit(self.family, address)
    return _original_connect_ex(self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    scope = _scope.get()
    if scope is not None and args:
        args = (*args[:-1], scope.admit(self.family, args[-1]))
    return _original_sendto(self, data, *args)


def _sendmsg(self: socket.socket, buffers: Any, *args: Any) -> int:
    scope = _scope.get()
    if scope is not None and len(args) >= 3 and args[2] is not None:
        args = (*args[:2], scope.admit(self.family, args[2]), *args[3:])
    return _original_sendmsg(self, buffers, *args)


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[Any]:
    scope = _scope.get()
    if scope is None:
        return _original_getaddrinfo(host, port, family, type, proto, flags)
    return scope.getaddrinfo(host, port, family, type, proto, flags)


def _thread_start(self: threading.Thread) -> None:
    scope = _scope.get()
    if scope is not None:
        # The new thread runs in a context of its own holding just this scope (what
        # Python 3.14's ``Thread(context=...)`` does), so work started here stays guarded.
        context = contextvars.Context()
        context.run(_scope.set, scope)
        run = self.run
        self.run = lambda: context.run(run)  # type: ignore[method-assign]
    _original_thread_start(self)


def _patch_requests() -> None:
    """Never follow a redirect inside a guarded call (``requests`` follows them by default).

    Returning no target makes ``requests`` hand the 3xx to its caller, exactly as
    ``allow_redirects=False`` would; the scope notes it for the result."""
    try:
        from requests.sessions import SessionRedirectMixin
    except ImportError:  # pragma: no cover - requests comes with Apprise
        return
    original = SessionRedirectMixin.get_redirect_target

    def get_redirect_target(self: Any, resp: Any) -> str | None:
        target: str | None = original(self, resp)
        if target is not None:
            scope = _scope.get()
            if scope is not None:
                scope.redirect(target)
                return None
        return target

    SessionRedirectMixin.get_redirect_target = get_redirect_target  # type: ignore[method-assign]


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Put the wrappers in place (once per process; cheap to call again)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        socket.socket.connect = _connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign,assignment]
        socket.socket.sendto = _sendto  # type: ignore[assignment]
        socket.socket.sendmsg = _sendmsg  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = _getaddrinfo
        threading.Thread.start = _thread_start  # type: ignore[method-assign]
        _patch_requests()
        _installed = True
