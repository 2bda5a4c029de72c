"""``AsyncClient.live``: frames as they commit, and a resume after a dropped connection
that replays what was missed, once each; and the SSE stream."""

from __future__ import annotations

import asyncio

import pytest

from clarion_client import AsyncClient, LiveConnectionError
from tests.e2e.conftest import Server
from tests.sdk.conftest import QUICK

pytestmark = pytest.mark.e2e


async def _next_created(events: object, timeout: float = 10.0) -> object:
    async def find() -> object:
        async for event in events:  # type: ignore[attr-defined]
            if event.type == "notification.created":
                return event
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), timeout)


async def test_live_resumes_after_a_dropped_connection(server: Server) -> None:
    async with AsyncClient(server.url, server.key, retry=QUICK) as clarion:
        token = (await clarion.users.create_token("rio")).token
        stream = clarion.live(token)
        events = stream.__aiter__()
        try:
            first_task = asyncio.create_task(_next_created(events))
            await asyncio.sleep(0.5)  # connected and subscribed
            await clarion.notifications.send(user_id="rio", type="t", title="one")
            first = await first_task
            assert first.notification.title == "one" and stream.cursor == first.id  # type: ignore[attr-defined]

            # The network drops; three notifications commit while the client is away.
            assert stream._ws is not None
            stream._ws._writer.transport.abort()
            missed = []
            for title in ("two", "three", "four"):
                missed += (
                    await clarion.notifications.send(user_id="rio", type="t", title=title)
                ).ids

            got = [await _next_created(events) for _ in range(3)]
            assert [e.id for e in got] == missed  # type: ignore[attr-defined]
            assert all(e.replay for e in got)  # type: ignore[attr-defined]
            assert stream.reconnects == 1 and stream.cursor == missed[-1]

            # Live again after the resume, and nothing twice.
            later = asyncio.create_task(_next_created(events))
            await asyncio.sleep(0.3)
            five = (await clarion.notifications.send(user_id="rio", type="t", title="five")).ids
            assert (await later).id == five[0]  # type: ignore[attr-defined]
        finally:
            await events.aclose()  # type: ignore[attr-defined]


async def test_live_starts_from_a_cursor(server: Server) -> None:
    async with AsyncClient(server.url, server.key, retry=QUICK) as clarion:
        ids = []
        for title in ("a", "b", "c"):
            ids += (await clarion.notifications.send(user_id="sol", type="t", title=title)).ids
        token = (await clarion.users.create_token("sol")).token
        async with clarion.live(token, cursor=ids[0]) as stream:
            events = stream.__aiter__()
            got = [await _next_created(events) for _ in range(2)]
            await events.aclose()  # type: ignore[attr-defined]
        assert [e.id for e in got] == ids[1:]  # type: ignore[attr-defined]


async def test_a_bad_token_ends_the_stream(server: Server) -> None:
    async with AsyncClient(server.url, server.key, retry=QUICK) as clarion:
        with pytest.raises(LiveConnectionError) as refused:
            async for _ in clarion.live("not-a-token"):
                pass
    assert refused.value.status == 4001


async def test_the_sse_stream_with_a_user_token(server: Server) -> None:
    async with AsyncClient(server.url, server.key, retry=QUICK) as clarion:
        sent = (await clarion.notifications.send(user_id="tao", type="t", title="sse")).ids
        token = (await clarion.users.create_token("tao")).token
        as_user = clarion.with_token(token)
        frames = as_user.notifications.stream(cursor=0)
        first = await _next_created(frames)
        await frames.aclose()  # type: ignore[attr-defined]
        assert first.id == sent[0]  # type: ignore[attr-defined]
        assert (await as_user.notifications.unread_count()).unread == 1


async def test_an_expiring_token_is_renewed_and_the_stream_goes_on(server: Server) -> None:
    """A token expiring 3 s after it is used: the server closes with 4002, the stream
    asks ``renew_token`` for a new one, reconnects after its cursor, and goes on."""
    import time

    from clarion.services.auth import SECRET_FILE, sign_token

    secret = (server.log.parent / SECRET_FILE).read_text().strip()
    now = int(time.time())
    short = sign_token({"sub": "uma", "typ": "user", "iat": now, "exp": now + 3}, secret)
    renewed: list[str] = []
    async with AsyncClient(server.url, server.key, retry=QUICK) as clarion:

        async def renew() -> str:
            renewed.append("yes")
            return (await clarion.users.create_token("uma")).token

        async with clarion.live(short, renew_token=renew) as stream:
            events = stream.__aiter__()
            first = asyncio.create_task(_next_created(events, timeout=30))
            await asyncio.sleep(0.5)
            await clarion.notifications.send(user_id="uma", type="t", title="before expiry")
            assert (await first).notification.title == "before expiry"  # type: ignore[attr-defined]
            await asyncio.sleep(4)  # the token has expired: 4002, renewed, reconnected
            later = asyncio.create_task(_next_created(events, timeout=30))
            await asyncio.sleep(1)
            await clarion.notifications.send(user_id="uma", type="t", title="after renewal")
            assert (await later).notification.title == "after renewal"  # type: ignore[attr-defined]
            await events.aclose()  # type: ignore[attr-defined]
    assert renewed == ["yes"] and stream.reconnects == 1
