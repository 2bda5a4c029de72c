"""The template, preference and batching stores on SQLite and PostgreSQL alike: template
versions, one query for many users' preferences, and an all-or-nothing swap of the batching
rules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from clarion.domain.preferences import Preferences
from clarion.errors import Conflict, ValidationFailed
from clarion.services.clock import utcnow
from clarion.services.container import Services
from clarion.store import batching_rules as rule_store
from clarion.store import preferences as pref_store
from clarion.store import templates as template_store


@contextmanager
def count_queries(services: Services) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        if not statement.startswith("BEGIN"):  # SQLite's explicit BEGIN is not a query
            seen.append(statement)

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def template(**over: Any) -> dict[str, Any]:
    return {
        "key": "k",
        "kind": "simple",
        "bodies": {"en": {"in_app.title": "hi"}},
        "default_locale": "en",
        "description": None,
        **over,
    }


async def test_template_rows_version_on_every_replace(services: Services) -> None:
    async with services.db.begin() as conn:
        row = await template_store.insert(conn, template(), utcnow())
    assert row.version == 1
    with pytest.raises(Conflict):
        async with services.db.begin() as conn:
            await template_store.insert(conn, template(), utcnow())
    async with services.db.begin() as conn:
        body = {"bodies": {"en": {"in_app.title": "v2"}}}
        row2 = await template_store.replace(conn, "k", body, utcnow())
        assert await template_store.replace(conn, "nope", body, utcnow()) is None
    assert row2 is not None and row2.version == 2
    assert row2.bodies == {"en": {"in_app.title": "v2"}}
    async with services.db.begin() as conn:
        for key in ("b", "a", "c"):
            await template_store.insert(conn, template(key=key), utcnow())
    async with services.db.connect() as conn:
        page = await template_store.list_all(conn, limit=2, after="a")
    assert [r.key for r in page] == ["b", "c"]
    async with services.db.begin() as conn:
        assert await template_store.remove(conn, "k")
        assert not await template_store.remove(conn, "k")


async def test_preferences_upsert_and_get_many_in_one_query(services: Services) -> None:
    doc = Preferences.from_json({"channels": {"sms": False}, "timezone": "Europe/Lisbon"})
    async with services.db.begin() as conn:
        await pref_store.put(conn, "ana", doc.to_json(), utcnow())
        await pref_store.put(conn, "ana", doc.to_json(), utcnow())  # upsert, no conflict
    users = [f"u{i}" for i in range(300)] + ["ana"]
    with count_queries(services) as queries:
        got = await services.preferences.get_many(users)
    assert len(queries) == 1, queries
    assert len(got) == 301 and got["ana"] == doc and got["u7"] == Preferences()


async def test_a_stored_document_that_no_longer_parses_reads_as_defaults(
    services: Services,
) -> None:
    async with services.db.begin() as conn:
        await pref_store.put(conn, "ana", {"timezone": "Gone/Zone"}, utcnow())
    assert await services.preferences.get_preferences("ana") == Preferences()


async def test_batching_rules_swap_is_all_or_nothing(services: Services) -> None:
    good = [{"type": "a", "strategy": "count", "count": 2}]
    await services.batching.replace_all(good)
    with pytest.raises(ValidationFailed):
        await services.batching.replace_all([{"type": "b", "strategy": "count", "count": 2}, {}])
    async with services.db.connect() as conn:
        assert [r["type"] for r in await rule_store.all_rules(conn)] == ["a"]
    await services.batching.put("b", {"strategy": "window", "window_seconds": 60})
    assert set(await services.batching.rules()) == {"a", "b"}
    await services.batching.delete("a")
    assert set(await services.batching.rules()) == {"b"}


async def test_rules_are_cached_briefly(services: Services) -> None:
    await services.batching.replace_all([{"type": "a", "strategy": "count", "count": 2}])
    assert set(await services.batching.rules()) == {"a"}
    # a write by another process (straight to the store) is seen once the cache expires
    async with services.db.begin() as conn:
        await rule_store.replace_all(conn, [], utcnow())
    with count_queries(services) as queries:
        assert set(await services.batching.rules()) == {"a"}
    assert queries == []
    services.batching._cached = None  # expire
    assert await services.batching.rules() == {}
