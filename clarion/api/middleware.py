"""Pure ASGI middleware: request body limit and HTTP metrics (no BaseHTTPMiddleware, which
buffers and costs a task per request)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clarion.errors import doc_link
from clarion.metrics import HTTP_LATENCY, HTTP_REQUESTS


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps(
        {"error": {"code": code, "message": message, "details": None, "doc": doc_link(code)}}
    )


class BodyLimit:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length up front and by
    counting a streamed body, before any handler sees it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself, so a WebSocket (its call lasts the whole connection)
        # keeps no frame of this middleware alive.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        framed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                framed = True
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send)
                    return
            elif name == b"transfer-encoding":
                framed = True
        if not framed and scope.get("http_version") in ("1.0", "1.1"):
            # HTTP/1.x (RFC 9112 6.3): a request with neither header has no body. Nothing
            # to count or check: the hot reads (every unread-count) pass unwrapped. (An
            # HTTP/2 body need not announce its length, so those are always counted.)
            await self.app(scope, receive, send)
            return
        seen = 0
        rejected = False
        started = False

        chunks: list[bytes] = []

        async def limited_receive() -> Message:
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                seen += len(body)
                if seen > self.max_bytes:
                    rejected = True
                    raise _TooLarge(self.max_bytes)
                chunks.append(body)
                if not message.get("more_body", False):
                    _check_text(b"".join(chunks) if len(chunks) > 1 else body)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)
            elif not rejected:
                raise

    async def _reject(self, send: Send) -> None:
        body = _error_body(
            "payload_too_large", f"request bodies are limited to {self.max_bytes} bytes"
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# JSON escapes that decode to text no database can store: a UTF-16 surrogate (valid only
# in pairs) or NUL (PostgreSQL text refuses it). Checked only when the raw body has one.
_SUSPECT = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


def _check_text(body: bytes) -> None:
    """Refuse a JSON body whose strings cannot be stored or echoed (422, not a 500)."""
    if b"\\u" not in body or not _SUSPECT.search(body):
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # malformed JSON is the parser's to report
    if not _text_ok(document):
        raise _BadTextError


def _text_ok(value: Any) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_text_ok(k) and _text_ok(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_text_ok(v) for v in value)
    return True


class _BadTextError(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            422, "text must be valid Unicode without NUL characters or lone surrogates"
        )


class _TooLarge(HTTPException):
    """An HTTPException so that FastAPI's body parsing passes it through untouched and
    the one error mapping renders it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request bodies are limited to {max_bytes} bytes")


class Metrics:
    """Counts requests by route template (not raw path: ids would explode cardinality),
    and adds the headers dependencies left in ``request.state.extra_headers``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Bounded by routes x methods x statuses (templates, not raw paths).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":  # see BodyLimit.__call__
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = scope.get("state", {}).get("extra_headers")
                if extra:  # e.g. RateLimit-* set by a dependency
                    message["headers"] = [
                        *message.get("headers", []),
                        *((k.lower().encode(), v.encode()) for k, v in extra.items()),
                    ]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route: Any = scope.get("route")
            # path_format: the template without convertors ({id}, not {id:int}).
            template = getattr(route, "path_format", None) or "unmatched"
            key = (scope["method"], template, status)
            children = self._children.get(key)
            if children is None:
                # labels() takes a lock and builds a tuple key per call: the children
                # of a (method, route, status) are looked up once and kept.
                children = (
                    HTTP_REQUESTS.labels(key[0], template, str(status)),
                    HTTP_LATENCY.labels(key[0], template),
                )
                self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
