"""Which channel objects exist, by name, and failover between providers of one channel.

The registry refuses duplicate names so two modules cannot silently fight over
``"email"``; the worker looks channels up by the delivery's channel name and treats a
missing one as "channel not configured".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from clarion.delivery.channels.apprise import AppriseChannel
from clarion.delivery.channels.base import Channel, Contact, Outcome, RenderedMessage, SendResult
from clarion.delivery.channels.email import EmailChannel
from clarion.delivery.channels.push import PushChannel
from clarion.delivery.channels.sms import SmsChannel
from clarion.delivery.channels.webhook import WebhookChannel
from clarion.services.netguard import UrlGuard

if TYPE_CHECKING:
    from clarion.config import Settings

log = logging.getLogger(__name__)


class ChannelRegistry:
    """Channel name -> channel object."""

    def __init__(self, *, media_base_url: str | None = None) -> None:
        self._channels: dict[str, Channel] = {}
        #: What relative media references resolve against for channels whose receivers
        #: need absolute URLs (``CLARION_MEDIA_BASE_URL``, else ``CLARION_PUBLIC_URL``).
        self.media_base_url = media_base_url

    def register(self, channel: Channel) -> None:
        name = channel.name
        if name in self._channels:
            raise ValueError(f"channel {name!r} is already registered")
        self._channels[name] = channel

    def get(self, name: str) -> Channel | None:
        return self._channels.get(str(name))

    def __getitem__(self, name: str) -> Channel:
        return self._channels[str(name)]

    def __contains__(self, name: object) -> bool:
        return str(name) in self._channels

    def __iter__(self) -> Iterator[str]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    def names(self) -> list[str]:
        return list(self._channels)

    async def aclose(self) -> None:
        """Close every channel; one failing close must not leak the others."""
        for name, channel in self._channels.items():
            try:
                await channel.aclose()
            except Exception:
                log.exception("closing channel %s failed", name)


class FailoverChannel(Channel):
    """Tries providers in priority order within one attempt while they answer transient.

    A permanent answer stops the chain: "550 no such user" from the first SMTP provider
    will not become true at the second. If every provider is transient, the last result
    is returned with the largest Retry-After any of them asked for.
    """

    def __init__(self, name: str, providers: Sequence[Channel]) -> None:
        if not providers:
            raise ValueError("FailoverChannel needs at least one provider")
        self.name = name  # type: ignore[misc]  # per-instance name, unlike single channels
        self._providers = tuple(providers)

    def __repr__(self) -> str:
        return f"FailoverChannel({self.name!r}, {list(self._providers)!r})"

    async def send(self, message: RenderedMessage, contact: Contact) -> SendResult:
        result: SendResult | None = None
        retry_afters: list[float] = []
        for provider in self._providers:
            try:
                result = await provider.send(message, contact)
            except Exception as exc:
                # Channels should never raise; if one does, it is treated as a transient
                # fault of that provider so the next one still gets its chance.
                log.exception("channel provider %r raised", provider)
                result = SendResult(
                    Outcome.TRANSIENT,
                    getattr(provider, "provider", type(provider).__name__),
                    f"provider raised {type(exc).__name__}",
                )
            if result.outcome is not Outcome.TRANSIENT:
                return result
            if result.retry_after is not None:
                retry_afters.append(result.retry_after)
            log.info("provider %s transient, failing over: %s", result.provider, result.detail)
        assert result is not None  # providers is non-empty
        if retry_afters:
            return SendResult(
                result.outcome,
                result.provider,
                result.detail,
                retry_after=max(retry_afters),
                gone_subscriptions=result.gone_subscriptions,
                disable_endpoint=result.disable_endpoint,
                targets=result.targets,
                provider_message_id=result.provider_message_id,
            )
        return result

    async def aclose(self) -> None:
        for provider in self._providers:
            await provider.aclose()


def build_registry(settings: Settings) -> ChannelRegistry:
    """The channels whose settings are present. ``in_app``/``websocket`` are added by the
    hub's owner, not here."""
    registry = ChannelRegistry(media_base_url=settings.media_base_url or settings.public_url)
    guard = UrlGuard(allow_private=settings.webhook_allow_private)
    if settings.smtp_host:
        registry.register(
            EmailChannel(
                host=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=(
                    settings.smtp_password.get_secret_value() if settings.smtp_password else None
                ),
                sender=settings.smtp_from,
                tls=settings.smtp_tls,
                timeout=settings.smtp_timeout_seconds,
            )
        )
    if settings.vapid_private_key:
        registry.register(
            PushChannel(
                vapid_private_key=settings.vapid_private_key.get_secret_value(),
                vapid_subject=settings.vapid_subject,
                guard=guard,
                timeout=settings.webhook_timeout_seconds,
            )
        )
    if settings.sms_base_url:
        if not (settings.sms_account_sid and settings.sms_auth_token and settings.sms_from):
            raise ValueError(
                "CLARION_SMS_BASE_URL needs CLARION_SMS_ACCOUNT_SID, CLARION_SMS_AUTH_TOKEN "
                "and CLARION_SMS_FROM"
            )
        registry.register(
            SmsChannel(
                base_url=settings.sms_base_url,
                account_sid=settings.sms_account_sid,
                auth_token=settings.sms_auth_token.get_secret_value(),
                sender=settings.sms_from,
                guard=guard,
            )
        )
    registry.register(WebhookChannel(guard=guard, timeout=settings.webhook_timeout_seconds))
    registry.register(AppriseChannel(urls=settings.apprise_urls, guard=guard))
    return registry
