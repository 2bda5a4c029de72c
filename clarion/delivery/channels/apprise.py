"""Chat services (Slack, Telegram, Matrix, Discord, ntfy, ...) through Apprise URLs.

Each URL is notified separately so the result can say *which* target failed; Apprise is
synchronous, so every call runs in a worker thread (``asyncio.to_thread``) and the event
loop keeps serving other deliveries.

Apprise URLs embed tokens (``tgram://BOT_TOKEN/CHAT_ID``), so targets are only ever logged
and reported in the redacted form of :func:`~clarion.delivery.channels.base.redact_url`.

User-supplied URLs of the generic HTTP schemes (``json``, ``form``, ``xml`` and their
``s`` variants) pass the SSRF guard's address check first. Apprise does its own DNS
lookup afterwards, so this check cannot pin the address (see docs/channels.md); URLs from
``CLARION_APPRISE_URLS`` are operator configuration and are not checked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import apprise

from clarion.delivery.channels.base import (
    Channel,
    Contact,
    Outcome,
    RenderedMessage,
    SendResult,
    TargetResult,
    redact_url,
)
from clarion.delivery.channels.netguard import BlockedURL, UrlGuard

log = logging.getLogger(__name__)

_HTTP_SCHEMES = {
    "json": "http",
    "jsons": "https",
    "form": "http",
    "forms": "https",
    "xml": "http",
    "xmls": "https",
}


def _notify_blocking(url: str, title: str, body: str) -> tuple[Outcome, str]:
    """Send to one URL (runs in a thread). Returns (outcome, detail)."""
    obj = apprise.Apprise()
    if not obj.add(url):
        # Retrying cannot make an unknown scheme or a malformed URL valid.
        return Outcome.PERMANENT, "unsupported or invalid Apprise URL"
    try:
        result = obj.notify(body=body, title=title)
    except Exception as exc:  # a plugin bug must not kill the worker thread's caller
        return Outcome.TRANSIENT, f"apprise raised {type(exc).__name__}"
    if result:
        return Outcome.DELIVERED, "notified"
    return Outcome.TRANSIENT, "service reported failure"


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

    def __repr__(self) -> str:
        return f"AppriseChannel(urls={[redact_url(u) for u in self._urls]!r})"

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        user_urls = tuple(contact.apprise_urls)
        if not user_urls and not self._urls:
            return SendResult(Outcome.NO_CONTACT, self.provider, "no Apprise URLs configured")
        title = message.title
        body = message.text + (f"\n\n{message.url}" if message.url else "")
        jobs = [self._one(url, title, body, user_supplied=True) for url in user_urls]
        jobs += [self._one(url, title, body, user_supplied=False) for url in self._urls]
        targets = tuple(await asyncio.gather(*jobs))
        ok = sum(t.outcome is Outcome.DELIVERED for t in targets)
        # Any success counts: retrying would repeat the message in the chats that got it.
        # With none, retry unless every target is hopeless (blocked or malformed URLs).
        if ok:
            outcome = Outcome.DELIVERED
        elif any(t.outcome is Outcome.TRANSIENT for t in targets):
            outcome = Outcome.TRANSIENT
        else:
            outcome = Outcome.PERMANENT
        detail = f"{ok}/{len(targets)} targets notified"
        log.info("apprise %s: %s", outcome.value, detail)
        return SendResult(outcome, self.provider, detail, targets=targets)

    async def _one(self, url: str, title: str, body: str, *, user_supplied: bool) -> TargetResult:
        where = redact_url(url)
        if user_supplied:
            try:
                await self._check(url)
            except BlockedURL as exc:
                return TargetResult(where, Outcome.PERMANENT, f"blocked: {exc}")
        try:
            outcome, detail = await asyncio.wait_for(
                asyncio.to_thread(_notify_blocking, url, title, body), self._timeout
            )
        except TimeoutError:
            # The thread finishes on its own; we stop waiting for it.
            return TargetResult(where, Outcome.TRANSIENT, "timeout")
        return TargetResult(where, outcome, detail)

    async def _check(self, url: str) -> None:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise BlockedURL("not a valid URL") from exc
        http_scheme = _HTTP_SCHEMES.get(parts.scheme.lower())
        if http_scheme is None:
            return
        await self._guard.check(urlunsplit((http_scheme, parts.netloc, parts.path, "", "")))
