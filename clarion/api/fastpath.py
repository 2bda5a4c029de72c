"""The hottest requests without FastAPI's per-request machinery, when they are plainly
valid: the two reads (``GET /notifications/unread-count`` and ``GET /notifications``) and
the send (``POST /notifications``), for the principals the routes' own rules admit
(api/operations.py: an API key's scopes, checked on the cached principal).

Why: a bell badge and an inbox page are asked for on every page view, and a send for every
event of the product. Through FastAPI a count spends more CPU on routing (every route is
tried in order), dependency solving and per-parameter validation than on its database
read, and a send about a third of its CPU. This middleware answers the same requests with
the same code underneath (``AuthService``, the API rate limiter, the inbox service, the
send route's own ``accept``, the ``SendRequest`` model, the ``Json`` response, the one
error renderer).

Exactness by construction: the fast path only takes a request it can finish. Anything
unusual — another method or path, an unknown, repeated, empty or out-of-range parameter,
a value it does not recognise as certainly valid, a body that is not JSON or that the
model refuses, missing or bad credentials, a user token asking for another user or trying
to send — falls through, untouched (a body already read is handed on as it came), to the
FastAPI route, which answers exactly as it always has (422, 401, 403 ...). Nothing with a
side effect runs before that decision: the rate limiter's hit comes last, and what happens
after it (a ``429``, a bad cursor, an unknown template, the database being down) is
rendered here by the same function the app's error handler uses. The routes stay declared
in FastAPI, so OpenAPI, the docs and every refused request are unchanged.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from clarion.api.deps import admitted, api_limit_hit, route_query_names
from clarion.api.errors import clarion_error_response
from clarion.api.inputguard import parameter_problem, raising, replaying, whole_body
from clarion.api.operations import access
from clarion.api.responses import Json
from clarion.api.routes.notifications import accept
from clarion.api.schemas import SendRequest
from clarion.domain import jsonlimits
from clarion.errors import ClarionError
from clarion.services.auth import Principal
from clarion.services.container import Services

COUNT_PATH = "/api/v1/notifications/unread-count"
LIST_PATH = SEND_PATH = "/api/v1/notifications"
# The send route's Header(max_length=...) for Idempotency-Key.
MAX_IDEMPOTENCY_KEY = 255

# Stricter than the declared constraints (schemas.UserId, TypeName, the list route's
# Query bounds): a value these accept is certainly valid there; any other value takes the
# FastAPI route and its own validation. User ids: printable ASCII without "/" or space.
_USER_ID = re.compile(r"[!-.0-~]{1,255}")
_TYPE = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_LIMIT = re.compile(r"[1-9][0-9]?|100")
_STATUS = frozenset({"unread", "read", "all"})
_ARCHIVED = frozenset({"false", "true", "all"})


_Answer = Callable[[Scope, Receive, Send, Any], Awaitable[None]]

# The routes' own rules (api/operations.py): a principal they refuse (a key without the
# scope, a user token sending) falls through to the route, which answers the refusal.
_READS = {COUNT_PATH: access("GET", COUNT_PATH), LIST_PATH: access("GET", LIST_PATH)}
_SEND_RULE = access("POST", SEND_PATH)


def _admit_send(principal: Principal) -> None:
    principal.authorize(_SEND_RULE)  # a server key with `send` (user tokens never send)


class HotPaths:
    """Pure ASGI middleware, installed inside ``BodyLimit`` (bodies are limited and checked
    as for any route) and ``Metrics`` (which still counts these requests under their route
    template), and outside the router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[tuple[str, str], Any] = {}
        self._names: dict[str, frozenset[str]] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a request it does not answer (every WebSocket, whose
        # call lasts as long as the connection) keeps no frame of this middleware alive.
        if scope["type"] != "http" or scope.get("root_path"):
            return self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if method == "GET" and path in (COUNT_PATH, LIST_PATH):
            return self._hot(scope, receive, send, self._hot_read)
        if method == "POST" and path == SEND_PATH:
            return self._hot(scope, receive, send, self._hot_send)
        return self.app(scope, receive, send)

    async def _hot(self, scope: Scope, receive: Receive, send: Send, answer: _Answer) -> None:
        key = (scope["method"], scope["path"])
        route = self._routes.get(key)
        if route is None:
            # The first request of each route takes FastAPI, which records the route it
            # matched in the scope: its template (for Metrics) and its declared query
            # parameters are learned from there, not restated here.
            await self.app(scope, receive, send)
            matched = scope.get("route")
            if getattr(matched, "dependant", None) is not None:
                self._names[scope["path"]] = route_query_names(matched)
                self._routes[key] = matched
            return
        await answer(scope, receive, send, route)

    async def _hot_read(self, scope: Scope, receive: Receive, send: Send, route: Any) -> None:
        path = scope["path"]
        params = self._params(scope, path)
        if params is None:
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        rule = _READS[path]

        def admit(p: Principal) -> None:
            p.authorize(rule)
            p.scope_user(params.get("user_id"))

        principal = await self._principal(services, scope, admit)
        if principal is None:
            await self.app(scope, receive, send)
            return
        user_id = principal.scope_user(params.get("user_id"))
        state = scope.setdefault("state", {})
        state["principal"] = principal
        scope["route"] = route  # the Metrics label, as routing would set
        # The rate limiter's Redis round trip runs while the database is read: the two
        # waits overlap instead of adding up. Its verdict still comes first: a denied
        # request answers 429 whatever the read did (a read changes nothing).
        limit = None
        if principal.api_key_id is not None:
            limit = asyncio.ensure_future(api_limit_hit(services, principal))
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

    async def _hot_send(self, scope: Scope, receive: Receive, send: Send, route: Any) -> None:
        headers = _send_headers(scope)
        if headers is None or not headers[0] or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        idempotency_key = headers[1]
        try:
            messages, raw = await whole_body(receive)
        except HTTPException as exc:  # too large, or text no database can store
            await self.app(scope, raising(exc), send)
            return
        replay = replaying(messages, receive)
        if raw is None:
            await self.app(scope, replay, send)
            return
        services: Services = scope["app"].state.services
        # The JSON limits (domain/jsonlimits), as InputGuard applies them to every other
        # body: a body breaking one, or with an integer orjson would read inexactly,
        # takes the route (through InputGuard, which answers it).
        depth = services.settings.max_json_depth
        if jsonlimits.raw_problem(raw, depth) or jsonlimits.needs_exact_parse(raw):
            await self.app(scope, replay, send)
            return
        try:
            document = orjson.loads(raw)
            if jsonlimits.find_problem(document, depth) is not None:
                await self.app(scope, replay, send)
                return
            body = SendRequest.model_validate(document)
        except (orjson.JSONDecodeError, ValidationError):
            await self.app(scope, replay, send)
            return
        principal = await self._principal(services, scope, _admit_send)
        if principal is None:
            await self.app(scope, replay, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        scope["route"] = route
        try:
            if principal.api_key_id is not None:
                state["extra_headers"] = admitted(await api_limit_hit(services, principal))
            response = await accept(services, principal, body, idempotency_key)
        except ClarionError as exc:
            response = clarion_error_response(exc)
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
        if parameter_problem(scope) is not None:  # InputGuard's refusal, on the route
            return None
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
    async def _principal(
        services: Services, scope: Scope, admit: Callable[[Principal], object]
    ) -> Principal | None:
        """Who is calling, when ``admit`` lets that principal through (it raises what the
        route's own check would); ``None`` leaves the refusal (and its exact answer) to the
        FastAPI route."""
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
            admit(principal)
        except ClarionError:
            return None
        return principal


def _send_headers(scope: Scope) -> tuple[bool, str | None] | None:
    """(JSON content type?, the Idempotency-Key) of a send, or ``None`` when a header is
    one the route should judge: repeated, or a key longer than it accepts."""
    json_body = False
    keys: list[bytes] = []
    for name, value in scope["headers"]:
        if name == b"content-type":
            json_body = value.partition(b";")[0].strip().lower() == b"application/json"
        elif name == b"idempotency-key":
            keys.append(value)
    if len(keys) > 1 or (keys and len(keys[0]) > MAX_IDEMPOTENCY_KEY):
        return None
    return json_body, keys[0].decode("latin-1") if keys else None
