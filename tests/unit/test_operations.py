"""The list of operations and who may call them (clarion/api/operations.py) against the
app's own routes and against docs/api.md's table: a route missing from either, or a line
naming an operation that does not exist, fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute

from clarion.api.app import create_app
from clarion.api.deps import get_principal, get_server
from clarion.api.operations import (
    NON_API_PATHS,
    OPERATIONS,
    flat_routes,
    routed_operations,
    table_cells,
)
from clarion.config import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HEADER = "| operation | API key scopes | user token |"
_ROW = re.compile(
    r"^\|\s*`(?P<method>[A-Z]+) (?P<path>/\S*)`\s*\|(?P<scopes>[^|]*)\|(?P<user>[^|]*)\|$"
)


def _app() -> Any:
    return create_app(Settings(_env_file=None))  # type: ignore[call-arg]


def documented() -> dict[tuple[str, str], tuple[str, str]]:
    """The table's rows: (method, path) -> (API key scopes, user token), as written."""
    lines = DOCS.read_text().splitlines()
    start = lines.index(HEADER)
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        match = _ROW.match(line.strip())
        assert match, f"docs/api.md: unparsable row {line!r}"
        key = (match["method"], match["path"])
        assert key not in rows, f"docs/api.md names {key} twice"
        rows[key] = (match["scopes"].strip(), match["user"].strip())
    return rows


def test_every_route_is_an_operation_and_every_operation_a_route() -> None:
    routed = routed_operations(_app().routes)
    assert ("WS", "/api/v1/ws") in routed  # the WebSocket endpoint is counted
    assert ("GET", "/api/v1/notifications/stream") in routed  # and the SSE one
    assert not routed & {(m, p) for m, p in routed if p in NON_API_PATHS}
    assert sorted(routed - set(OPERATIONS)) == [], "routes missing from OPERATIONS"
    assert sorted(set(OPERATIONS) - routed) == [], "OPERATIONS naming no route"


def test_the_docs_table_is_the_list() -> None:
    rows = documented()
    missing = sorted(set(OPERATIONS) - set(rows))
    unknown = sorted(set(rows) - set(OPERATIONS))
    assert missing == [], f"operations missing from docs/api.md's table: {missing}"
    assert unknown == [], f"docs/api.md's table names operations that do not exist: {unknown}"
    wrong = {
        op: (rows[op], table_cells(OPERATIONS[op]))
        for op in rows
        if rows[op] != table_cells(OPERATIONS[op])
    }
    assert wrong == {}, f"docs/api.md disagrees with api/operations.py (doc, code): {wrong}"


def test_user_token_column_matches_the_routes_dependencies() -> None:
    """A route taking the server-only dependency must not be open to user tokens in the
    list, and one taking any principal must be; routes without either authenticate
    themselves (streams) or not at all (signed links)."""
    for route in _flat_api_routes():
        calls = set(_calls(route.dependant))
        for method in route.methods:
            rule = OPERATIONS[(method, route.path_format)]
            if get_server in calls:
                assert not rule.user_token, (method, route.path)
            elif get_principal in calls:
                assert rule.user_token, (method, route.path)
            else:
                assert rule.scope is None, (method, route.path)


def _flat_api_routes() -> Iterator[APIRoute]:
    for route in flat_routes(_app().routes):
        if isinstance(route, APIRoute) and route.path not in NON_API_PATHS:
            yield route


def _calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)
