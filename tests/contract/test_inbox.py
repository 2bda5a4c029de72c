"""The inbox contract, run on SQLite and PostgreSQL alike: counters stay exact through
every state change, listing pages without gaps, mark-all-read is a watermark."""

from __future__ import annotations

import asyncio

import pytest

from clarion.domain.send_command import SendCommand
from clarion.domain.types import ChannelName
from clarion.errors import BadCursor, Conflict, NotFound, ValidationFailed
from clarion.services.auth import Principal
from clarion.services.container import Services


async def send(services: Services, user: str, n: int = 1, **kw: object) -> list[int]:
    ids: list[int] = []
    for i in range(n):
        cmd = SendCommand(user_ids=(user,), type=str(kw.get("type", "follow")), title=f"t{i}")
        ids += (await services.sending.send(cmd)).body["ids"]
    return ids


async def counts(services: Services, user: str) -> tuple[int, int]:
    c = await services.inbox.counts(user)
    return c.unread, c.unseen


async def test_send_creates_user_and_counts(services: Services) -> None:
    assert await counts(services, "ana") == (0, 0)
    ids = await send(services, "ana", 3)
    assert len(set(ids)) == 3
    assert await counts(services, "ana") == (3, 3)
    profile = await services.users.get("ana")
    assert profile["user_id"] == "ana"


async def test_bulk_send_to_many_users(services: Services) -> None:
    users = (*(f"u{i}" for i in range(250)), "u1")  # duplicate folded
    result = await services.sending.send(
        SendCommand(
            user_ids=users,
            type="news",
            title="hello",
            channels=(ChannelName.IN_APP, ChannelName.EMAIL),
        )
    )
    assert result.body["accepted"] == 250
    assert await counts(services, "u7") == (1, 1)
    page = await services.inbox.page("u7")
    assert page["items"][0]["channels"] == ["in_app", "email"]


async def test_too_many_recipients_changes_nothing(services: Services) -> None:
    users = tuple(f"u{i}" for i in range(services.settings.max_recipients + 1))
    with pytest.raises(ValidationFailed):
        await services.sending.send(SendCommand(user_ids=users, type="x", title="y"))
    assert await counts(services, "u1") == (0, 0)


async def test_state_changes_keep_counts_exact(services: Services, server: Principal) -> None:
    a, b, c = await send(services, "ana", 3)
    inbox = services.inbox
    await inbox.apply(server, a, "seen")
    assert await counts(services, "ana") == (3, 2)
    await inbox.apply(server, a, "read")
    await inbox.apply(server, a, "read")  # idempotent
    assert await counts(services, "ana") == (2, 2)
    await inbox.apply(server, b, "read")  # read implies seen
    assert await counts(services, "ana") == (1, 1)
    await inbox.apply(server, b, "unread")
    assert await counts(services, "ana") == (2, 1)
    await inbox.apply(server, c, "archive")  # archived rows leave the counts
    assert await counts(services, "ana") == (1, 0)
    await inbox.apply(server, c, "unarchive")
    assert await counts(services, "ana") == (2, 1)
    await inbox.delete(server, c)
    assert await counts(services, "ana") == (1, 0)
    with pytest.raises(NotFound):
        await inbox.get(server, c)
    item = await inbox.get(server, b)
    assert item["status"] == "unread" and item["seen_at"] is not None


async def test_read_all_is_a_watermark_and_unread_survives_it(
    services: Services, server: Principal
) -> None:
    ids = await send(services, "ana", 5)
    assert (await services.inbox.read_all("ana")).unread == 0
    assert await counts(services, "ana") == (0, 0)
    page = await services.inbox.page("ana", status="unread")
    assert page["items"] == []
    old = ids[1]
    item = await services.inbox.apply(server, old, "unread")
    assert item["status"] == "unread" and item["read_at"] is None
    assert await counts(services, "ana") == (1, 0)
    unread = await services.inbox.page("ana", status="unread")
    assert [i["id"] for i in unread["items"]] == [old]
    new = await send(services, "ana", 1)
    assert await counts(services, "ana") == (2, 1)
    unread = await services.inbox.page("ana", status="unread")
    assert [i["id"] for i in unread["items"]] == [new[0], old]
    read = await services.inbox.page("ana", status="read")
    assert {i["id"] for i in read["items"]} == set(ids) - {old}
    assert all(i["read_at"] for i in read["items"])
    await services.inbox.read_all("ana")
    assert await counts(services, "ana") == (0, 0)
    assert (await services.inbox.page("ana", status="unread"))["items"] == []


async def test_keyset_pages_cover_everything_once(services: Services) -> None:
    ids = await send(services, "ana", 23)
    await send(services, "bo", 2)
    seen: list[int] = []
    cursor = None
    while True:
        page = await services.inbox.page("ana", limit=5, cursor=cursor)
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


