"""A real ``clarion serve`` for the client's tests (one per module: the client's calls do
not disturb each other), and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clarion_client import Client, RetryPolicy
from tests.e2e.conftest import Server, clarion_env, start_server

#: Retries that wait little, so that the tests of other things stay quick.
QUICK = RetryPolicy(max_retries=3, base_delay=0.05, max_delay=0.2, max_retry_after=5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("sdk")
    started = start_server(workdir, clarion_env(workdir))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, server.key, retry=QUICK) as made:
        yield made
