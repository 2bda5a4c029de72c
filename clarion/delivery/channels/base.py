"""The values every channel speaks, and the one ABC they implement.

Channels are pure send code: they see a :class:`RenderedMessage` (already rendered for
every channel by the services layer) and a :class:`Contact` (the addresses of one user),
never the database. They never raise for provider failures; they *classify* them into a
:class:`SendResult` whose :class:`Outcome` tells the worker whether to retry, give up or
suppress. Secrets (webhook secrets, Apprise URLs with tokens, push auth keys) stay out of
``repr`` so a stray log line cannot leak them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import urlsplit

from clarion.domain.retry import Outcome

__all__ = [
    "Channel",
    "Contact",
    "Outcome",
    "PushSubscription",
    "RenderedMessage",
    "SendResult",
    "TargetResult",
    "WebhookTarget",
    "redact_url",
]


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: enough to tell targets apart in logs, no tokens.

    Apprise URLs and push endpoints carry credentials in the user-info, path and query
    (``tgram://BOT_TOKEN/CHAT``, FCM registration ids), so only scheme and host survive.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if not parts.scheme:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    tail = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    # Hosts of some Apprise schemes are tokens themselves (tgram://TOKEN/...): shorten long
    # opaque hosts rather than print them.
    if len(host) > 40 or (host and "." not in host and ":" not in host and len(host) > 16):
        host = host[:4] + "…"
    return f"{parts.scheme}://{host}{port}{tail}"


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's ``PushSubscription.toJSON()``: endpoint plus its two keys (base64url)."""

    endpoint: str
    p256dh: str
    auth: str = field(repr=False)

    def __repr__(self) -> str:
        return f"PushSubscription(endpoint={redact_url(self.endpoint)!r})"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where a user's webhook goes; ``secret`` is ``whsec_<base64>`` (Standard Webhooks)."""

    endpoint_id: str
    url: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"WebhookTarget(endpoint_id={self.endpoint_id!r}, url={redact_url(self.url)!r})"


@dataclass(frozen=True, slots=True)
class Contact:
    """Everything a channel may need to reach one user; absent fields mean "no address"."""

    user_id: str
    email: str | None = None
    phone: str | None = None  # E.164, normalised by sms.normalize_e164 at the API edge
    locale: str | None = None
    push_subscriptions: tuple[PushSubscription, ...] = ()
    webhook: WebhookTarget | None = None
    apprise_urls: tuple[str, ...] = field(default=(), repr=False)


def _frozen_payload() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """One notification rendered for every channel, addressed to one user.

    ``delivery_id`` is stable across retries of the same delivery: receivers dedupe on it
    (email ``Message-ID``, ``webhook-id``, push ``delivery_id`` field), which turns our
    at-least-once sending into effectively-once for well-behaved receivers.
    """

    delivery_id: str
    notification_id: int
    user_id: str
    type: str
    priority: str
    title: str
    text: str
    html: str | None = None
    email_subject: str | None = None
    push_title: str | None = None
    push_body: str | None = None
    sms_text: str | None = None
    url: str | None = None
    payload: Mapping[str, Any] = field(default_factory=_frozen_payload)
    unsubscribe_url: str | None = None


@dataclass(frozen=True, slots=True)
class TargetResult:
    """The result for one target of a fan-out channel (one push subscription, one URL)."""

    target: str  # redacted: safe to log and store
    outcome: Outcome
    detail: str | None = None
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt produced, for the worker to record and act on.

    ``provider`` names who answered (``smtp``, ``twilio``, ...), which matters once a
    :class:`~clarion.delivery.channels.registry.FailoverChannel` tries several.
    """

    outcome: Outcome
    provider: str
    detail: str | None = None
    retry_after: float | None = None
    gone_subscriptions: tuple[str, ...] = ()  # push endpoints to forget (404/410)
    disable_endpoint: bool = False  # webhook answered 410 Gone
    targets: tuple[TargetResult, ...] = ()
    provider_message_id: str | None = None  # e.g. Twilio's message SID
    suppress_reason: str | None = None  # with NO_CONTACT: why, when not "no_contact"

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DELIVERED


class Channel(ABC):
    """One way to reach a user. Implementations are long-lived and shared by workers.

    ``send`` must classify every provider failure into a :class:`SendResult` rather than
    raise: the worker's retry logic depends on the classification, and an exception would
    lose the distinction between "try later" and "never".
    """

    name: ClassVar[str]

    @abstractmethod
    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        """Try once to deliver ``message`` to ``contact``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most channels need it
        """Release connections; the channel is not used afterwards."""
