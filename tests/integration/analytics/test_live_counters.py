"""The live analytics stream: one ``counters`` event a second with what was written in
that second."""

from __future__ import annotations

import asyncio

import httpx
import orjson


async def test_counters_count_what_was_written_each_second(authed: httpx.AsyncClient) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.3)
        for _ in range(3):
            r = await authed.post(
                "/api/v1/notifications", json={"user_id": "ana", "type": "t", "title": "x"}
            )
            assert r.status_code == 202

    # The three sends need well under a second; the stream stays open for several so that
    # a stalled runner still sees them inside it.
    seconds = 6
    task = asyncio.create_task(send_later())
    r = await authed.get("/api/v1/notifications/analytics/live", params={"seconds": seconds})
    await task
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    frames = [
        orjson.loads(line[len("data: ") :])
        for line in r.text.splitlines()
        if line.startswith("data: ")
    ]
    assert 1 <= len(frames) <= seconds + 1
    assert sum(f["accepted"] for f in frames) == 3
    assert all(f["delivered"] == 0 and f["read"] == 0 for f in frames)
    assert sum(f["by_event"].get("accepted", 0) for f in frames) == 3
