"""Operator batching rules (one per notification type), validated by ``BatchRule``.

The send pipeline asks :meth:`BatchingRuleService.rules` on every send, so the set is
cached for a few seconds; writes through this process refresh it at once, other
processes see a change within ``cache_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from clarion.domain.batching import BatchRule
from clarion.errors import NotFound, ValidationFailed
from clarion.services.clock import utcnow
from clarion.store import batching_rules as store
from clarion.store.db import Database

MAX_RULES = 500


def parse_rule(data: Any, where: str = "") -> BatchRule:
    """``BatchRule.from_json`` with the problem's field prefixed by ``where``."""
    if isinstance(data, Mapping):  # missing required fields are problems, not TypeErrors
        data = {"type": None, "strategy": None, **data}
    try:
        return BatchRule.from_json(data)
    except ValidationFailed as exc:
        details = [
            {**d, "field": f"{where}{d.get('field', '')}" if where else d.get("field")}
            for d in (exc.details or [])
        ]
        raise ValidationFailed(exc.message, details=details) from exc


class BatchingRuleService:
    def __init__(self, db: Database, *, cache_seconds: float = 2.0) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, dict[str, BatchRule]] | None = None

    async def rules(self) -> dict[str, BatchRule]:
        """Every rule by type; cached for ``cache_seconds``."""
        now = time.monotonic()
        if self._cached is not None and self._cached[0] > now:
            return dict(self._cached[1])
        async with self._db.connect() as conn:
            documents = await store.all_rules(conn)
        rules: dict[str, BatchRule] = {}
        for doc in documents:
            rule = BatchRule.from_json(doc)
            rules[rule.type] = rule
        self._cached = (now + self._cache_seconds, rules)
        return dict(rules)

    async def stored(self) -> list[dict[str, Any]]:
        """Every rule as stored now, by type (not the cache: the audit log's "before")."""
        async with self._db.connect() as conn:
            return [dict(d) for d in await store.all_rules(conn)]

    async def stored_one(self, type_: str) -> dict[str, Any] | None:
        return next((d for d in await self.stored() if d.get("type") == type_), None)

    async def replace_all(self, documents: Sequence[Any]) -> list[BatchRule]:
        """Replace the whole set; nothing changes unless every rule is valid."""
        if len(documents) > MAX_RULES:
            raise ValidationFailed(
                f"at most {MAX_RULES} rules", [{"field": "rules", "problem": "too many"}]
            )
        rules = [parse_rule(doc, f"[{i}].") for i, doc in enumerate(documents)]
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            if rule.type in seen:
                raise ValidationFailed(
                    f"two rules for type {rule.type!r}",
                    [{"field": f"[{i}].type", "problem": "duplicate type"}],
                )
            seen.add(rule.type)
        async with self._db.begin() as conn:
            await store.replace_all(conn, [r.to_json() for r in rules], utcnow())
        self._cached = None
        return sorted(rules, key=lambda r: r.type)

    async def put(self, type_: str, document: Mapping[str, Any]) -> BatchRule:
        """Create or replace the rule of one type; ``type`` in the body, if given, must match."""
        if not isinstance(document, Mapping):
            raise ValidationFailed("the rule must be an object", [{"field": "rule"}])
        if "type" in document and document["type"] != type_:
            raise ValidationFailed(
                "the body's type differs from the path's",
                [{"field": "type", "problem": "must equal the type in the path"}],
            )
        rule = parse_rule({**document, "type": type_})
        async with self._db.begin() as conn:
            await store.put(conn, rule.to_json(), utcnow())
        self._cached = None
        return rule

    async def delete(self, type_: str) -> None:
        async with self._db.begin() as conn:
            if not await store.remove(conn, type_):
                raise NotFound(f"no batching rule for type {type_!r}")
        self._cached = None
