"""Preferences: parsing, precedence, critical types, urgency, silent channels, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.domain.batching import BatchStrategy, DigestFrequency
from clarion.domain.preferences import (
    Batch,
    Defer,
    Preferences,
    SendNow,
    Suppress,
    decide,
    decide_all,
)
from clarion.domain.quiet_hours import QuietHours
from clarion.domain.types import ChannelName, Priority, SuppressionReason
from clarion.errors import ValidationFailed

NOON = datetime(2024, 5, 1, 12, tzinfo=UTC)
NIGHT = datetime(2024, 5, 1, 23, tzinfo=UTC)
EMAIL, IN_APP, SMS = ChannelName.EMAIL, ChannelName.IN_APP, ChannelName.SMS


def prefs(**data: Any) -> Preferences:
    return Preferences.from_json(data)


def go(
    p: Preferences,
    channel: ChannelName = EMAIL,
    *,
    type: str = "follow",
    priority: Priority = Priority.NORMAL,
    now: datetime = NOON,
    critical: tuple[str, ...] = (),
) -> object:
    return decide(
        p, type=type, channel=channel, priority=priority, now=now, critical_types=critical
    )


def test_defaults_send_everything_now() -> None:
    assert go(Preferences()) == SendNow()
    assert Preferences.from_json({}) == Preferences()


def test_global_off_suppresses() -> None:
    p = prefs(channels={"email": False})
    assert go(p) == Suppress(SuppressionReason.PREFERENCE)
    assert go(p, SMS) == SendNow()


def test_type_level_value_wins_over_global_both_ways() -> None:
    p = prefs(
        channels={"email": False, "sms": True},
        types={"invoice": {"email": True}, "follow": {"sms": False}},
    )
    assert go(p, type="invoice") == SendNow()
    assert go(p, type="follow") == Suppress(SuppressionReason.PREFERENCE)
    assert go(p, SMS, type="follow") == Suppress(SuppressionReason.PREFERENCE)
    assert go(p, SMS, type="invoice") == SendNow()


def test_critical_types_cannot_be_opted_out_of() -> None:
    p = prefs(channels={"email": False}, types={"security": {"email": False}})
    assert go(p, type="security", critical=("security",)) == SendNow()


def test_critical_is_still_quiet_unless_urgent() -> None:
    p = prefs(quiet_hours={"start": "22:00", "end": "07:00"})
    assert isinstance(go(p, type="security", now=NIGHT, critical=("security",)), Defer)
    assert (
        go(p, type="security", now=NIGHT, critical=("security",), priority=Priority.URGENT)
        == SendNow()
    )


def test_quiet_hours_defer_loud_channels_only() -> None:
    p = prefs(quiet_hours={"start": "22:00", "end": "07:00"}, timezone="UTC")
    assert go(p, now=NIGHT) == Defer(
        datetime(2024, 5, 2, 7, tzinfo=UTC), SuppressionReason.QUIET_HOURS
    )
    assert go(p, IN_APP, now=NIGHT) == SendNow()
    assert go(p, ChannelName.WEBSOCKET, now=NIGHT) == SendNow()
    assert go(p, now=NOON) == SendNow()


def test_quiet_hours_use_the_users_timezone_by_default() -> None:
    p = prefs(quiet_hours={"start": "22:00", "end": "07:00"}, timezone="Asia/Tokyo")
    assert p.quiet_hours is not None and p.quiet_hours.timezone == "Asia/Tokyo"
    assert isinstance(go(p, now=datetime(2024, 5, 1, 14, tzinfo=UTC)), Defer)  # 23:00 in Tokyo


def test_urgent_bypasses_quiet_hours_and_digests_but_not_opt_out() -> None:
    p = prefs(
        quiet_hours={"start": "22:00", "end": "07:00"},
        digest={"follow": "daily"},
        types={"follow": {"sms": False}},
    )
    assert go(p, now=NIGHT, priority=Priority.URGENT) == SendNow()
    assert go(p, SMS, priority=Priority.URGENT) == Suppress(SuppressionReason.PREFERENCE)


def test_digest_batches_loud_channels_before_quiet_hours() -> None:
    p = prefs(
        quiet_hours={"start": "22:00", "end": "07:00"},
        digest={"follow": "hourly", "like": "instant"},
    )
    assert go(p, now=NIGHT) == Batch(DigestFrequency.HOURLY)
    assert go(p, IN_APP) == SendNow()
    assert isinstance(go(p, type="like", now=NIGHT), Defer)


def test_decide_all() -> None:
    p = prefs(channels={"sms": False})
    out = decide_all(p, type="x", channels=[IN_APP, SMS], priority=Priority.HIGH, now=NOON)
    assert out == {IN_APP: SendNow(), SMS: Suppress(SuppressionReason.PREFERENCE)}


def test_digest_rule_uses_users_digest_time() -> None:
    p = prefs(digest={"comment": "daily", "like": "hourly"}, digest_time="18:30")
    rule = p.digest_rule("comment")
    assert (
        rule is not None and rule.strategy is BatchStrategy.DIGEST and rule.digest_time == "18:30"
    )
    assert p.digest_rule("like") is not None and p.digest_rule("like").digest_time is None  # type: ignore[union-attr]
    assert p.digest_rule("follow") is None


def test_round_trip() -> None:
    p = prefs(
        channels={"email": True, "sms": False},
        types={"follow": {"push": False}},
        digest={"comment": "daily"},
        quiet_hours={
            "start": "22:30",
            "end": "06:45",
            "weekdays": [0, 4],
            "timezone": "Europe/Lisbon",
        },
        digest_time="08:15",
        timezone="America/Sao_Paulo",
    )
    assert Preferences.from_json(p.to_json()) == p
    assert p.quiet_hours == QuietHours(
        time(22, 30), time(6, 45), "Europe/Lisbon", frozenset({0, 4})
    )


def test_preferences_are_frozen() -> None:
    p = prefs(channels={"email": False})
    with pytest.raises(TypeError):
        p.channels[EMAIL] = True  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"channels": {"fax": True}}, "channels.fax"),
        ({"channels": {"sms": "yes"}}, "channels.sms"),
        ({"channels": []}, "channels"),
        ({"types": {"follow": {"pager": False}}}, "types.follow.pager"),
        ({"types": {"": {}}}, "types."),
        ({"digest": {"follow": "weekly"}}, "digest.follow"),
        ({"digest_time": "9am"}, "digest_time"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours.end"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_preferences(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        Preferences.from_json(data)
    assert field in [d["field"] for d in info.value.details]


channel_maps = st.dictionaries(st.sampled_from(list(ChannelName)), st.booleans())


@settings(max_examples=200, deadline=None)
@given(
    globals_=channel_maps,
    per_type=channel_maps,
    channel=st.sampled_from(list(ChannelName)),
    priority=st.sampled_from(list(Priority)),
    critical=st.booleans(),
)
def test_precedence_property(
    globals_: dict[ChannelName, bool],
    per_type: dict[ChannelName, bool],
    channel: ChannelName,
    priority: Priority,
    critical: bool,
) -> None:
    p = Preferences(channels=globals_, types={"t": per_type})
    decision = decide(
        p,
        type="t",
        channel=channel,
        priority=priority,
        now=NOON,
        critical_types={"t"} if critical else (),
    )
    enabled = per_type.get(channel, globals_.get(channel, True))
    assert (decision == Suppress(SuppressionReason.PREFERENCE)) == (not enabled and not critical)
