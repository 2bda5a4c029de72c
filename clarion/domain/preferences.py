"""A user's notification preferences and the per-channel decision they lead to.

Precedence, most specific first (docs/preferences.md has the table):

1. a *critical* type (``critical_types``, set by the operator) is never suppressed by a
   preference: users cannot opt out of security or billing notices;
2. an explicit per-type channel value (``types[type][channel]``) wins over the global one,
   in both directions (global email off + ``invoice.email = true`` sends invoice emails);
3. the global channel switch (``channels[channel]``);
4. otherwise the channel is on.

Timing, for a channel that is on: ``urgent`` priority goes now (no digest, no quiet
hours); then a per-type digest frequency holds it for a digest; then quiet hours defer it.
In-app and WebSocket are *silent* (:data:`SILENT_CHANNELS`): they update the inbox without
interrupting anyone, so neither quiet hours nor digests hold them back — a digest is a
way of interrupting less, and the inbox already is one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from types import MappingProxyType
from typing import Any

from clarion.domain.batching import BatchRule, BatchStrategy, DigestFrequency
from clarion.domain.localtime import format_hhmm, load_timezone, parse_hhmm, require_aware
from clarion.domain.quiet_hours import QuietHours, quiet_until
from clarion.domain.types import ChannelName, Priority, SuppressionReason
from clarion.errors import ValidationFailed

__all__ = [
    "SILENT_CHANNELS",
    "Batch",
    "Decision",
    "Defer",
    "Preferences",
    "SendNow",
    "Suppress",
    "decide",
    "decide_all",
]

SILENT_CHANNELS: frozenset[ChannelName] = frozenset({ChannelName.IN_APP, ChannelName.WEBSOCKET})
MAX_TYPE_LENGTH = 100
MAX_TYPES = 500


@dataclass(frozen=True, slots=True)
class SendNow:
    """Deliver on this channel now."""


@dataclass(frozen=True, slots=True)
class Suppress:
    """Do not deliver on this channel (recorded as a suppressed delivery)."""

    reason: SuppressionReason


@dataclass(frozen=True, slots=True)
class Defer:
    """Deliver at ``until`` (aware UTC) instead of now."""

    until: datetime
    reason: SuppressionReason


@dataclass(frozen=True, slots=True)
class Batch:
    """Hold for the user's digest of this type."""

    frequency: DigestFrequency


