"""Every operation of the API and who may call it: the one list the routes are authorized
by (``api/deps.get_principal``, ``api/fastpath``), docs/api.md's scope table is checked
against (tests/integration/test_operations.py), and other coverage checks start from.

An operation is ``(method, path template)`` as the app routes it; the WebSocket endpoint's
method is ``WS``. Paths outside the API (probes, metrics, the OpenAPI document and its
pages) are :data:`NON_API_PATHS`. Adding a route means adding its line here: a route
missing from :data:`OPERATIONS` is refused to everyone but ``admin`` keys, and the test
fails until both this list and the docs' table name it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import fastapi.routing
from starlette.routing import BaseRoute, Route, WebSocketRoute

from clarion.domain.access import Access
from clarion.domain.types import ApiScope

Operation = tuple[str, str]  # (method, path template)

#: Routes that are not part of the API: no credentials, not in the scope table.
NON_API_PATHS: frozenset[str] = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/docs/assets",
        "/docs/errors",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)

# The kinds of rule, named once.
_READ = Access(ApiScope.READ)  # configuration and operator reads
_READ_OWN = Access(ApiScope.READ, user_token=True, send_too=True)  # a user's data
_READ_ANY = Access(ApiScope.READ, send_too=True)  # a user's data, API keys only
_SEND = Access(ApiScope.SEND)
_SEND_OWN = Access(ApiScope.SEND, user_token=True)  # changes a user token may make
_ADMIN = Access(ApiScope.ADMIN)
_STREAM = Access(None, user_token=True)  # the live inbox: user tokens only
_PUBLIC = Access(None, public=True)  # authorised by the signed link itself

_N = "/api/v1/notifications"
_U = "/api/v1/users"

OPERATIONS: Mapping[Operation, Access] = {
    # sending and the inbox
    ("POST", _N): _SEND,
    ("GET", _N): _READ_OWN,
    ("GET", f"{_N}/unread-count"): _READ_OWN,
    ("POST", f"{_N}/read-all"): _SEND_OWN,
    ("GET", f"{_N}/{{notification_id}}"): _READ_OWN,
    ("POST", f"{_N}/{{notification_id}}/read"): _SEND_OWN,
    ("POST", f"{_N}/{{notification_id}}/unread"): _SEND_OWN,
    ("POST", f"{_N}/{{notification_id}}/seen"): _SEND_OWN,
    ("POST", f"{_N}/{{notification_id}}/archive"): _SEND_OWN,
    ("POST", f"{_N}/{{notification_id}}/unarchive"): _SEND_OWN,
    ("DELETE", f"{_N}/{{notification_id}}"): _SEND_OWN,
    ("POST", f"{_N}/{{notification_id}}/actions/{{action_id}}"): _SEND_OWN,
    # live updates
    ("WS", "/api/v1/ws"): _STREAM,
    ("GET", f"{_N}/stream"): _STREAM,
    # deliveries
    ("GET", f"{_N}/{{notification_id}}/deliveries"): _READ_OWN,
    ("POST", f"{_N}/deliveries/{{delivery_id}}/retry"): _ADMIN,
    # scheduled sends
    ("GET", f"{_N}/scheduled"): _READ_OWN,
    ("DELETE", f"{_N}/scheduled"): _SEND,
    ("GET", f"{_N}/scheduled/{{send_id}}"): _READ_ANY,
    ("PATCH", f"{_N}/scheduled/{{send_id}}"): _SEND,
    ("DELETE", f"{_N}/scheduled/{{send_id}}"): _SEND,
    # batches and batching rules
    ("GET", f"{_N}/batches"): _READ_OWN,
    ("GET", f"{_N}/batches/{{batch_id}}"): _READ_OWN,
    ("POST", f"{_N}/batches/{{batch_id}}/flush"): _SEND,
    ("DELETE", f"{_N}/batches/{{batch_id}}"): _SEND,
    ("GET", f"{_N}/batching/rules"): _READ,
    ("PUT", f"{_N}/batching/rules"): _ADMIN,
    ("PUT", f"{_N}/batching/rules/{{type}}"): _ADMIN,
    ("DELETE", f"{_N}/batching/rules/{{type}}"): _ADMIN,
    # preferences
    ("GET", f"{_N}/preferences/{{user_id}}"): _READ_OWN,
    ("PUT", f"{_N}/preferences/{{user_id}}"): _SEND_OWN,
    # users
    ("GET", f"{_U}/{{user_id}}"): _READ_OWN,
    ("PUT", f"{_U}/{{user_id}}"): _SEND_OWN,
    ("POST", f"{_U}/{{user_id}}/token"): _SEND,
    ("DELETE", f"{_U}/{{user_id}}"): _ADMIN,
    ("GET", f"{_U}/{{user_id}}/export"): _ADMIN,
    ("POST", f"{_U}/{{user_id}}/push-subscriptions"): _SEND_OWN,
    ("GET", f"{_U}/{{user_id}}/push-subscriptions"): _READ_OWN,
    ("DELETE", f"{_U}/{{user_id}}/push-subscriptions/{{subscription_id}}"): _SEND_OWN,
    # templates
    ("POST", "/api/v1/templates"): _ADMIN,
    ("GET", "/api/v1/templates"): _READ,
    ("GET", "/api/v1/templates/{key}"): _READ,
    ("PUT", "/api/v1/templates/{key}"): _ADMIN,
    ("DELETE", "/api/v1/templates/{key}"): _ADMIN,
    ("POST", "/api/v1/templates/{key}/preview"): _READ,  # renders; changes nothing
    # webhook endpoints
    ("POST", "/api/v1/webhooks"): _ADMIN,
    ("GET", "/api/v1/webhooks"): _READ,
    ("GET", "/api/v1/webhooks/{endpoint_id}"): _READ,
    ("DELETE", "/api/v1/webhooks/{endpoint_id}"): _ADMIN,
    # system
    ("GET", f"{_N}/system/status"): _READ,
    # analytics (operator reads: API keys only) and conversions
    ("GET", f"{_N}/analytics/dashboard"): _READ,
    ("GET", f"{_N}/analytics/metrics/{{user_id}}"): _READ,
    ("GET", f"{_N}/analytics/health-score"): _READ,
    ("GET", f"{_N}/analytics/trends"): _READ,
    ("GET", f"{_N}/analytics/events"): _READ,
    ("GET", f"{_N}/analytics/live"): _READ,
    ("POST", f"{_N}/{{notification_id}}/conversions"): _SEND,
    ("POST", f"{_U}/{{user_id}}/conversions"): _SEND,
    # A/B experiments
    ("POST", f"{_N}/ab-tests"): _ADMIN,
    ("GET", f"{_N}/ab-tests"): _READ,
    ("GET", f"{_N}/ab-tests/{{experiment_id}}"): _READ,
    ("PATCH", f"{_N}/ab-tests/{{experiment_id}}"): _ADMIN,
    ("DELETE", f"{_N}/ab-tests/{{experiment_id}}"): _ADMIN,
    ("POST", f"{_N}/ab-tests/{{experiment_id}}/start"): _ADMIN,
    ("POST", f"{_N}/ab-tests/{{experiment_id}}/pause"): _ADMIN,
    ("POST", f"{_N}/ab-tests/{{experiment_id}}/stop"): _ADMIN,
    ("POST", f"{_N}/ab-tests/{{experiment_id}}/promote"): _ADMIN,
    ("GET", f"{_N}/ab-tests/{{experiment_id}}/results"): _READ,
    # one-click unsubscribe from email
    ("GET", "/api/v1/unsubscribe/{token}"): _PUBLIC,
    ("POST", "/api/v1/unsubscribe/{token}"): _PUBLIC,
}

#: What a route missing from :data:`OPERATIONS` gets: ``admin`` keys only (fail closed).
UNLISTED = _ADMIN


def access(method: str, path: str) -> Access:
    """The rule of ``method path`` (a route's path template)."""
    return OPERATIONS.get((method, path), UNLISTED)


def routed_operations(routes: Iterable[BaseRoute]) -> set[Operation]:
    """The operations an app's routes serve (``create_app(...).routes``), outside
    :data:`NON_API_PATHS`: each HTTP method of each route, ``WS`` for WebSockets. Paths
    are the matched route's templates (of what a request's ``scope["route"]`` holds, which
    the authorization looks up)."""
    found: set[Operation] = set()
    for route in flat_routes(routes):
        # path_format: the template without convertors ({id}, not {id:int}).
        path: Any = getattr(route, "path_format", None)
        if path is None or path in NON_API_PATHS or getattr(route, "path", None) in NON_API_PATHS:
            continue  # a mount (``/docs/assets``) is named by its path, not its template
        if isinstance(route, WebSocketRoute):
            found.add(("WS", path))
        elif isinstance(route, Route):
            found.update((m, path) for m in (route.methods or ()) if m != "HEAD")
        else:  # FastAPI's APIRoute and APIWebSocketRoute subclass these two
            found.add(("?", path))
    return found


def table_cells(access: Access) -> tuple[str, str]:
    """(API key scopes, user token) as docs/api.md's table writes them."""
    if access.public:
        return "none (signed link)", "not needed"
    scopes = ", ".join(f"`{name}`" for name in access.scope_names()) or "refused"
    return scopes, "yes" if access.user_token else "no"


def flat_routes(routes: Iterable[BaseRoute]) -> Iterable[BaseRoute]:
    """Every route, included routers opened: newer FastAPI keeps an included router as
    one entry of ``app.routes`` (and walks it with ``iter_route_contexts``)."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    if walk is None:
        return list(routes)
    return [context.original_route for context in walk(list(routes))]
