"""What no route may be handed: JSON beyond the limits of ``domain/jsonlimits`` and
parameters with characters no parameter holds. Checked once, here, before routing.

Why in front of every route rather than in each: a JSON body 100,000 levels deep must
not reach a recursive parser at all (the stdlib's raises ``RecursionError``), and every
free-form field of every route (a send's ``data``, a profile's ``data``, preview samples,
batching rules, preferences, ...) then obeys the same rules with nothing to forget when a
route is added. A path or query holding NUL reaches PostgreSQL as text it refuses (a
``503 storage_unavailable`` alarm for a client's typo): refused here with ``400
invalid_parameter``.

The hot send of api/fastpath runs the same checks itself (it reads the body before this
middleware); a request it does not take comes through here like any other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarion.api.errors import clarion_error_response
from clarion.domain import jsonlimits
from clarion.errors import InvalidParameter

# Percent-encoded or raw NUL and C0 controls (and DEL) in a query string: no parameter
# of the API holds one (ids, cursors, types, keys are printable; the UserId pattern already
# refuses them, but a cursor or a template key would reach the database first).
_BAD_QUERY = re.compile(rb"%(?:[01][0-9a-fA-F]|7[fF])|[\x00-\x1f\x7f]")
_BAD_TEXT = re.compile(r"[\x00-\x1f\x7f]")


def _not_utf8(raw: bytes) -> bool:
    """Whether ``raw``, percent-decoded, is not UTF-8. Starlette decodes such bytes to
    U+FFFD, so ``/users/%FF/token`` and ``/users/%FE/token`` would name one same user."""
    if b"%" not in raw and raw.isascii():
        return False
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def parameter_problem(scope: Scope) -> InvalidParameter | None:
    """A control character, or bytes that are not UTF-8, in the path or the query, as the
    error to answer. (The Idempotency-Key is judged where it is used:
    services/idempotency, a 422.)"""
    if _BAD_TEXT.search(scope["path"]):
        return InvalidParameter(
            "the path holds a control character", [{"field": "path", "problem": "control"}]
        )
    raw_path = scope.get("raw_path")
    if raw_path and _not_utf8(raw_path):
        return InvalidParameter(
            "the path is not UTF-8 once percent-decoded", [{"field": "path", "problem": "utf8"}]
        )
    query = scope.get("query_string", b"")
    if query and _BAD_QUERY.search(query):
        return InvalidParameter(
            "a query parameter holds a control character",
            [{"field": _query_name(query), "problem": "control"}],
        )
    if query and _not_utf8(query.replace(b"+", b" ")):
        return InvalidParameter(
            "a query parameter is not UTF-8 once percent-decoded",
            [{"field": "query", "problem": "utf8"}],
        )
    return None


def _query_name(query: bytes) -> str | None:
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if _BAD_QUERY.search(value) or _BAD_QUERY.search(name):
            return name.decode("latin-1")[:100]
    return None


def is_json_body(scope: Scope) -> bool:
    """Whether FastAPI would parse this request's body as JSON (a JSON content type, or
    none) and it announces a body at all."""
    framed = False
    content_type: bytes | None = None
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name in (b"content-length", b"transfer-encoding"):
            framed = framed or value != b"0"
        elif name == b"content-type":
            content_type = value.partition(b";")[0].strip().lower()
    if not framed and scope.get("http_version") in ("1.0", "1.1"):
        return False
    if content_type is None:
        return True
    main, _, sub = content_type.partition(b"/")
    return bool(main == b"application" and (sub == b"json" or sub.endswith(b"+json")))


def body_problem(raw: bytes, max_depth: int) -> jsonlimits.JsonProblem | None:
    """The first rule ``raw`` breaks, parsed as FastAPI will parse it (the stdlib parser,
    which also reads ``NaN`` and ``Infinity``); ``None`` also for text that is not JSON
    (the route's parser reports that)."""
    found = jsonlimits.raw_problem(raw, max_depth)
    if found is not None:
        return found
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return jsonlimits.find_problem(document, max_depth)


class InputGuard:
    """Pure ASGI middleware, inside ``HotPaths`` (whose hot send checks for itself)."""

    def __init__(self, app: ASGIApp, max_json_depth: int) -> None:
        self.app = app
        self.max_json_depth = max_json_depth

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: a WebSocket's call lasts the whole connection (the live
        # socket's one parameter, its cursor, is read as an integer or ignored).
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        bad = parameter_problem(scope)
        if bad is not None:
            return clarion_error_response(bad)(scope, receive, send)
        if not is_json_body(scope):
            return self.app(scope, receive, send)
        return self._checked(scope, receive, send)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            messages, raw = await whole_body(receive)
        except HTTPException as exc:  # BodyLimit's refusals: the route renders them
            await self.app(scope, raising(exc), send)
            return
        if raw:
            found = body_problem(raw, self.max_json_depth)
            if found is not None:
                await clarion_error_response(found.error())(scope, receive, send)
                return
        await self.app(scope, replaying(messages, receive), send)


async def whole_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """Every message of the request body, and the body when it arrived whole (``None``
    when the client left first)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        if not message.get("more_body", False):
            break
    if len(messages) == 1:
        return messages, messages[0].get("body", b"")
    return messages, b"".join(m.get("body", b"") for m in messages)


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` as the route would have seen it: the messages already read, then the
    rest (a disconnect) from the server."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def raising(exc: Exception) -> Receive:
    """A ``receive`` that raises what reading the body raised (``BodyLimit``'s refusals),
    so the route's own handling answers it."""

    async def receive() -> Message:
        raise exc

    return receive
