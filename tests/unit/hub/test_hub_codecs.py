"""Envelope and NOTIFY chunk codecs, URL helpers, metrics registration, broker factory."""

from __future__ import annotations

import os

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from clarion.config import Settings
from clarion.hub.factory import build_broker
from clarion.hub.memory import MemoryBroker
from clarion.hub.metrics import hub_metrics
from clarion.hub.postgres import (
    PostgresBroker,
    PostgresTransport,
    Reassembler,
    asyncpg_dsn,
    encode_chunks,
    is_postgres_url,
)
from clarion.hub.redis import RedisBroker
from clarion.hub.redis_link import RedisLink, build_redis_link
from clarion.hub.relay import Envelope


@given(st.binary(max_size=40_000), st.lists(st.text(min_size=1), max_size=5))
def test_envelope_round_trip(message: bytes, users: list[str]) -> None:
    env = Envelope("node:1:80", 42, users, message)
    assert Envelope.decode(env.encode()) == env


def test_chunks_fit_notify_and_reassemble() -> None:
    data = os.urandom(30_000)
    chunks = encode_chunks("tok.1", data)
    assert len(chunks) > 1
    assert all(len(c.encode()) < 8000 for c in chunks)
    r = Reassembler()
    out = [r.feed(c) for c in chunks]
    assert out[:-1] == [None] * (len(chunks) - 1)
    assert out[-1] == data and r.pending == 0
    assert r.feed(encode_chunks("tok.2", b"")[0]) == b""


def test_incomplete_messages_are_bounded() -> None:
    r = Reassembler(max_partial=3)
    for i in range(10):
        r.feed(encode_chunks(f"t.{i}", os.urandom(20_000))[0])
    assert r.pending <= 3
    assert r.feed("garbage") is None


def test_urls() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://u:p@h:5432/db") == "postgresql://u:p@h:5432/db"
    assert asyncpg_dsn("postgresql://h/db") == "postgresql://h/db"
    assert is_postgres_url("postgresql+asyncpg://h/db")
    assert not is_postgres_url("sqlite+aiosqlite:///x.db")


def test_metrics_are_created_once_per_registry() -> None:
    reg = CollectorRegistry()
    assert hub_metrics(reg) is hub_metrics(reg)
    assert hub_metrics(CollectorRegistry()) is not hub_metrics(reg)
    hub_metrics()  # default registry, twice in one process: no duplicate error
    hub_metrics()


async def test_factory_picks_the_backend() -> None:
    sqlite = Settings(database_url="sqlite+aiosqlite:///x.db")
    pg = Settings(database_url="postgresql+asyncpg://postgres@127.0.0.1/test")
    assert build_redis_link(sqlite) is None
    assert isinstance(build_broker(sqlite, None), MemoryBroker)
    assert isinstance(build_broker(pg, None), PostgresBroker)
    link = RedisLink("redis://127.0.0.1:6379/0")  # not started: nothing connects
    try:
        with_pg = build_broker(pg, link, node_id="n")
        assert isinstance(with_pg, RedisBroker)
        assert isinstance(with_pg.transports[1], PostgresTransport)
        alone = build_broker(sqlite, link)
        assert isinstance(alone, RedisBroker) and len(alone.transports) == 1
    finally:
        await link.close()
    assert "secret" not in repr(RedisLink("redis://:secret@h:6379/0"))


@given(st.lists(st.tuples(st.text(min_size=1), st.binary(max_size=2_000)), max_size=8))
def test_batch_envelope_round_trip(messages: list[tuple[str, bytes]]) -> None:
    env = Envelope.batch("node:1:80", 7, messages)
    back = Envelope.decode(env.encode())
    assert back == env
    assert back.messages() == messages


def test_batch_envelope_is_not_mistaken_for_a_single_message() -> None:
    """Older nodes read ``u`` as the users of ONE message: a batch must not carry it, or
    they would hand every user the whole concatenation."""
    data = Envelope.batch("n", 1, [("ana", b"A"), ("bob", b"B")]).encode()
    header = orjson.loads(data.partition(b"\n")[0])
    assert "u" not in header and header["b"] == ["ana", "bob"]
    with pytest.raises(ValueError):  # lengths that do not add up are refused
        Envelope.decode(data[:-1])
