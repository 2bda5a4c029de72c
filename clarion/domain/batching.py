"""Batching: when held notifications are released, and how they fold into one.

A :class:`BatchRule` holds notifications of one ``type`` per batch key (user, type,
``group_key``) until the rule's strategy says the batch is due; the batch then *folds*
into a single notification ("Ana and 3 others started following you"). The fold text is
built in :mod:`clarion.domain.folding`. :class:`BatchBook` is the whole life cycle as a
pure state machine — the model the store-backed service must behave like. See
docs/batching.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from clarion.domain.folding import BatchItem, Folded, fold, phrase_for
from clarion.domain.localtime import (
    format_hhmm,
    load_timezone,
    parse_hhmm,
    require_aware,
    resolve_local,
)
from clarion.errors import ValidationFailed

__all__ = [
    "MAX_COUNT",
    "MAX_WINDOW_SECONDS",
    "BatchBook",
    "BatchRule",
    "BatchStrategy",
    "DigestFrequency",
    "OpenBatch",
    "batch_key",
    "flush_at",
    "flush_due",
]

MAX_WINDOW_SECONDS = 7 * 24 * 3600
MAX_COUNT = 1000
DEFAULT_DIGEST_TIME = time(9, 0)


class BatchStrategy(StrEnum):
    WINDOW = "window"  # release window_seconds after the first item
    COUNT = "count"  # release when count items are held
    WINDOW_OR_COUNT = "window_or_count"  # whichever comes first
    DIGEST = "digest"  # release at the next hour, or the next local digest_time


class DigestFrequency(StrEnum):
    INSTANT = "instant"
    HOURLY = "hourly"
    DAILY = "daily"


def _bad(field_name: str, problem: str) -> ValidationFailed:
    return ValidationFailed(
        f"invalid batch rule: {field_name} {problem}",
        details=[{"field": field_name, "problem": problem}],
    )


@dataclass(frozen=True, slots=True)
class BatchRule:
    """How notifications of one type are held; validated on construction.

    Each strategy uses exactly the fields it needs and refuses the others, so a rule
    never carries a setting that silently does nothing.
    """

    type: str
    strategy: BatchStrategy
    window_seconds: int | None = None
    count: int | None = None
    frequency: DigestFrequency | None = None
    digest_time: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type or len(self.type) > 100:
            raise _bad("type", "must be a non-empty string of at most 100 characters")
        try:
            strategy = BatchStrategy(self.strategy)
        except ValueError:
            raise _bad("strategy", "must be one of " + ", ".join(BatchStrategy)) from None
        object.__setattr__(self, "strategy", strategy)
        uses_window = strategy in (BatchStrategy.WINDOW, BatchStrategy.WINDOW_OR_COUNT)
        uses_count = strategy in (BatchStrategy.COUNT, BatchStrategy.WINDOW_OR_COUNT)
        self._check_int("window_seconds", self.window_seconds, uses_window, 1, MAX_WINDOW_SECONDS)
        self._check_int("count", self.count, uses_count, 2, MAX_COUNT)
        if strategy is BatchStrategy.DIGEST:
            if self.frequency not in (DigestFrequency.HOURLY, DigestFrequency.DAILY):
                raise _bad("frequency", "must be hourly or daily for the digest strategy")
            object.__setattr__(self, "frequency", DigestFrequency(self.frequency))
            if self.frequency is DigestFrequency.DAILY:
                if self.digest_time is None:
                    object.__setattr__(self, "digest_time", format_hhmm(DEFAULT_DIGEST_TIME))
                else:
                    parse_hhmm(self.digest_time, field="digest_time")
            elif self.digest_time is not None:
                raise _bad("digest_time", "is only used by daily digests")
        else:
            for name in ("frequency", "digest_time"):
                if getattr(self, name) is not None:
                    raise _bad(name, "is only used by the digest strategy")

    @staticmethod
    def _check_int(name: str, value: Any, used: bool, low: int, high: int) -> None:
        if not used:
            if value is not None:
                raise _bad(name, "is not used by this strategy")
            return
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _bad(name, f"must be an integer from {low} to {high}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchRule:
        allowed = {"type", "strategy", "window_seconds", "count", "frequency", "digest_time"}
        if not isinstance(data, Mapping):
            raise _bad("rule", "must be an object")
        for key in data:
            if key not in allowed:
                raise _bad(str(key), "unknown field")
        return cls(**{k: data[k] for k in allowed if k in data})

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "strategy": self.strategy.value,
            "window_seconds": self.window_seconds,
            "count": self.count,
            "frequency": None if self.frequency is None else self.frequency.value,
            "digest_time": self.digest_time,
        }


def batch_key(user_id: str, type: str, group_key: str | None) -> str:
    """The key batches are held under. Parts are percent-encoded, so no user id, type or
    group key can collide with another by containing ``:``. No group key and an empty one
    are the same batch: one per user and type."""
    return ":".join(["batch", *(quote(part or "", safe="") for part in (user_id, type, group_key))])


def flush_at(rule: BatchRule, opened_at: datetime, user_tz: str) -> datetime | None:
    """When a batch opened at ``opened_at`` is released by time (aware UTC), or None for
    the pure count strategy.

    Digests: hourly is the next local top of the hour strictly after ``opened_at`` (local,
    so half-hour zones get theirs); daily is the next local ``digest_time`` strictly after
    it, resolved with the DST rule of :mod:`clarion.domain.localtime`.
    """
    opened = require_aware(opened_at, name="opened_at").astimezone(UTC)
    if rule.strategy is BatchStrategy.COUNT:
        return None
    if rule.strategy is not BatchStrategy.DIGEST:
        assert rule.window_seconds is not None
        return opened + timedelta(seconds=rule.window_seconds)
    zone = load_timezone(user_tz)
    local = opened.astimezone(zone)
    if rule.frequency is DigestFrequency.HOURLY:
        offset = local.utcoffset() or timedelta(0)
        wall = (opened + offset).replace(tzinfo=None)
        top = wall.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return (top - offset).replace(tzinfo=UTC)
    at = parse_hhmm(rule.digest_time, field="digest_time")
    candidate = resolve_local(local.date(), at, zone)
    if candidate <= opened:
        candidate = resolve_local(local.date() + timedelta(days=1), at, zone)
    return candidate


def flush_due(
    rule: BatchRule, *, opened_at: datetime, item_count: int, now: datetime, user_tz: str
) -> bool:
    """Whether a batch holding ``item_count`` items, opened at ``opened_at``, is due at ``now``."""
    require_aware(now, name="now")
    if rule.count is not None and item_count >= rule.count:
        return True
    deadline = flush_at(rule, opened_at, user_tz)
    return deadline is not None and now >= deadline


@dataclass
class OpenBatch:
    """One held batch in a :class:`BatchBook`."""

    key: str
    type: str
    opened_at: datetime
    items: list[BatchItem] = field(default_factory=list)


@dataclass
class BatchBook:
    """The batching life cycle as a pure state machine (``add``, ``due``, ``flush``).

    It is what the store-backed digest service must be equivalent to, and what the
    property tests exercise: every item added is released in exactly one fold.
    """

    rules: Mapping[str, BatchRule]
    user_tz: str = "UTC"
    locale: str = "en"
    open: dict[str, OpenBatch] = field(default_factory=dict)

    def add(
        self, user_id: str, type: str, group_key: str | None, item: BatchItem, now: datetime
    ) -> str:
        """Hold ``item`` under its batch key, opening the batch at ``now`` on first use.

        ``type`` must have a rule (``KeyError`` otherwise: types without one are not held).
        """
        if type not in self.rules:
            raise KeyError(type)
        key = batch_key(user_id, type, group_key)
        batch = self.open.get(key)
        if batch is None:
            batch = self.open[key] = OpenBatch(key=key, type=type, opened_at=now)
        batch.items.append(item)
        return key

    def due(self, now: datetime) -> list[str]:
        """Keys of the batches due at ``now``, oldest first."""
        return [
            b.key
            for b in sorted(self.open.values(), key=lambda b: b.opened_at)
            if flush_due(
                self.rules[b.type],
                opened_at=b.opened_at,
                item_count=len(b.items),
                now=now,
                user_tz=self.user_tz,
            )
        ]

    def flush(self, key: str) -> Folded:
        """Close the batch ``key`` and fold what it held."""
        batch = self.open.pop(key)
        return fold(batch.items, self.locale, phrase=phrase_for(batch.type, self.locale))

    def flush_due_batches(self, now: datetime) -> list[Folded]:
        return [self.flush(key) for key in self.due(now)]

    def flush_all(self) -> Iterable[Folded]:
        return [self.flush(key) for key in list(self.open)]
