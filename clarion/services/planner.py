"""Per-recipient planning of a send: template rendering, holding for a batch,
preferences, quiet hours and per-user channel rate limits.

Everything that needs I/O besides the write itself happens here, *before* the send's
transaction: profiles (one query), preferences (one query), batching rules (cached),
template renders (in a thread), rate-limit hits (Redis or memory). The result is a list
of :class:`RecipientPlan` that ``SendingService.write`` turns into rows.

Decisions, per recipient:

* held for a batch (no rows but a batch item) when the priority is not ``urgent`` and
  the user chose a digest for the type (``Preferences.digest_rule``), else the type has
  an operator rule, else the priority is ``low`` and ``low_priority_digest`` is set;
* otherwise, per channel, ``domain.preferences.decide``: suppressed (reason
  ``preference``), deferred to the end of quiet hours (status ``scheduled``, reason
  ``quiet_hours``) or sent now — and a send-now on a channel with a limit in
  ``rate_limit_channels`` that is over it is suppressed with reason ``rate_limited`` —
  or, with ``rate_limit_overflow = "digest"``, held for the user's channel digest
  (status ``scheduled``, reason ``rate_limited``, ``digest=True``, due when the
  limiter's window lets the next one through; see ``ChannelDigestService.flush_channel_digests``).
  ``urgent`` skips quiet hours, batching and the channel rate limits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from clarion.config import Settings
from clarion.domain.batching import BatchRule, BatchStrategy, DigestFrequency
from clarion.domain.preferences import Batch, Defer, Preferences, SendNow, Suppress, decide
from clarion.domain.quiet_hours import quiet_until
from clarion.domain.recipients import Profile
from clarion.domain.send_command import SendCommand
from clarion.domain.types import ChannelName, DeliveryStatus, Priority, SuppressionReason
from clarion.services.batching_rules import BatchingRuleService
from clarion.services.preferences import PreferenceService
from clarion.services.templates import TemplateService
from clarion.store import users as user_store
from clarion.store.db import Database

if TYPE_CHECKING:
    from clarion.hub.ratelimit import RateLimiter

MAX_TITLE = 200


@dataclass(frozen=True)
class PlannedDelivery:
    channel: str
    status: str  # pending | scheduled | suppressed
    reason: str | None
    next_attempt_at: datetime
    digest: bool = False  # held over the rate limit for the (user, channel) digest


@dataclass(frozen=True)
class Recipients:
    """What planning reads about recipients: profiles (absent for users never seen) and
    preferences (defaults for users without any)."""

    profiles: Mapping[str, Profile]
    preferences: Mapping[str, Preferences]


@dataclass(frozen=True)
class RecipientPlan:
    user_id: str
    title: str
    message: str
    content: dict[str, Any]
    locale: str | None
    timezone: str
    inbox: bool = True
    deliveries: tuple[PlannedDelivery, ...] = ()
    hold: BatchRule | None = None
    suppressed_in_app: str | None = None  # the reason when in_app itself is turned off
    experiment: tuple[str, str] | None = None  # (experiment id, variant) that shaped it


class Planner:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        templates: TemplateService,
        preferences: PreferenceService,
        batching: BatchingRuleService,
        limiter: RateLimiter,
    ) -> None:
        self._db = db
        self._settings = settings
        self._templates = templates
        self._prefs = preferences
        self._rules = batching
        self._limiter = limiter

    def low_priority_rule(self, type_: str) -> BatchRule | None:
        frequency = self._settings.low_priority_digest
        if not frequency:
            return None
        return BatchRule(
            type=type_, strategy=BatchStrategy.DIGEST, frequency=DigestFrequency(frequency)
        )

    async def check_template(self, key: str) -> None:
        """``NotFound`` unless template ``key`` exists (checked when a send is scheduled)."""
        await self._templates.get(key)

    async def plan(
        self,
        cmd: SendCommand,
        user_ids: Sequence[str],
        content: Mapping[str, Any],
        now: datetime,
        *,
        allow_hold: bool = True,
    ) -> list[RecipientPlan]:
        """One plan per recipient. Raises ``NotFound`` (unknown template) or
        ``TemplateInvalid`` (render error) before anything is written."""
        known = await self.recipients(user_ids)
        return await self.plan_for(known, cmd, user_ids, content, now, allow_hold=allow_hold)

    async def recipients(self, user_ids: Iterable[str]) -> Recipients:
        """Profiles and preferences of ``user_ids``: the only reads planning needs. A group
        of sends reads its recipients together: on PostgreSQL one prepared statement
        through the driver, elsewhere two queries on one connection."""
        ids = list(dict.fromkeys(user_ids))
        read = await user_store.recipients_fast(self._db, ids)
        if read is not None:
            profiles, documents = read
            return Recipients(profiles, self._prefs.from_documents(ids, documents))
        async with self._db.connect() as conn:
            profiles = await user_store.profiles(conn, ids)
            prefs = await self._prefs.read_many(conn, ids)
        return Recipients(profiles, prefs)

    async def plan_for(
        self,
        known: Recipients,
        cmd: SendCommand,
        user_ids: Sequence[str],
        content: Mapping[str, Any],
        now: datetime,
        *,
        allow_hold: bool = True,
        experiment: tuple[str, str] | None = None,
        delay_seconds: float = 0.0,
    ) -> list[RecipientPlan]:
        """:meth:`plan` with the recipients already read (every id of ``user_ids`` must
        be among ``known``). ``experiment``: the variant that shaped ``cmd``, recorded on
        the rows; ``delay_seconds``: the variant's delay of the channels other than the
        inbox."""
        profiles, prefs = known.profiles, known.preferences
        rules = await self._rules.rules() if allow_hold else {}
        # Without a template every recipient gets the same content: one dict for all of
        # them, which the write encodes to JSON once.
        content = dict(content)
        priority = Priority(cmd.priority)
        plans = []
        for uid in user_ids:
            profile = profiles.get(uid)
            p = prefs[uid]
            locale = profile.locale if profile is not None else None
            title, message, body = await self._render(cmd, uid, profile, content)
            timezone = (profile.timezone if profile is not None else None) or p.timezone
            hold = None
            if allow_hold and priority is not Priority.URGENT:
                hold = p.digest_rule(cmd.type) or rules.get(cmd.type)
                if hold is None and priority is Priority.LOW:
                    hold = self.low_priority_rule(cmd.type)
            if hold is not None:
                plans.append(
                    RecipientPlan(
                        uid,
                        title,
                        message,
                        body,
                        locale,
                        p.timezone,
                        hold=hold,
                        experiment=experiment,
                    )
                )
                continue
            inbox, in_app_reason, deliveries = await self._channels(cmd, uid, p, now)
            if delay_seconds > 0:
                later = now + timedelta(seconds=delay_seconds)
                deliveries = [
                    dataclasses.replace(d, next_attempt_at=max(d.next_attempt_at, later))
                    if d.status == DeliveryStatus.PENDING
                    else d
                    for d in deliveries
                ]
            plans.append(
                RecipientPlan(
                    uid,
                    title,
                    message,
                    body,
                    locale,
                    timezone,
                    inbox=inbox,
                    deliveries=tuple(deliveries),
                    suppressed_in_app=in_app_reason,
                    experiment=experiment,
                )
            )
        return plans

    async def _render(
        self,
        cmd: SendCommand,
        uid: str,
        profile: Profile | None,
        content: dict[str, Any],
    ) -> tuple[str, str, dict[str, Any]]:
        if not cmd.template_key:
            return cmd.title, cmd.message, content
        user: dict[str, Any] = {"user_id": uid}
        if profile is not None:
            user.update(
                email=profile.email,
                phone=profile.phone,
                locale=profile.locale,
                timezone=profile.timezone,
                name=profile.name,
                data=profile.data,
            )
        parts = await self._templates.render_for(
            cmd.template_key,
            locale=user.get("locale"),
            data=cmd.data,
            user=user,
            notification={
                "type": cmd.type,
                "title": cmd.title,
                "message": cmd.message,
                "priority": str(cmd.priority),
                "group_key": cmd.group_key,
            },
        )
        title = (parts.get("in_app.title") or cmd.title or cmd.template_key)[:MAX_TITLE]
        message = parts.get("in_app.message", cmd.message)
        rendered = {k: v for k, v in parts.items() if not k.startswith("in_app.")}
        body = {**content, "title": title, "message": message}
        if rendered:
            body["rendered"] = rendered
        return title, message, body

    async def _channels(
        self, cmd: SendCommand, uid: str, prefs: Preferences, now: datetime
    ) -> tuple[bool, str | None, list[PlannedDelivery]]:
        priority = Priority(cmd.priority)
        critical = self._settings.critical_types
        inbox = False
        in_app_reason: str | None = None
        out: list[PlannedDelivery] = []
        for channel in cmd.channels:
            decision = decide(
                prefs,
                type=cmd.type,
                channel=ChannelName(channel),
                priority=priority,
                now=now,
                critical_types=critical,
            )
            if isinstance(decision, Batch):  # a digest being released: quiet hours only
                until = None if prefs.quiet_hours is None else quiet_until(prefs.quiet_hours, now)
                decision = (
                    SendNow() if until is None else Defer(until, SuppressionReason.QUIET_HOURS)
                )
            if channel == ChannelName.IN_APP:
                if isinstance(decision, Suppress):
                    in_app_reason = str(decision.reason)
                else:
                    inbox = True
                continue
            if isinstance(decision, Suppress):
                out.append(PlannedDelivery(str(channel), "suppressed", str(decision.reason), now))
            elif isinstance(decision, Defer):
                out.append(
                    PlannedDelivery(str(channel), "scheduled", str(decision.reason), decision.until)
                )
            elif (reset := await self._over_limit(uid, str(channel), priority)) is not None:
                reason = str(SuppressionReason.RATE_LIMITED)
                if self._settings.rate_limit_overflow == "digest":
                    until = now + timedelta(seconds=max(reset, 0.0))
                    out.append(PlannedDelivery(str(channel), "scheduled", reason, until, True))
                else:
                    out.append(PlannedDelivery(str(channel), "suppressed", reason, now))
            else:
                out.append(PlannedDelivery(str(channel), "pending", None, now))
        return inbox, in_app_reason, out

    async def _over_limit(self, uid: str, channel: str, priority: Priority) -> float | None:
        """None when within the limit; else seconds until the window lets one through."""
        limit = self._settings.rate_limit_channels.get(channel)
        if not limit or priority is Priority.URGENT:
            return None
        decision = await self._limiter.hit("channel", f"{uid}:{channel}", limit)
        return None if decision.allowed else decision.reset_after
