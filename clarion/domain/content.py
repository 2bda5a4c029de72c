"""The in-app payload of each template kind, validated when a notification is sent.

The inbox widget and SDKs render these payloads, so their shape is a contract: every
field is checked here, unknown fields are refused (a typo should be a 422, not a silently
missing button), strings are stripped and bounded, URLs must be http(s). All problems are
reported at once as ``ValidationFailed(details=[{"field", "problem"}, ...])`` so a caller
fixes a request in one round trip. Shapes and examples: docs/templates.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from clarion.domain.types import TemplateKind
from clarion.errors import ValidationFailed

__all__ = [
    "ACTION_STYLES",
    "MEDIA_KEYS",
    "absolute_media",
    "validate_content",
]

MAX_TITLE = 200
MAX_MESSAGE = 4000
MAX_URL = 2048
MAX_LABEL = 64
MAX_ACTION = 256
MAX_ACTIONS = 5
MAX_TEXT = 500
MAX_DESCRIPTION = 1000
MAX_FIELDS = 20
MAX_ITEMS = 50

MEDIA_KEYS = ("image", "avatar", "video", "thumbnail")
ACTION_STYLES = ("primary", "secondary", "danger", "link")

# The request field that carries ``extra`` (the kind-specific part): problems name the
# field the caller sent, while the stored payload keeps it under ``extra``.
_CONTENT = "content"
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_NOT_SLUG = re.compile(r"[^A-Za-z0-9_-]+")
# C0 controls (but tab and newline), DEL and C1 controls: invisible, break terminals and logs.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class _Problems:
    """Collects every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, problem: str) -> None:
        self.items.append({"field": field, "problem": problem})

    def text(
        self,
        value: Any,
        field: str,
        *,
        limit: int,
        required: bool = True,
        multiline: bool = False,
    ) -> str | None:
        """A stripped string within ``limit`` characters, or None (problem recorded)."""
        if value is None:
            if required:
                self.add(field, "is required")
            return None
        if not isinstance(value, str):
            self.add(field, "must be a string")
            return None
        text: str = value.strip()
        if required and not text:
            self.add(field, "must not be empty")
            return None
        if len(text) > limit:
            self.add(field, f"must be at most {limit} characters")
            return None
        text = text.replace("\r\n", "\n")
        if _CONTROL.search(text) or (not multiline and "\n" in text):
            self.add(field, "must not contain control characters")
            return None
        return text

    def url(self, value: Any, field: str) -> str | None:
        """An absolute http(s) URL: other schemes (javascript:, data:) are script vectors."""
        if not isinstance(value, str):
            self.add(field, "must be a string URL")
            return None
        url: str = value.strip()
        if len(url) > MAX_URL:
            self.add(field, f"must be at most {MAX_URL} characters")
            return None
        if _CONTROL.search(url) or any(c.isspace() for c in url):
            self.add(field, "must not contain spaces or control characters")
            return None
        try:
            parts = urlsplit(url)
        except ValueError:
            self.add(field, "must be a valid URL")
            return None
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            self.add(field, "must be an absolute http or https URL")
            return None
        return url

    def media_url(self, value: Any, field: str) -> str | None:
        """An absolute http(s) URL, or a reference relative to the deployment's media base
        (``john_avatar.jpg``, ``/avatars/john.jpg``): the product brief's own example
        sends a bare file name. A relative reference may not carry a scheme or a host of
        its own (``javascript:x``, ``//evil.example/x`` stay refused), so resolving it
        against the media base can only ever land on that base's host."""
        if isinstance(value, str) and not _has_scheme_or_host(value.strip()):
            ref: str = value.strip()
            if not ref:
                self.add(field, "must not be empty")
                return None
            if len(ref) > MAX_URL:
                self.add(field, f"must be at most {MAX_URL} characters")
                return None
            if _CONTROL.search(ref) or any(c.isspace() for c in ref) or "\\" in ref:
                self.add(field, "must not contain spaces, backslashes or control characters")
                return None
            return ref
        return self.url(value, field)

    def mapping(self, value: Any, field: str, allowed: Sequence[str]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(field, "must be an object")
            return None
        for key in value:
            if key not in allowed:
                self.add(f"{field}.{key}" if field else str(key), "unknown field")
        return value

    def sequence(
        self, value: Any, field: str, *, minimum: int, maximum: int
    ) -> Sequence[Any] | None:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            self.add(field, "must be a list")
            return None
        if not minimum <= len(value) <= maximum:
            self.add(field, f"must have {minimum} to {maximum} entries")
            return None
        return value


def validate_content(
    kind: TemplateKind | str,
    *,
    title: Any,
    message: Any,
    media: Mapping[str, Any] | None = None,
    actions: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check a notification's in-app content against its kind and return the normalised payload.

    The payload is ``{"kind", "title", "message"}`` plus ``media``/``actions`` when given
    and ``extra`` for ``card``, ``list`` and ``timeline``. ``media`` and ``actions`` are
    accepted on every kind (and required by ``rich_media`` and ``interactive``); ``extra``
    only on the kinds that define it. Raises ``ValidationFailed`` listing every problem;
    problems in ``extra`` are named after the request field that carries it,
    ``content`` (``content.fields[0].value``).
    """
    p = _Problems()
    try:
        kind = TemplateKind(kind)
    except ValueError:
        raise ValidationFailed(
            f"unknown template kind {kind!r}",
            details=[{"field": "template", "problem": f"must be one of {', '.join(TemplateKind)}"}],
        ) from None

    payload: dict[str, Any] = {"kind": kind.value}
    payload["title"] = p.text(title, "title", limit=MAX_TITLE)
    payload["message"] = p.text(
        "" if message is None else message,
        "message",
        limit=MAX_MESSAGE,
        required=False,
        multiline=True,
    )

    if media is not None or kind is TemplateKind.RICH_MEDIA:
        out = _media(p, media, required=kind is TemplateKind.RICH_MEDIA)
        if out:
            payload["media"] = out
    if actions is not None or kind is TemplateKind.INTERACTIVE:
        out_actions = _actions(p, actions, required=kind is TemplateKind.INTERACTIVE)
        if out_actions:
            payload["actions"] = out_actions

    extra_check = _EXTRA.get(kind)
    if extra_check is not None:
        payload["extra"] = extra_check(p, extra)
    elif extra:
        p.add(_CONTENT, "is only used by the card, list and timeline kinds")

    if p.items:
        raise ValidationFailed(f"invalid {kind.value} content", details=p.items)
    return payload


def _media(p: _Problems, media: Any, *, required: bool) -> dict[str, str]:
    if media is None:
        p.add("media", "is required for rich_media: one of " + ", ".join(MEDIA_KEYS))
        return {}
    m = p.mapping(media, "media", MEDIA_KEYS)
    if m is None:
        return {}
    out: dict[str, str] = {}
    for key in MEDIA_KEYS:
        if m.get(key) is not None:
            url = p.media_url(m[key], f"media.{key}")
            if url is not None:
                out[key] = url
    if required and not any(m.get(k) is not None for k in MEDIA_KEYS):
        p.add("media", "needs at least one of " + ", ".join(MEDIA_KEYS))
    return out


def _actions(p: _Problems, actions: Any, *, required: bool) -> list[dict[str, str]]:
    if actions is None:
        p.add("actions", f"is required for interactive: 1 to {MAX_ACTIONS} buttons")
        return []
    seq = p.sequence(actions, "actions", minimum=1 if required else 0, maximum=MAX_ACTIONS)
    if seq is None:
        return []
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    given = {a.get("id") for a in seq if isinstance(a, Mapping)}
    for i, raw in enumerate(seq):
        f = f"actions[{i}]"
        a = p.mapping(raw, f, ("id", "label", "action", "url", "style"))
        if a is None:
            continue
        item: dict[str, str] = {}
        ident = a.get("id")
        if ident is None:
            ident = _derived_id(a, i, seen | {x for x in given if isinstance(x, str)})
        if not isinstance(ident, str) or not _SLUG.match(ident):
            p.add(f"{f}.id", "must be a slug: letters, digits, - and _, at most 64")
        elif ident in seen:
            p.add(f"{f}.id", f"duplicate action id {ident!r}")
        else:
            seen.add(ident)
            item["id"] = ident
        label = p.text(a.get("label"), f"{f}.label", limit=MAX_LABEL)
        if label is not None:
            item["label"] = label
        has_action, has_url = a.get("action") is not None, a.get("url") is not None
        if has_action == has_url:
            p.add(f, "needs exactly one of action or url")
        elif has_action:
            action = p.text(a["action"], f"{f}.action", limit=MAX_ACTION)
            if action is not None:
                item["action"] = action
        else:
            url = p.url(a["url"], f"{f}.url")
            if url is not None:
                item["url"] = url
        style = a.get("style", "secondary")
        if style not in ACTION_STYLES:
            p.add(f"{f}.style", "must be one of " + ", ".join(ACTION_STYLES))
        else:
            item["style"] = style
        out.append(item)
    return out


def _derived_id(a: Mapping[str, Any], index: int, taken: set[str]) -> str:
    """The id of an action given without one: a slug of its ``action`` (``view_profile``
    stays ``view_profile``), else of its label, else ``action-<n>``; made unique among the
    notification's actions with a ``-2``, ``-3`` suffix. Clicks are recorded by id, so a
    caller that wants stable ids across sends gives them explicitly."""
    for source in (a.get("action"), a.get("label")):
        if isinstance(source, str):
            slug = _NOT_SLUG.sub("-", source.strip()).strip("-_")[:60]
            if slug:
                break
    else:
        slug = f"action-{index + 1}"
    ident, n = slug, 1
    while ident in taken:
        n += 1
        ident = f"{slug}-{n}"
    return ident


def _has_scheme_or_host(ref: str) -> bool:
    """True for an absolute URL (``https:``, ``javascript:``) or a network-path reference
    (``//host/x``): what may not pass as a relative media reference."""
    if ref.startswith(("//", "\\")):
        return True
    try:
        parts = urlsplit(ref)
    except ValueError:
        return True  # let the URL check report it
    return bool(parts.scheme or parts.netloc)


def absolute_media(media: Mapping[str, Any] | None, base: str) -> dict[str, Any] | None:
    """``media`` with relative references resolved against ``base`` (the deployment's
    ``CLARION_MEDIA_BASE_URL``), for channels whose receivers need absolute URLs (webhook
    payloads, push notifications). The in-app payload keeps references as sent: the
    application's own pages resolve them against their origin."""
    if not media:
        return None if media is None else {}
    out: dict[str, Any] = {}
    for key, value in media.items():
        if isinstance(value, str) and not _has_scheme_or_host(value):
            out[key] = urljoin(base if base.endswith("/") else base + "/", value)
        else:
            out[key] = value
    return out


def _card(p: _Problems, extra: Any) -> dict[str, Any]:
    e = p.mapping({} if extra is None else extra, _CONTENT, ("header", "fields", "footer"))
    if e is None:
        return {}
    out: dict[str, Any] = {}
    for key in ("header", "footer"):
        if e.get(key) is not None:
            text = p.text(e[key], f"{_CONTENT}.{key}", limit=MAX_TITLE)
            if text is not None:
                out[key] = text
    fields = p.sequence(e.get("fields"), f"{_CONTENT}.fields", minimum=1, maximum=MAX_FIELDS)
    out_fields: list[dict[str, str]] = []
    for i, raw in enumerate(fields or ()):
        f = f"{_CONTENT}.fields[{i}]"
        entry = p.mapping(raw, f, ("label", "value"))
        if entry is None:
            continue
        label = p.text(entry.get("label"), f"{f}.label", limit=MAX_LABEL)
        value = entry.get("value")
        # Numbers are common in cards (amounts, counts); they are shown as text.
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        text = p.text(value, f"{f}.value", limit=MAX_TEXT)
        if label is not None and text is not None:
            out_fields.append({"label": label, "value": text})
    out["fields"] = out_fields
    return out


def _list(p: _Problems, extra: Any) -> dict[str, Any]:
    e = p.mapping({} if extra is None else extra, _CONTENT, ("items",))
    if e is None:
        return {}
    items = p.sequence(e.get("items"), f"{_CONTENT}.items", minimum=1, maximum=MAX_ITEMS)
    out: list[dict[str, str]] = []
    for i, raw in enumerate(items or ()):
        f = f"{_CONTENT}.items[{i}]"
        entry = p.mapping(raw, f, ("title", "subtitle", "url", "image"))
        if entry is None:
            continue
        item: dict[str, str] = {}
        title = p.text(entry.get("title"), f"{f}.title", limit=MAX_TITLE)
        if title is not None:
            item["title"] = title
        if entry.get("subtitle") is not None:
            subtitle = p.text(entry["subtitle"], f"{f}.subtitle", limit=MAX_TEXT)
            if subtitle is not None:
                item["subtitle"] = subtitle
        for key in ("url", "image"):
            if entry.get(key) is not None:
                url = p.url(entry[key], f"{f}.{key}")
                if url is not None:
                    item[key] = url
        out.append(item)
    return {"items": out}


def _timeline(p: _Problems, extra: Any) -> dict[str, Any]:
    e = p.mapping({} if extra is None else extra, _CONTENT, ("entries",))
    if e is None:
        return {}
    entries = p.sequence(e.get("entries"), f"{_CONTENT}.entries", minimum=1, maximum=MAX_ITEMS)
    dated: list[tuple[datetime, dict[str, str]]] = []
    for i, raw in enumerate(entries or ()):
        f = f"{_CONTENT}.entries[{i}]"
        entry = p.mapping(raw, f, ("at", "title", "description"))
        if entry is None:
            continue
        at = _instant(p, entry.get("at"), f"{f}.at")
        title = p.text(entry.get("title"), f"{f}.title", limit=MAX_TITLE)
        item: dict[str, str] = {} if title is None else {"title": title}
        if entry.get("description") is not None:
            description = p.text(
                entry["description"], f"{f}.description", limit=MAX_DESCRIPTION, multiline=True
            )
            if description is not None:
                item["description"] = description
        if at is not None:
            item["at"] = at.isoformat().replace("+00:00", "Z")
            dated.append((at, item))
    # Oldest first; ``sorted`` is stable, so equal instants keep the caller's order.
    return {"entries": [item for _, item in sorted(dated, key=lambda pair: pair[0])]}


def _instant(p: _Problems, value: Any, field: str) -> datetime | None:
    """An ISO-8601 datetime with an offset; a naive one would be read in an unknown zone."""
    if not isinstance(value, str) or len(value) > 64:
        p.add(field, "must be an ISO-8601 datetime string")
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        p.add(field, "must be an ISO-8601 datetime, e.g. 2024-05-01T12:00:00Z")
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        p.add(field, "must include a timezone offset, e.g. Z or +01:00")
        return None
    return parsed.astimezone(UTC)


_EXTRA = {
    TemplateKind.CARD: _card,
    TemplateKind.LIST: _list,
    TemplateKind.TIMELINE: _timeline,
}
