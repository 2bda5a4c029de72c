"""The two hottest reads (``GET /notifications/unread-count`` and ``GET /notifications``)
without FastAPI's per-request machinery, for requests that are plainly valid.

Why: a bell badge and an inbox page are asked for on every page view. Through FastAPI a
count spends more CPU on routing (every route is tried in order), dependency solving and
per-parameter validation than on its database read. This middleware answers the same
requests with the same code underneath (``AuthService``, the API rate limiter, the inbox
service, the ``Json`` response, the one error renderer).

Exactness by construction: the fast path only takes a request it can finish. Anything
unusual — another method or path, an unknown, repeated, empty or out-of-range parameter,
a value it does not recognise as certainly valid, missing or bad credentials, a user
token asking for another user — falls through, untouched, to the FastAPI route, which
answers exactly as it always has (422, 401, 403 ...). Nothing with a side effect runs
before that decision: the rate limiter's hit comes last, and what happens after it (a
``429``, a bad cursor, the database being down) is rendered here by the same function
the app's error handler uses. The routes stay declared in FastAPI, so OpenAPI, the docs
and every refused request are unchanged.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import Any

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from clarion.api.deps import admitted, route_query_names
from clarion.api.errors import clarion_error_response
from clarion.api.responses import Json
from clarion.errors import ClarionError
from clarion.services.auth import Principal
from clarion.services.container import Services

COUNT_PATH = "/api/v1/notifications/unread-count"
LIST_PATH = "/api/v1/notifications"

# Stricter than the declared constraints (schemas.UserId, TypeName, the list route's
# Query bounds): a value these accept is certainly valid there; any other value takes the
# FastAPI route and its own validation. User ids: printable ASCII without "/" or space.
_USER_ID = re.compile(r"[!-.0-~]{1,255}")
_TYPE = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_LIMIT = re.compile(r"[1-9][0-9]?|100")
_STATUS = frozenset({"unread", "read", "all"})
_ARCHIVED = frozenset({"false", "true", "all"})


class HotReads:
    """Pure ASGI middleware, installed inside ``Metrics`` (which still counts these
    requests under their route template) and outside the router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, Any] = {}
        self._names: dict[str, frozenset[str]] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a request it does not answer (every WebSocket, whose
        # call lasts as long as the connection) keeps no frame of this middleware alive.
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["path"] not in (COUNT_PATH, LIST_PATH)
            or scope.get("root_path")
        ):
            return self.app(scope, receive, send)
        return self._hot(scope, receive, send)

    async def _hot(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path not in self._routes:
            # The first request of each path takes the FastAPI route, which records the
            # route it matched in the scope: its template (for Metrics) and its declared
            # query parameters are learned from there, not restated here.
            await self.app(scope, receive, send)
            route = scope.get("route")
            if getattr(route, "dependant", None) is not None:
                self._names[path] = route_query_names(route)
                self._routes[path] = route
            return
        params = self._params(scope, path)
        if params is None:
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        principal = await self._principal(services, scope, params.get("user_id"))
        if principal is None:
            await self.app(scope, receive, send)
            return
        user_id = principal.scope_user(params.get("user_id"))
        state = scope.setdefault("state", {})
        state["principal"] = principal
        scope["route"] = self._routes[path]  # the Metrics label, as routing would set
        # The rate limiter's Redis round trip runs while the database is read: the two
        # waits overlap instead of adding up. Its verdict still comes first: a denied
        # request answers 429 whatever the read did (a read changes nothing).
        limit = None
        if principal.api_key_id is not None:
            limit = asyncio.ensure_future(
                services.hub.limiter.hit(
                    "api", principal.api_key_id, services.settings.rate_limit_api
                )
            )
        try:
            try:
                body = await self._read(services, path, user_id, params)
                failure: ClarionError | None = None
            except ClarionError as exc:
                body, failure = {}, exc
            if limit is not None:
                state["extra_headers"] = admitted(await limit)
            if failure is not None:
                raise failure
            response = Json(body)
        except ClarionError as exc:
            response = clarion_error_response(exc)
        finally:
            if limit is not None and not limit.done():  # an unexpected error in the read
                limit.cancel()
        await response(scope, receive, send)

    @staticmethod
    async def _read(
        services: Services, path: str, user_id: str, params: dict[str, str]
    ) -> dict[str, Any]:
        if path == COUNT_PATH:
            return (await services.inbox.counts(user_id)).to_json()
        return await services.inbox.page(
            user_id,
            status=params.get("status", "all"),  # type: ignore[arg-type]
            archived=params.get("archived", "false"),  # type: ignore[arg-type]
            type_=params.get("type"),
            limit=int(params.get("limit", "20")),
            cursor=params.get("cursor"),
        )

    def _params(self, scope: Scope, path: str) -> dict[str, str] | None:
        """The query as a dict when every parameter is known, single and certainly valid."""
        raw = scope.get("query_string", b"")
        if not raw:
            return {}
        items = QueryParams(raw).multi_items()
        params = dict(items)
        if len(params) != len(items) or not params.keys() <= self._names[path]:
            return None
        for name, value in params.items():
            if name == "user_id":
                ok = _USER_ID.fullmatch(value) is not None
            elif name == "status":
                ok = value in _STATUS
            elif name == "archived":
                ok = value in _ARCHIVED
            elif name == "type":
                ok = _TYPE.fullmatch(value) is not None
            elif name == "limit":
                ok = _LIMIT.fullmatch(value) is not None
            elif name == "cursor":
                ok = 0 < len(value) <= 64
            else:
                ok = False
            if not ok:
                return None
        return params

    @staticmethod
    async def _principal(services: Services, scope: Scope, user_id: str | None) -> Principal | None:
        """Who is calling, when that is a principal allowed to read ``user_id``'s inbox;
        ``None`` leaves the refusal (and its exact answer) to the FastAPI route."""
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if not authorization:
            return None
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return None
        try:
            principal = await services.auth.authenticate(credential)
            principal.scope_user(user_id)
        except ClarionError:
            return None
        return principal
