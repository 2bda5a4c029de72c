"""Folding a released batch into one notification: "Ana and 3 others started following you".

The text is ``<actors> <verb phrase>``, which reads right in English, Portuguese and
Spanish (subject first). Actors are the distinct actors, most recent first:

* one actor: "Ana"; two: "Ana and Bo"; three or more: "Ana and 2 others".

The verb phrase, in order: the ``phrase`` passed in; else derived from the most recent
item's message when it starts with its actor's name ("Ana started following you" gives
"started following you" — fine in English, but it cannot agree in number, so Portuguese
and Spanish callers should pass a phrase or use the :data:`PHRASES` table via
:func:`phrase_for`). Without actors or a phrase the fold says "<latest message> (and 3
more)". A batch of one item is that item, unchanged. Unsupported languages fall back to
English as a whole, never a mix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "PHRASES",
    "Actor",
    "BatchItem",
    "Folded",
    "VerbPhrase",
    "fold",
    "phrase_for",
]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it. ``id`` identifies (distinctness); ``name`` is shown (``id`` if absent)."""

    id: str | None = None
    name: str | None = None

    @property
    def identity(self) -> str:
        return f"id:{self.id}" if self.id else f"name:{self.name}"

    @property
    def display(self) -> str:
        return self.name or self.id or ""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One held notification, as much of it as folding needs."""

    notification_id: str
    title: str
    message: str
    created_at: datetime
    actor: Actor | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VerbPhrase:
    """The predicate after the actors, for one actor and for several."""

    one: str
    many: str


@dataclass(frozen=True, slots=True)
class Folded:
    """The one notification a batch becomes."""

    title: str
    message: str
    actors: tuple[Actor, ...]
    count: int
    notification_ids: tuple[str, ...]  # most recent first
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True)
class _Words:
    two: str
    other: str
    others: str
    more: str


_WORDS = {
    "en": _Words(
        "{a} and {b}", "{a} and 1 other", "{a} and {n} others", "{message} (and {n} more)"
    ),
    "pt": _Words(
        "{a} e {b}", "{a} e mais 1 pessoa", "{a} e mais {n} pessoas", "{message} (e mais {n})"
    ),
    "es": _Words(
        "{a} y {b}", "{a} y 1 persona más", "{a} y {n} personas más", "{message} (y {n} más)"
    ),
}

PHRASES: Mapping[str, Mapping[str, VerbPhrase]] = {
    "en": {
        "follow": VerbPhrase("started following you", "started following you"),
        "like": VerbPhrase("liked your post", "liked your post"),
        "comment": VerbPhrase("commented on your post", "commented on your post"),
        "mention": VerbPhrase("mentioned you", "mentioned you"),
        "reply": VerbPhrase("replied to you", "replied to you"),
    },
    "pt": {
        "follow": VerbPhrase("começou a seguir você", "começaram a seguir você"),
        "like": VerbPhrase("curtiu sua publicação", "curtiram sua publicação"),
        "comment": VerbPhrase("comentou sua publicação", "comentaram sua publicação"),
        "mention": VerbPhrase("mencionou você", "mencionaram você"),
        "reply": VerbPhrase("respondeu a você", "responderam a você"),
    },
    "es": {
        "follow": VerbPhrase("empezó a seguirte", "empezaron a seguirte"),
        "like": VerbPhrase("reaccionó a tu publicación", "reaccionaron a tu publicación"),
        "comment": VerbPhrase("comentó tu publicación", "comentaron tu publicación"),
        "mention": VerbPhrase("te mencionó", "te mencionaron"),
        "reply": VerbPhrase("te respondió", "te respondieron"),
    },
}


def _language(locale: str | None) -> str:
    language = (locale or "en").replace("_", "-").split("-")[0].lower()
    return language if language in _WORDS else "en"


def phrase_for(type: str, locale: str | None) -> VerbPhrase | None:
    """The built-in phrase for a notification ``type`` in ``locale``'s language, if any."""
    return PHRASES[_language(locale)].get(type)


def _actors_text(names: Sequence[str], words: _Words) -> str:
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return words.two.format(a=names[0], b=names[1])
    rest = len(names) - 1
    return (words.other if rest == 1 else words.others).format(a=names[0], n=rest)


def fold(items: Sequence[BatchItem], locale: str, *, phrase: VerbPhrase | None = None) -> Folded:
    """Fold a released batch into one notification (see module doc for the wording)."""
    if not items:
        raise ValueError("cannot fold an empty batch")
    ordered = sorted(items, key=lambda i: i.created_at, reverse=True)  # stable for ties
    latest = ordered[0]
    words = _WORDS[_language(locale)]

    actors: dict[str, Actor] = {}
    for item in ordered:
        if item.actor is not None and item.actor.display and item.actor.identity not in actors:
            actors[item.actor.identity] = item.actor
    distinct = tuple(actors.values())

    message = latest.message
    if len(ordered) > 1:
        if phrase is None and latest.actor is not None and latest.actor.display:
            name = latest.actor.display
            if latest.message.startswith(name + " "):
                rest = latest.message[len(name) :].strip()
                phrase = VerbPhrase(rest, rest) if rest else None
        if distinct and phrase is not None:
            names = [a.display for a in distinct]
            verb = phrase.many if len(names) > 1 else phrase.one
            message = f"{_actors_text(names, words)} {verb}"
        else:
            message = words.more.format(message=latest.message, n=len(ordered) - 1)

    return Folded(
        title=latest.title,
        message=message,
        actors=distinct,
        count=len(ordered),
        notification_ids=tuple(i.notification_id for i in ordered),
        first_at=ordered[-1].created_at,
        last_at=latest.created_at,
    )