Decision = SendNow | Suppress | Defer | Batch


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Preferences:
    """One user's preferences. Missing entries mean "not set": inherit, in the order above."""

    channels: Mapping[ChannelName, bool] = field(default_factory=dict)
    types: Mapping[str, Mapping[ChannelName, bool]] = field(default_factory=dict)
    digest: Mapping[str, DigestFrequency] = field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    digest_time: time = time(9, 0)
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        load_timezone(self.timezone)
        object.__setattr__(self, "channels", _frozen(self.channels))
        object.__setattr__(self, "types", _frozen({t: _frozen(c) for t, c in self.types.items()}))
        object.__setattr__(self, "digest", _frozen(self.digest))

    def channel_enabled(self, type: str, channel: ChannelName) -> bool:
        """The preference alone (no critical override): per-type, then global, then on."""
        per_type = self.types.get(type, {})
        if channel in per_type:
            return per_type[channel]
        return self.channels.get(channel, True)

    def digest_rule(self, type: str) -> BatchRule | None:
        """The user's digest choice for ``type`` as a batching rule (None for instant), so
        the digest service holds and releases it like any operator-defined batch, at the
        user's ``digest_time`` in the user's ``timezone``."""
        frequency = self.digest.get(type, DigestFrequency.INSTANT)
        if frequency is DigestFrequency.INSTANT:
            return None
        return BatchRule(
            type=type,
            strategy=BatchStrategy.DIGEST,
            frequency=frequency,
            digest_time=format_hhmm(self.digest_time)
            if frequency is DigestFrequency.DAILY
            else None,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preferences:
        """Parse the API shape (docs/preferences.md); every problem is reported at once."""
        if not isinstance(data, Mapping):
            raise ValidationFailed(
                "preferences must be an object",
                details=[{"field": "preferences", "problem": "must be an object"}],
            )
        problems: list[dict[str, str]] = []

        def bad(where: str, problem: str) -> None:
            problems.append({"field": where, "problem": problem})

        allowed = {"channels", "types", "digest", "quiet_hours", "digest_time", "timezone"}
        for key in data:
            if key not in allowed:
                bad(str(key), "unknown field")

        timezone = data.get("timezone", "UTC")
        try:
            load_timezone(timezone)
        except ValidationFailed as exc:
            problems.extend(exc.details)
            timezone = "UTC"

        channels = _channel_map(data.get("channels", {}), "channels", bad)

        types: dict[str, Mapping[ChannelName, bool]] = {}
        raw_types = data.get("types", {})
        if not isinstance(raw_types, Mapping):
            bad("types", "must be an object of type -> {channel: bool}")
        elif len(raw_types) > MAX_TYPES:
            bad("types", f"at most {MAX_TYPES} types")
        else:
            for name, value in raw_types.items():
                if _type_ok(name, f"types.{name}", bad):
                    types[name] = _channel_map(value, f"types.{name}", bad)

        digest: dict[str, DigestFrequency] = {}
        raw_digest = data.get("digest", {})
        if not isinstance(raw_digest, Mapping):
            bad("digest", "must be an object of type -> instant|hourly|daily")
        else:
            for name, value in raw_digest.items():
                if not _type_ok(name, f"digest.{name}", bad):
                    continue
                try:
                    digest[name] = DigestFrequency(value)
                except ValueError:
                    bad(f"digest.{name}", "must be one of instant, hourly, daily")

        digest_time = time(9, 0)
        try:
            digest_time = parse_hhmm(data.get("digest_time", "09:00"), field="digest_time")
        except ValidationFailed as exc:
            problems.extend(exc.details)

        quiet: QuietHours | None = None
        if data.get("quiet_hours") is not None:
            try:
                quiet = QuietHours.from_json(data["quiet_hours"], default_timezone=timezone)
            except ValidationFailed as exc:
                problems.extend({**d, "field": _under_quiet_hours(d["field"])} for d in exc.details)

        if problems:
            raise ValidationFailed("invalid preferences", details=problems)
        return cls(
            channels=channels,
            types=types,
            digest=digest,
            quiet_hours=quiet,
            digest_time=digest_time,
            timezone=timezone,
        )

    def to_json(self) -> dict[str, Any]:
        """The API shape; ``from_json(p.to_json()) == p``."""
        return {
            "channels": {c.value: on for c, on in self.channels.items()},
            "types": {t: {c.value: on for c, on in m.items()} for t, m in self.types.items()},
            "digest": {t: f.value for t, f in self.digest.items()},
            "quiet_hours": None if self.quiet_hours is None else self.quiet_hours.to_json(),
            "digest_time": format_hhmm(self.digest_time),
            "timezone": self.timezone,
        }


def _under_quiet_hours(field_name: str) -> str:
    """QuietHours names its own fields bare (``end``) or already prefixed."""
    if field_name == "quiet_hours" or field_name.startswith("quiet_hours."):
        return field_name
    return f"quiet_hours.{field_name}"


def _type_ok(name: Any, where: str, bad: Any) -> bool:
    if not isinstance(name, str) or not name or len(name) > MAX_TYPE_LENGTH:
        bad(where, f"type names are non-empty strings of at most {MAX_TYPE_LENGTH} characters")
        return False
    return True


def _channel_map(value: Any, where: str, bad: Any) -> dict[ChannelName, bool]:
    if not isinstance(value, Mapping):
        bad(where, "must be an object of channel -> true|false")
        return {}
    out: dict[ChannelName, bool] = {}
    for name, on in value.items():
        try:
            channel = ChannelName(name)
        except ValueError:
            bad(f"{where}.{name}", "unknown channel; one of " + ", ".join(ChannelName))
            continue
        if not isinstance(on, bool):
            bad(f"{where}.{name}", "must be true or false")
            continue
        out[channel] = on
    return out


def decide(
    prefs: Preferences,
    *,
    type: str,
    channel: ChannelName,
    priority: Priority,
    now: datetime,
    critical_types: Collection[str] = (),
) -> Decision:
    """What to do with one notification on one channel, by the rules of the module doc."""
    require_aware(now, name="now")
    channel = ChannelName(channel)
    if type not in critical_types and not prefs.channel_enabled(type, channel):
        return Suppress(SuppressionReason.PREFERENCE)
    if Priority(priority) is Priority.URGENT or channel in SILENT_CHANNELS:
        return SendNow()
    frequency = prefs.digest.get(type, DigestFrequency.INSTANT)
    if frequency is not DigestFrequency.INSTANT:
        return Batch(frequency)
    if prefs.quiet_hours is not None:
        until = quiet_until(prefs.quiet_hours, now)
        if until is not None:
            return Defer(until=until, reason=SuppressionReason.QUIET_HOURS)
    return SendNow()


def decide_all(
    prefs: Preferences,
    *,
    type: str,
    channels: Collection[ChannelName],
    priority: Priority,
    now: datetime,
    critical_types: Collection[str] = (),
) -> dict[ChannelName, Decision]:
    """:func:`decide` for each requested channel."""
    return {
        ChannelName(c): decide(
            prefs, type=type, channel=c, priority=priority, now=now, critical_types=critical_types
        )
        for c in channels
    }
