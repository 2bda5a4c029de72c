"""Stored templates: validated and compiled when saved, rendered per recipient when sent.

Saving compiles every locale variant (``domain.rendering.compile_template``), so a
template that does not compile never reaches the database. Compiled variants are cached
in-process under ``(key, version, updated_at)``: every update bumps ``version`` in SQL,
so a cache entry can never serve bodies older than the row it was read with, on any node.
Compiling and rendering are CPU work, both bounded: compiling by the token caps checked
before parsing (``MAX_TOKENS`` per part, ``MAX_TEMPLATE_TOKENS`` per template), rendering
by the sandbox (200 ms of CPU time, and no single operation large enough to hold the
interpreter lock for long). Both run in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clarion.domain.rendering import (
    MAX_TEMPLATE_TOKENS,
    CompiledTemplate,
    StoredTemplate,
    choose_locale,
    compile_template,
    count_tokens,
    render,
    template_variables,
)
from clarion.domain.types import TemplateKind
from clarion.errors import Conflict, NotFound, TemplateInvalid, ValidationFailed
from clarion.services.clock import as_utc, utcnow
from clarion.store import templates as store
from clarion.store.db import Database

MAX_LOCALES = 20
CACHE_SIZE = 256
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$"
LOCALE_PATTERN = r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$"
_KEY = re.compile(KEY_PATTERN)
_LOCALE = re.compile(LOCALE_PATTERN)

Compiled = dict[str, CompiledTemplate]  # locale -> compiled parts


@dataclass(frozen=True)
class TemplateDraft:
    """What a caller may set on a template (everything but its bookkeeping)."""

    kind: TemplateKind
    bodies: Mapping[str, Mapping[str, str]]
    default_locale: str
    description: str | None = None


@dataclass(frozen=True)
class Rendered:
    key: str
    locale: str
    parts: dict[str, str]

    def by_channel(self) -> dict[str, dict[str, str]]:
        """``{"email": {"subject": ..., "html": ...}, "push": {...}}`` from the flat parts."""
        out: dict[str, dict[str, str]] = {}
        for part, text in self.parts.items():
            channel, _, field = part.partition(".")
            out.setdefault(channel, {})[field] = text
        return out


def template_json(row: StoredTemplate) -> dict[str, Any]:
    return {
        "key": row.key,
        "kind": row.kind.value,
        "bodies": row.bodies,
        "default_locale": row.default_locale,
        "description": row.description,
        "version": row.version,
        "created_at": as_utc(row.created_at).isoformat(),
        "updated_at": as_utc(row.updated_at).isoformat(),
    }


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValidationFailed(
            "invalid template key",
            [{"field": "key", "problem": "letters, digits, _ . : - ; at most 100 characters"}],
        )
    return key


def compile_all(draft: TemplateDraft) -> Compiled:
    """Compile every locale variant; ``TemplateInvalid`` lists every bad part of every
    locale, named ``bodies.<locale>.<part>``."""
    bodies = draft.bodies
    problems: list[dict[str, str]] = []
    if not isinstance(bodies, Mapping) or not bodies:
        raise TemplateInvalid(
            "a template needs at least one locale",
            [{"field": "bodies", "problem": "must map at least one locale to its parts"}],
        )
    if len(bodies) > MAX_LOCALES:
        problems.append({"field": "bodies", "problem": f"at most {MAX_LOCALES} locales"})
    for locale in bodies:
        if not isinstance(locale, str) or not _LOCALE.match(locale) or len(locale) > 35:
            problems.append(
                {"field": f"bodies.{locale}", "problem": "not a locale tag (e.g. pt-BR)"}
            )
    tokens = 0
    for parts in bodies.values():
        for source in parts.values() if isinstance(parts, Mapping) else ():
            if isinstance(source, str) and tokens <= MAX_TEMPLATE_TOKENS:
                tokens += count_tokens(source, MAX_TEMPLATE_TOKENS)
    if tokens > MAX_TEMPLATE_TOKENS:  # checked before compiling anything: that is the cost
        raise TemplateInvalid(
            "the template is too large",
            [{"field": "bodies", "problem": f"at most {MAX_TEMPLATE_TOKENS} tokens in all"}],
        )
    if draft.default_locale not in bodies:
        problems.append(
            {"field": "default_locale", "problem": "must be one of the locales in bodies"}
        )
    compiled: Compiled = {}
    for locale, parts in bodies.items():
        try:
            compiled[locale] = compile_template(parts)
        except TemplateInvalid as exc:
            for d in exc.details or []:
                problems.append({**d, "field": f"bodies.{locale}.{d.get('field', '')}"})
    if problems:
        raise TemplateInvalid("the template does not compile", details=problems)
    return compiled


class TemplateService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: OrderedDict[tuple[str, int, datetime], Compiled] = OrderedDict()

    # --- CRUD -------------------------------------------------------------------------
    async def create(self, key: str, draft: TemplateDraft) -> dict[str, Any]:
        check_key(key)
        compiled = await asyncio.to_thread(compile_all, draft)
        async with self._db.begin() as conn:
            if await store.get(conn, key) is not None:
                raise _exists(key)
            row = await store.insert(conn, {"key": key, **_values(draft)}, utcnow())
        self._remember(row, compiled)
        return template_json(row)

    async def get(self, key: str) -> dict[str, Any]:
        return template_json(await self._row(key))

    async def list(self, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        async with self._db.connect() as conn:
            rows = await store.list_all(conn, limit=limit + 1, after=cursor)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [template_json(r) for r in rows],
            "next_cursor": rows[-1].key if more else None,
        }

    async def replace(self, key: str, draft: TemplateDraft) -> dict[str, Any]:
        compiled = await asyncio.to_thread(compile_all, draft)
        async with self._db.begin() as conn:
            row = await store.replace(conn, key, _values(draft), utcnow())
        if row is None:
            raise NotFound(f"no template {key!r}")
        self._remember(row, compiled)
        return template_json(row)

    async def delete(self, key: str) -> None:
        async with self._db.begin() as conn:
            if not await store.remove(conn, key):
                raise NotFound(f"no template {key!r}")
        for cache_key in [k for k in self._cache if k[0] == key]:
            del self._cache[cache_key]

    # --- rendering --------------------------------------------------------------------
    async def render_for(
        self,
        key: str,
        *,
        locale: str | None,
        data: Mapping[str, Any] | None,
        user: Mapping[str, Any] | None,
        notification: Mapping[str, Any] | None,
    ) -> dict[str, str]:
        """Every part of template ``key`` rendered for one recipient, in the variant that
        best fits ``locale`` (the user's), falling back to the template's default locale.

        Raises ``NotFound`` for an unknown key and ``RenderError`` (a 422
        ``template_invalid``) when the template fails on these variables.
        """
        rendered = await self.render_variant(
            key, locale=locale, data=data, user=user, notification=notification
        )
        return rendered.parts

    async def render_variant(
        self,
        key: str,
        *,
        locale: str | None,
        data: Mapping[str, Any] | None,
        user: Mapping[str, Any] | None,
        notification: Mapping[str, Any] | None,
    ) -> Rendered:
        """:meth:`render_for`, also saying which locale variant was used."""
        row = await self._row(key)
        compiled = await self._compiled(row)
        chosen = choose_locale(compiled, locale, default=row.default_locale)
        variables = template_variables(data=data, user=user, notification=notification)
        parts = await asyncio.to_thread(render, compiled[chosen], variables)
        return Rendered(key=key, locale=chosen, parts=parts)

    async def _row(self, key: str) -> StoredTemplate:
        async with self._db.connect() as conn:
            row = await store.get(conn, key)
        if row is None:
            raise NotFound(f"no template {key!r}")
        return row

    async def _compiled(self, row: StoredTemplate) -> Compiled:
        cache_key = _cache_key(row)
        compiled = self._cache.get(cache_key)
        if compiled is not None:
            self._cache.move_to_end(cache_key)
            return compiled
        draft = TemplateDraft(kind=row.kind, bodies=row.bodies, default_locale=row.default_locale)
        compiled = await asyncio.to_thread(compile_all, draft)
        self._remember(row, compiled)
        return compiled

    def _remember(self, row: StoredTemplate, compiled: Compiled) -> None:
        key = row.key
        for stale in [k for k in self._cache if k[0] == key]:
            del self._cache[stale]
        self._cache[_cache_key(row)] = compiled
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)


def _cache_key(row: StoredTemplate) -> tuple[str, int, datetime]:
    return (row.key, row.version, as_utc(row.updated_at))


def _values(draft: TemplateDraft) -> dict[str, Any]:
    return {
        "kind": TemplateKind(draft.kind).value,
        "bodies": {loc: dict(parts) for loc, parts in draft.bodies.items()},
        "default_locale": draft.default_locale,
        "description": draft.description,
    }


def _exists(key: str) -> Conflict:
    return Conflict(f"a template with key {key!r} already exists")
