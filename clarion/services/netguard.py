"""The address rules for every URL Clarion contacts (webhooks, push endpoints, the action
webhook, the SMS API, Apprise targets).

A webhook URL is chosen by whoever configures the endpoint; without a guard Clarion would
happily POST to ``http://169.254.169.254/latest/meta-data/`` or an admin port on
localhost and report the status back. The guard therefore:

* parses the host itself, including the odd IPv4 spellings ``inet_aton`` accepts
  (``2130706433``, ``0x7f.1``, ``017700000001``) and IPv4-mapped/compatible, 6to4, Teredo
  and NAT64 IPv6 forms, so the check sees the address the OS will really dial;
* treats ``localhost`` and every ``*.localhost`` name as loopback without asking DNS
  (RFC 6761 reserves them; resolvers differ on ``localhost.`` and subdomains);
* resolves names through an injectable resolver and refuses the URL if *any* resolved
  address is not globally routable (private, loopback, link-local, unique-local, shared,
  multicast, reserved, unspecified, cloud metadata);
* returns the checked address so the caller connects to exactly that address (the URL is
  rewritten to the IP, with ``Host`` and TLS SNI set to the original name). That closes
  the DNS-rebinding window between "check" and "connect".

Resolutions are cached per (host, port) for ``dns_ttl`` seconds (10 s by default): a
webhook endpoint receives thousands of deliveries a minute and one ``getaddrinfo`` each
was a visible part of the cost. A URL that passed is remembered with the resolution it
passed on and only as long as that resolution is cached (a literal address for good: its
verdict cannot change); the caller still connects to the address that was checked, so
caching changes neither what is refused nor where the request goes. Refusals and failed
resolutions are never cached: a blocked URL is checked afresh every time.

Residual risk (documented in docs/channels.md): an HTTP proxy configured through the
environment would re-resolve the name, so channels create their clients with
``trust_env=False``.

Code that dials by itself (Apprise and its plugins) cannot be handed a checked address;
:mod:`clarion.delivery.channels.dialguard` applies the same rules to the sockets it opens.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
#: The same for code that resolves in a worker thread (the dial-time guard).
SyncResolver = Callable[[str, int], Sequence[str]]

#: Cloud metadata services, refused even though some are already covered by the
#: link-local/unique-local rules: being explicit documents intent and survives changes
#: to ``ipaddress``'s tables.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6 IMDS
    }
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedURL(Exception):
    """The URL is not one Clarion may send to; the message says why (no secrets).

    ``problem`` is a stable token for API errors: ``invalid``, ``scheme``, ``credentials``,
    ``no_host``, ``unresolvable`` or ``private_address``.
    """

    def __init__(self, message: str, problem: str = "private_address") -> None:
        super().__init__(message)
        self.problem = problem


def is_localhost_name(host: str) -> bool:
    """``localhost``, ``localhost.`` and ``*.localhost``: loopback by definition (RFC 6761).

    Checked by name, because resolvers disagree (some fail ``localhost.``, some send
    ``*.localhost`` to the network) and the answer must not depend on which one runs."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL that passed the guard, and the address to dial for it."""

    url: httpx.URL
    address: str  # the checked IP to connect to
    host: str  # the original host name (for Host header and TLS SNI)

    def pinned_request(
        self, method: str, *, headers: dict[str, str], content: bytes
    ) -> httpx.Request:
        """A request to ``address`` that still says ``Host: <name>`` and sends SNI <name>.

        Certificate verification uses the SNI name, so HTTPS still checks the certificate
        against the name the user configured, not against the IP.
        """
        pinned = self.url.copy_with(host=self.address)
        host_header = self.url.netloc.decode("ascii")
        extensions = {"sni_hostname": self.host} if self.url.scheme == "https" else {}
        return httpx.Request(
            method,
            pinned,
            headers={**headers, "Host": host_header},
            content=content,
            extensions=extensions,
        )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in a mapped/compatible/6to4/Teredo/NAT64 IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    packed = int(ip)
    # IPv4-compatible (::a.b.c.d, deprecated but still parsed by some stacks).
    if packed >> 32 == 0 and packed > 1:
        return ipaddress.IPv4Address(packed)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses that are not metadata services."""
    if ip in METADATA_ADDRESSES:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public_address(embedded):
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def parse_literal_host(host: str) -> IPAddress | None:
    """The address a literal host denotes, including the legacy numeric IPv4 spellings.

    ``ipaddress`` rejects ``2130706433`` and ``0x7f.1`` but ``inet_aton`` (and so
    ``getaddrinfo`` and every HTTP client) dials them as 127.0.0.1; we must see them the
    same way.
    """
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if "%" in host:  # zone index: link-local by definition
        try:
            return ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Resolve with the OS resolver, off the event loop (``loop.getaddrinfo``)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class UrlGuard:
    """Checks user-supplied URLs before Clarion connects to them.

    ``allow_private=True`` (``CLARION_WEBHOOK_ALLOW_PRIVATE``) turns the address rules off
    for deployments whose receivers live on the private network; schemes and resolution
    are still checked. ``resolver`` is injectable so tests can exercise "public name" cases
    without touching the internet; ``sync_resolver`` is its counterpart for the dial-time
    guard, which resolves in worker threads (``None``: the OS resolver).
    """

    #: Parsed URLs kept (parsing is a visible cost per delivery); cleared when full.
    URL_CACHE_SIZE = 4096

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        sync_resolver: SyncResolver | None = None,
        dns_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_private = allow_private
        self._resolver: Resolver = resolver or system_resolver
        self.sync_resolver = sync_resolver
        self.dns_ttl = dns_ttl
        self._clock = clock
        self._resolved: dict[tuple[str, int], tuple[float, Sequence[str]]] = {}
        self._resolving: dict[tuple[str, int], asyncio.Future[Sequence[str]]] = {}
        self._urls: dict[str, httpx.URL] = {}
        self._passed: dict[str, tuple[float, CheckedTarget]] = {}

    def _parse(self, url: str | httpx.URL) -> httpx.URL:
        if not isinstance(url, str):
            return url
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpx.URL(url)
            if len(self._urls) >= self.URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[url] = parsed
        return parsed

    async def _resolve(self, host: str, port: int) -> Sequence[str]:
        """The resolver's answer, from the cache while younger than ``dns_ttl``.

        Concurrent checks of one uncached name share a single resolution."""
        key = (host, port)
        now = self._clock()
        hit = self._resolved.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._resolving.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Sequence[str]] = asyncio.get_running_loop().create_future()
        self._resolving[key] = future
        try:
            answer = tuple(await self._resolver(host, port))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(answer)
            if self.dns_ttl > 0:
                if len(self._resolved) >= self.URL_CACHE_SIZE:
                    self._resolved.clear()
                self._resolved[key] = (self._clock() + self.dns_ttl, answer)
            return answer
        finally:
            del self._resolving[key]

    async def check(self, url: str | httpx.URL) -> CheckedTarget:
        """Validate ``url`` and pick the address to dial; raise :class:`BlockedURL`."""
        if isinstance(url, str):
            hit = self._passed.get(url)
            if hit is not None and hit[0] > self._clock():
                return hit[1]
        checked, until = await self._check(url)
        if isinstance(url, str) and until > self._clock():
            if len(self._passed) >= self.URL_CACHE_SIZE:
                self._passed.clear()
            self._passed[url] = (until, checked)
        return checked

    async def _check(self, url: str | httpx.URL) -> tuple[CheckedTarget, float]:
        """The check itself, and until when its verdict holds (the resolution's expiry)."""
        try:
            parsed = self._parse(url)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise BlockedURL("not a valid URL", "invalid") from exc
        if parsed.scheme not in ("http", "https"):
            raise BlockedURL(f"scheme {parsed.scheme!r} is not allowed (http/https only)", "scheme")
        if parsed.userinfo:
            raise BlockedURL("credentials in the URL are not allowed", "credentials")
        host = parsed.host
        if not host:
            raise BlockedURL("URL has no host", "no_host")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses, until = await self._admit(host, port)
        return CheckedTarget(url=parsed, address=str(addresses[0]), host=host), until

    async def check_host(self, host: str, port: int) -> str:
        """Apply the address rules to a bare host (a name or a literal in any spelling).

        For targets that are not http(s) URLs (Apprise services on a host of the user's
        choosing); returns the first admitted address, raises :class:`BlockedURL`."""
        if not host:
            raise BlockedURL("no host", "no_host")
        addresses, _until = await self._admit(host, port)
        return str(addresses[0])

    async def _admit(self, host: str, port: int) -> tuple[list[IPAddress], float]:
        """The addresses ``host`` stands for, all of them allowed, and until when."""
        if not self.allow_private and is_localhost_name(host):
            raise BlockedURL(f"{host!r} is a loopback name")
        literal = parse_literal_host(host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
            until = float("inf")
        else:
            try:
                resolved = await self._resolve(host, port)
            except (OSError, UnicodeError) as exc:
                raise BlockedURL(f"cannot resolve host {host!r}", "unresolvable") from exc
            cached = self._resolved.get((host, port))
            until = cached[0] if cached is not None and cached[1] == resolved else 0.0
            addresses = []
            for raw in resolved:
                ip = parse_literal_host(raw)
                if ip is None:
                    raise BlockedURL(
                        f"resolver returned a non-address for {host!r}", "unresolvable"
                    )
                addresses.append(ip)
            if not addresses:
                raise BlockedURL(f"host {host!r} has no addresses", "unresolvable")

        if not self.allow_private:
            for ip in addresses:
                if not is_public_address(ip):
                    # Refuse if *any* address is internal: a name resolving to both a public
                    # and an internal address is a classic rebinding trick.
                    raise BlockedURL(f"address {ip} of {host!r} is not a public address")
        return addresses, until
