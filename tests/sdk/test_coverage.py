"""The client cannot fall behind the API: every operation the app routes (the list the
authorization matrix probes) has a client method, and every client method names an
operation that exists."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from clarion.api.app import create_app
from clarion.api.operations import Operation, routed_operations
from clarion.config import Settings
from clarion_client import AsyncClient, Client

LIVE_ONLY_ASYNC = {("WS", "/api/v1/ws")}


def _app_operations() -> set[Operation]:
    return routed_operations(create_app(Settings(_env_file=None)).routes)  # type: ignore[call-arg]


def client_operations(client: Any) -> dict[Operation, str]:
    """``(method, path) -> "resource.method"`` for every method of the client and its
    resources that names an operation."""
    found: dict[Operation, str] = {}
    holders = [("", client)] + [
        (f"{name}.", value)
        for name, value in vars(client).items()
        if not name.startswith("_") and hasattr(value, "_t")
    ]
    for prefix, holder in holders:
        for name, member in inspect.getmembers(type(holder)):
            op = getattr(member, "__clarion_operation__", None)
            if op is not None:
                assert op not in found, f"{op} has two methods: {found[op]}, {prefix}{name}"
                found[op] = f"{prefix}{name}"
    return found


def test_every_operation_has_an_async_client_method() -> None:
    routed = _app_operations()
    covered = client_operations(AsyncClient("http://127.0.0.1:1", "clk_x"))
    assert sorted(routed - set(covered)) == [], "operations without a client method"
    assert sorted(set(covered) - routed) == [], "client methods of no operation"


def test_the_sync_client_has_every_operation_but_the_websocket() -> None:
    routed = _app_operations()
    covered = client_operations(Client("http://127.0.0.1:1", "clk_x"))
    assert sorted(routed - set(covered)) == sorted(LIVE_ONLY_ASYNC)
    assert sorted(set(covered) - routed) == []


def test_docs_sdk_lists_every_method() -> None:
    """docs/sdk.md's table of methods is the client's, row for row."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text()
    table = page.split("<!-- sdk operations: begin -->")[1].split("<!-- sdk operations: end -->")[0]
    rows = re.findall(r"^\| `([\w.]+)`[^|]*\| `(\w+) ([^`]+)` \|$", table, re.M)
    documented = {(method, path): name for name, method, path in rows}
    covered = client_operations(AsyncClient("http://127.0.0.1:1", "clk_x"))
    assert documented == covered