async def test_filters(services: Services, server: Principal) -> None:
    f = await send(services, "ana", 2, type="follow")
    m = await send(services, "ana", 1, type="mention")
    await services.inbox.apply(server, f[0], "archive")
    page = await services.inbox.page("ana", type_="follow")
    assert [i["id"] for i in page["items"]] == [f[1]]
    page = await services.inbox.page("ana", archived="true")
    assert [i["id"] for i in page["items"]] == [f[0]]
    page = await services.inbox.page("ana", archived="all")
    assert len(page["items"]) == 3
    page = await services.inbox.page("ana", type_="mention", status="unread")
    assert [i["id"] for i in page["items"]] == m


async def test_bad_cursor(services: Services) -> None:
    for bad in ["garbage", "bjpmb28", "!!!", "eDox"]:
        with pytest.raises(BadCursor):
            await services.inbox.page("ana", cursor=bad)


async def test_user_token_sees_only_its_own(services: Services) -> None:
    (mine,) = await send(services, "ana", 1)
    (theirs,) = await send(services, "bo", 1)
    ana = Principal(kind="user", user_id="ana")
    assert (await services.inbox.get(ana, mine))["user_id"] == "ana"
    for action in ("read", "unread", "seen", "archive", "unarchive"):
        with pytest.raises(NotFound):
            await services.inbox.apply(ana, theirs, action)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await services.inbox.get(ana, theirs)
    with pytest.raises(NotFound):
        await services.inbox.delete(ana, theirs)
    assert await counts(services, "bo") == (1, 1)


async def test_concurrent_changes_keep_counts_exact(services: Services, server: Principal) -> None:
    ids = await send(services, "ana", 20)
    ops = [services.inbox.apply(server, i, "read") for i in ids for _ in range(2)]
    ops += [services.inbox.read_all("ana")]
    await asyncio.gather(*ops)
    assert await counts(services, "ana") == (0, 0)
    more = await send(services, "ana", 4)
    await asyncio.gather(
        *(services.inbox.apply(server, i, "unread") for i in ids[:5]),
        *(services.inbox.apply(server, i, "archive") for i in more[:2]),
    )
    assert await counts(services, "ana") == (7, 2)


async def test_duplicate_api_key_hash_is_a_conflict_not_a_crash(services: Services) -> None:
    from clarion.services.clock import utcnow
    from clarion.store import api_keys

    async with services.db.begin() as conn:
        await api_keys.insert(
            conn,
            id="k1",
            name="a",
            prefix="p",
            key_hash="h",
            now=utcnow(),
            scopes="admin",
            rate_limit=None,
        )
    with pytest.raises(Conflict):
        async with services.db.begin() as conn:
            await api_keys.insert(
                conn,
                id="k2",
                name="b",
                prefix="p",
                key_hash="h",
                now=utcnow(),
                scopes="admin",
                rate_limit=None,
            )


async def test_every_page_shape_matches_the_rows(services: Services, server: Principal) -> None:
    """Each (status, archived, type, cursor) shape of the page statement, compiled once
    and run through the driver on PostgreSQL, answers what the rows' own state says, on
    both backends, and with the same items as reading the notifications one by one."""
    ids = [i for n in range(6) for i in await send(services, "ana", 2, type=f"t{n % 2}")]
    await send(services, "bo", 3, type="t0")  # another user's rows never show
    await services.inbox.apply(server, ids[0], "read")
    await services.inbox.read_all("ana")
    await services.inbox.apply(server, ids[2], "unread")  # forced unread below the watermark
    ids += [i for n in range(3) for i in await send(services, "ana", 1, type=f"t{n % 2}")]
    await services.inbox.apply(server, ids[-1], "read")
    await services.inbox.apply(server, ids[3], "archive")
    await services.inbox.apply(server, ids[-2], "archive")
    await services.inbox.apply(server, ids[-3], "seen")
    full = {i: await services.inbox.get(server, i) for i in ids}

    def wanted(item: dict[str, object], status: str, archived: str, type_: str | None) -> bool:
        return (
            (status == "all" or item["status"] == status)
            and (archived == "all" or (item["archived_at"] is not None) == (archived == "true"))
            and (type_ is None or item["type"] == type_)
        )

    for status in ("all", "unread", "read"):
        for archived in ("false", "true", "all"):
            for type_ in (None, "t0", "t1"):
                expected = [full[i] for i in sorted(ids, reverse=True)]
                expected = [e for e in expected if wanted(e, status, archived, type_)]
                got: list[dict[str, object]] = []
                cursor = None
                while True:  # pages of 2: the first page and the cursor shapes alike
                    page = await services.inbox.page(
                        "ana",
                        status=status,  # type: ignore[arg-type]
                        archived=archived,  # type: ignore[arg-type]
                        type_=type_,
                        limit=2,
                        cursor=cursor,
                    )
                    got += page["items"]
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                assert got == expected, (status, archived, type_)
    assert (await services.inbox.page("nobody")) == {"items": [], "next_cursor": None}
    assert await counts(services, "nobody") == (0, 0)
