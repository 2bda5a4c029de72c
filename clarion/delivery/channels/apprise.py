"""Chat services (Slack, Telegram, Matrix, Discord, ntfy, ...) through Apprise URLs.

Each URL is notified separately so the result can say *which* target failed; Apprise is
synchronous, so every call runs in a thread of the channel's own pool and the event loop
keeps serving other deliveries.

Apprise URLs embed tokens (``tgram://BOT_TOKEN/CHAT_ID``), so targets are only ever logged
and reported in the redacted form of :func:`~clarion.delivery.channels.base.redact_url`.

Every URL, whoever set it (a profile's ``data.apprise_urls`` or ``CLARION_APPRISE_URLS``)
and whatever its scheme, passes the address rules of the webhooks twice:

1. before any thread runs, on the host the URL names, for the services that take a host
   of the user's choosing (the plugin's URL templates have a ``{host}``: ``json``,
   ``ntfy``, ``gotify``, ``apprise``, ``kodi``, ``mmost``, ``mailto``, ``mqtt``, ...): a
   literal internal address in any spelling, a ``localhost`` name, or a name resolving to
   an internal address is reported ``blocked`` at once. Services on fixed hosts
   (``tgram``, ``slack``, ...) carry tokens where a host would be, so nothing is resolved
   for them here. Services that notify this machine itself (``syslog``, ``dbus``, ...) are
   refused, being private by definition.
2. while Apprise runs, on every connection it makes
   (:mod:`~clarion.delivery.channels.dialguard`): redirects are not followed, and a
   second DNS answer, a redirect target or a plugin dialling a host the URL did not name
   cannot reach an internal address either.

``CLARION_WEBHOOK_ALLOW_PRIVATE=true`` switches both address checks off (redirects are
still not followed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from urllib.parse import urlsplit

import apprise
from apprise.manager_plugins import NotificationManager

from clarion.delivery.channels import dialguard
from clarion.delivery.channels.base import (
    Channel,
    Contact,
    Outcome,
    RenderedMessage,
    SendResult,
    TargetResult,
    redact_url,
)
from clarion.services.netguard import (
    BlockedURL,
    UrlGuard,
    is_localhost_name,
    is_public_address,
    parse_literal_host,
)

log = logging.getLogger(__name__)

_PLUGINS: Any = NotificationManager()  # type: ignore[no-untyped-call]  # its plugin table

#: Services that notify the machine Clarion runs on (its syslog, desktop bus, a USB
#: light), not a service on the network.
LOCAL_SCHEMES = frozenset(
    {"syslog", "dbus", "kde", "qt", "glib", "gio", "gnome", "macosx", "windows", "blink1"}
)

#: Threads for Apprise calls: its own pool, so slow chat services cannot take the event
#: loop's default executor (which also resolves names for every other channel).
MAX_THREADS = 8


def _takes_host(scheme: str) -> bool:
    """Whether the scheme's service lives on a host named in the URL (``{host}`` in any of
    the plugin's URL templates), rather than on the service's own fixed hosts."""
    try:
        plugin = _PLUGINS[scheme]
    except KeyError:
        return False
    templates: Sequence[str] = getattr(plugin, "templates", ())
    return any("{host}" in t for t in templates)


def _notify_blocking(service: Any, title: str, body: str) -> tuple[Outcome, str]:
    """Send to one service (runs in a thread, inside :func:`dialguard.run_guarded`)."""
    scope = dialguard.current_scope()
    obj = apprise.Apprise()
    if not obj.add(service):
        return Outcome.PERMANENT, "unsupported or invalid Apprise URL"
    try:
        notified = bool(obj.notify(body=body, title=title))
    except Exception as exc:  # a plugin bug must not kill the worker thread's caller
        notified = False
        error = f"apprise raised {type(exc).__name__}"
    else:
        error = "service reported failure"
    blocked = scope.blocked if scope is not None else []
    if notified:
        return Outcome.DELIVERED, "notified" + (f" (blocked: {blocked[0]})" if blocked else "")
    if blocked:
        # The failure is the refused connection or redirect: retrying cannot change it.
        return Outcome.PERMANENT, f"blocked: {blocked[0]}"
    return Outcome.TRANSIENT, error


class AppriseChannel(Channel):
    """Notifies the contact's Apprise URLs plus the deployment-wide ones."""

    name: ClassVar[str] = "apprise"
    provider = "apprise"

    def __init__(
        self,
        *,
        urls: Sequence[str] = (),
        guard: UrlGuard | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._urls = tuple(urls)
        self._guard = guard or UrlGuard()
        self._timeout = timeout
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"AppriseChannel(urls={[redact_url(u) for u in self._urls]!r})"

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        urls = tuple(contact.apprise_urls) + self._urls
        if not urls:
            return SendResult(Outcome.NO_CONTACT, self.provider, "no Apprise URLs configured")
        title = message.title
        body = message.text + (f"\n\n{message.url}" if message.url else "")
        targets = tuple(await asyncio.gather(*(self._one(url, title, body) for url in urls)))
        ok = sum(t.outcome is Outcome.DELIVERED for t in targets)
        # Any success counts: retrying would repeat the message in the chats that got it.
        # With none, retry unless every target is hopeless (blocked or malformed URLs).
        if ok:
            outcome = Outcome.DELIVERED
        elif any(t.outcome is Outcome.TRANSIENT for t in targets):
            outcome = Outcome.TRANSIENT
        else:
            outcome = Outcome.PERMANENT
        summary = f"{ok}/{len(targets)} targets notified"
        log.info("apprise %s: %s", outcome.value, summary)
        failed = [f"{t.target}: {t.detail}" for t in targets if t.outcome is not Outcome.DELIVERED]
        detail = "; ".join([summary, *failed])[:1000]
        return SendResult(outcome, self.provider, detail, targets=targets)

    async def _one(self, url: str, title: str, body: str) -> TargetResult:
        where = redact_url(url)
        try:
            service = await self._admit(url)
        except BlockedURL as exc:
            return TargetResult(where, Outcome.PERMANENT, f"blocked: {exc}")
        if service is None:
            # Retrying cannot make an unknown scheme or a malformed URL valid.
            return TargetResult(where, Outcome.PERMANENT, "unsupported or invalid Apprise URL")
        scope = dialguard.DialScope(
            allow_private=self._guard.allow_private, resolver=self._guard.sync_resolver
        )
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(
            self._executor(), dialguard.run_guarded, scope, _notify_blocking, service, title, body
        )
        try:
            outcome, detail = await asyncio.wait_for(call, self._timeout)
        except TimeoutError:
            # The thread finishes on its own (still guarded); we stop waiting for it.
            return TargetResult(where, Outcome.TRANSIENT, "timeout")
        return TargetResult(where, outcome, detail)

    async def _admit(self, url: str) -> Any:
        """The Apprise service for ``url`` once its host passed the address rules; ``None``
        if Apprise does not understand the URL. Raises :class:`BlockedURL`."""
        try:
            parts = urlsplit(url)
            raw_host = parts.hostname or ""
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        private_ok = self._guard.allow_private
        if scheme in LOCAL_SCHEMES and not private_ok:
            raise BlockedURL(f"{scheme}:// notifies this machine itself")
        takes_host = _takes_host(scheme)
        if takes_host and raw_host and not private_ok:
            # Judged on the URL's own text first: Apprise reads some spellings of an
            # address (``0x7f.1``, ``[::ffff:127.0.0.1]``) differently, or not at all.
            if is_localhost_name(raw_host):
                raise BlockedURL(f"{raw_host!r} is a loopback name")
            literal = parse_literal_host(raw_host)
            if literal is not None and not is_public_address(literal):
                raise BlockedURL(f"address {literal} is not a public address")
        service = apprise.Apprise.instantiate(url)
        if service is None:
            return None
        host = str(getattr(service, "host", "") or "")
        if takes_host and host and not private_ok:
            secure = bool(getattr(service, "secure", False))
            port = getattr(service, "port", None) or (443 if secure else 80)
            await self._guard.check_host(host, int(port))
        return service

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            dialguard.install()
            self._pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="clarion-apprise")
        return self._pool

    async def aclose(self) -> None:
        if self._pool is not None:
            # Calls in flight finish on their own (still guarded); nothing waits for them.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
