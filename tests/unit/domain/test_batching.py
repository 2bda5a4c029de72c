"""Batching rules, flush timing (DST-safe digests), folding text, and nothing lost or doubled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.domain.batching import (
    BatchBook,
    BatchRule,
    BatchStrategy,
    DigestFrequency,
    batch_key,
    flush_at,
    flush_due,
)
from clarion.domain.folding import Actor, BatchItem, VerbPhrase, fold, phrase_for
from clarion.errors import ValidationFailed

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def item(
    n: int, actor: str | None = None, *, minutes: int | None = None, message: str | None = None
) -> BatchItem:
    return BatchItem(
        notification_id=f"n{n}",
        title="New follower",
        message=message if message is not None else f"{actor} started following you",
        created_at=T0 + timedelta(minutes=n if minutes is None else minutes),
        actor=Actor(id=actor.lower(), name=actor) if actor else None,
    )


# -- rules ------------------------------------------------------------------------------


def test_valid_rules() -> None:
    BatchRule("follow", BatchStrategy.WINDOW, window_seconds=300)
    BatchRule("follow", "count", count=10)  # type: ignore[arg-type]
    BatchRule("follow", BatchStrategy.WINDOW_OR_COUNT, window_seconds=60, count=5)
    assert (
        BatchRule("c", BatchStrategy.DIGEST, frequency=DigestFrequency.DAILY).digest_time == "09:00"
    )
    rule = BatchRule.from_json({"type": "c", "strategy": "digest", "frequency": "hourly"})
    assert BatchRule.from_json(rule.to_json()) == rule


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": "", "strategy": "window", "window_seconds": 60},
        {"type": "f", "strategy": "sometimes"},
        {"type": "f", "strategy": "window"},
        {"type": "f", "strategy": "window", "window_seconds": 0},
        {"type": "f", "strategy": "window", "window_seconds": 60, "count": 3},
        {"type": "f", "strategy": "count", "count": 1},
        {"type": "f", "strategy": "count", "count": True},
        {"type": "f", "strategy": "window_or_count", "count": 3},
        {"type": "f", "strategy": "digest"},
        {"type": "f", "strategy": "digest", "frequency": "instant"},
        {"type": "f", "strategy": "digest", "frequency": "hourly", "digest_time": "09:00"},
        {"type": "f", "strategy": "digest", "frequency": "daily", "digest_time": "9"},
        {"type": "f", "strategy": "window", "window_seconds": 60, "frequency": "daily"},
    ],
)
def test_invalid_rules(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed):
        BatchRule.from_json(kwargs)


def test_batch_key_is_unambiguous() -> None:
    assert batch_key("u1", "follow", None) == batch_key("u1", "follow", "")
    assert batch_key("a:b", "c", None) != batch_key("a", "b:c", None)
    assert batch_key("u", "t", "g") == "batch:u:t:g"


# -- flushing ---------------------------------------------------------------------------


def test_window_count_and_either() -> None:
    window = BatchRule("f", BatchStrategy.WINDOW, window_seconds=300)
    count = BatchRule("f", BatchStrategy.COUNT, count=3)
    either = BatchRule("f", BatchStrategy.WINDOW_OR_COUNT, window_seconds=300, count=3)
    at = T0 + timedelta(seconds=299)
    assert not flush_due(window, opened_at=T0, item_count=99, now=at, user_tz="UTC")
    assert flush_due(
        window, opened_at=T0, item_count=1, now=at + timedelta(seconds=1), user_tz="UTC"
    )
    assert flush_at(window, T0, "UTC") == T0 + timedelta(seconds=300)
    assert not flush_due(
        count, opened_at=T0, item_count=2, now=T0 + timedelta(days=30), user_tz="UTC"
    )
    assert flush_due(count, opened_at=T0, item_count=3, now=T0, user_tz="UTC")
    assert flush_at(count, T0, "UTC") is None
    assert flush_due(either, opened_at=T0, item_count=3, now=T0, user_tz="UTC")
    assert flush_due(
        either, opened_at=T0, item_count=1, now=T0 + timedelta(seconds=300), user_tz="UTC"
    )


def test_hourly_digest_uses_the_local_top_of_the_hour() -> None:
    hourly = BatchRule("c", BatchStrategy.DIGEST, frequency=DigestFrequency.HOURLY)
    assert flush_at(hourly, T0 + timedelta(minutes=10), "UTC") == T0 + timedelta(hours=1)
    assert flush_at(hourly, T0, "UTC") == T0 + timedelta(hours=1)  # strictly after
    # Kolkata is +05:30: the local top of the hour is at :30 UTC.
    assert flush_at(hourly, T0 + timedelta(minutes=10), "Asia/Kolkata") == T0 + timedelta(
        minutes=30
    )


def test_daily_digest_is_the_next_local_time_and_dst_safe() -> None:
    daily = BatchRule(
        "c", BatchStrategy.DIGEST, frequency=DigestFrequency.DAILY, digest_time="09:00"
    )
    ny = ZoneInfo("America/New_York")
    # Saturday 2024-03-09 10:00 EST -> Sunday 09:00, which is EDT after the jump.
    opened = datetime(2024, 3, 9, 10, tzinfo=ny)
    assert flush_at(daily, opened, "America/New_York") == datetime(2024, 3, 10, 13, tzinfo=UTC)
    assert flush_at(daily, datetime(2024, 3, 9, 8, tzinfo=ny), "America/New_York") == datetime(
        2024, 3, 9, 14, tzinfo=UTC
    )
    skipped = BatchRule(
        "c", BatchStrategy.DIGEST, frequency=DigestFrequency.DAILY, digest_time="02:30"
    )
    assert flush_at(skipped, datetime(2024, 3, 9, 12, tzinfo=ny), "America/New_York") == datetime(
        2024, 3, 10, 7, 30, tzinfo=UTC
    )
    with pytest.raises(ValidationFailed):
        flush_at(daily, opened, "Not/AZone")


@settings(max_examples=200, deadline=None)
@given(
    opened=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    zone=st.sampled_from(
        ["UTC", "America/New_York", "Europe/Lisbon", "Asia/Kolkata", "Australia/Lord_Howe"]
    ),
    hhmm=st.sampled_from(["00:00", "02:30", "09:00", "23:59"]),
)
def test_daily_digest_is_within_a_day(opened: datetime, zone: str, hhmm: str) -> None:
    rule = BatchRule("c", BatchStrategy.DIGEST, frequency=DigestFrequency.DAILY, digest_time=hhmm)
    at = flush_at(rule, opened, zone)
    assert at is not None and opened < at <= opened + timedelta(hours=25)


# -- folding ----------------------------------------------------------------------------


def test_fold_names_distinct_actors_most_recent_first() -> None:
    follow = phrase_for("follow", "en")
    assert fold([item(1, "Ana")], "en").message == "Ana started following you"
    two = fold([item(1, "Bo"), item(2, "Ana")], "en", phrase=follow)
    assert two.message == "Ana and Bo started following you"
    many = fold(
        [item(1, "Cy"), item(2, "Bo"), item(3, "Di"), item(4, "Ana"), item(5, "Ana")],
        "en",
        phrase=follow,
    )
    assert many.message == "Ana and 3 others started following you"
    assert [a.name for a in many.actors] == ["Ana", "Di", "Bo", "Cy"]
    assert many.count == 5
    assert many.notification_ids == ("n5", "n4", "n3", "n2", "n1")
    assert many.first_at == T0 + timedelta(minutes=1) and many.last_at == T0 + timedelta(minutes=5)
    assert many.title == "New follower"


def test_fold_in_portuguese_and_spanish_agrees_in_number() -> None:
    items = [item(1, "Cy"), item(2, "Bo"), item(3, "Ana")]
    assert (
        fold(items, "pt-BR", phrase=phrase_for("follow", "pt-BR")).message
        == "Ana e mais 2 pessoas começaram a seguir você"
    )
    assert (
        fold(items[1:], "pt", phrase=phrase_for("follow", "pt")).message
        == "Ana e Bo começaram a seguir você"
    )
    assert (
        fold(items, "es", phrase=phrase_for("follow", "es")).message
        == "Ana y 2 personas más empezaron a seguirte"
    )
    assert (
        fold(items[2:] * 2, "es", phrase=phrase_for("follow", "es")).message
        == "Ana empezó a seguirte"
    )


def test_fold_derives_the_phrase_from_the_latest_message() -> None:
    items = [
        item(1, "Bo", message="Bo liked your photo"),
        item(2, "Ana", message="Ana liked your photo"),
    ]
    assert fold(items, "en").message == "Ana and Bo liked your photo"


def test_fold_without_actors_or_phrase_counts_the_rest() -> None:
    items = [item(i, None, message=f"Build {i} failed") for i in range(1, 4)]
    assert fold(items, "en").message == "Build 3 failed (and 2 more)"
    assert fold(items, "pt").message == "Build 3 failed (e mais 2)"
    assert fold(items, "de").message == "Build 3 failed (and 2 more)"  # unsupported -> English
    custom = VerbPhrase("did it", "did it")
    mixed = [item(1, "Ana"), item(2, None, message="anonymous")]
    assert fold(mixed, "en", phrase=custom).message == "Ana did it"


def test_fold_refuses_empty() -> None:
    with pytest.raises(ValueError):
        fold([], "en")


# -- nothing lost, nothing twice ----------------------------------------------------------

RULES = {
    "follow": BatchRule("follow", BatchStrategy.WINDOW, window_seconds=600),
    "like": BatchRule("like", BatchStrategy.COUNT, count=3),
    "comment": BatchRule("comment", BatchStrategy.WINDOW_OR_COUNT, window_seconds=300, count=4),
    "digest": BatchRule("digest", BatchStrategy.DIGEST, frequency=DigestFrequency.HOURLY),
}

arrival = st.tuples(
    st.integers(0, 900),  # seconds since previous event
    st.sampled_from(["u1", "u2", "u:3"]),
    st.sampled_from(sorted(RULES)),
    st.sampled_from([None, "", "post-1", "post:2"]),
    st.sampled_from([None, "Ana", "Bo", "Cy"]),
    st.booleans(),  # flush due batches after this arrival?
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(arrival, max_size=60),
    st.sampled_from(["UTC", "Asia/Kolkata"]),
    st.sampled_from(["en", "pt", "es"]),
)
def test_every_item_is_folded_exactly_once(
    events: list[tuple[int, str, str, str | None, str | None, bool]], tz: str, locale: str
) -> None:
    book = BatchBook(RULES, user_tz=tz, locale=locale)
    now = T0
    added: list[str] = []
    released: list[str] = []
    for n, (gap, user, type_, group, actor, flush) in enumerate(events):
        now += timedelta(seconds=gap)
        it = item(n, actor, minutes=0)
        it = BatchItem(it.notification_id, it.title, it.message or "x", now, it.actor)
        book.add(user, type_, group, it, now)
        added.append(it.notification_id)
        if flush:
            for folded in book.flush_due_batches(now):
                assert folded.count == len(folded.notification_ids) >= 1
                assert folded.message
                released.extend(folded.notification_ids)
    # A count rule holds until its count: due() is the only way out, then the final sweep.
    for folded in book.flush_all():
        released.extend(folded.notification_ids)
    assert sorted(released) == sorted(added)
    assert len(set(released)) == len(released)
    assert not book.open


def test_book_releases_only_due_batches() -> None:
    book = BatchBook(RULES)
    for n in range(2):
        book.add("u1", "like", "p", item(n, "Ana"), T0)
    book.add("u1", "follow", None, item(9, "Bo"), T0)
    assert book.due(T0) == []
    key = book.add("u1", "like", "p", item(3, "Cy"), T0)
    assert book.due(T0) == [key]
    assert book.due(T0 + timedelta(minutes=10)) == [key, batch_key("u1", "follow", None)] or set(
        book.due(T0 + timedelta(minutes=10))
    ) == {key, batch_key("u1", "follow", None)}
    assert book.flush(key).count == 3
    with pytest.raises(KeyError):
        book.add("u1", "unruled", None, item(4, "Ana"), T0)
