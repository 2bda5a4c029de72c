"""The single mapping from errors to HTTP responses.

Every 4xx/5xx body is ``{"error": {"code", "message", "details", "doc"}}`` (``doc`` links
the code's entry on ``/docs/errors``): Clarion's own errors,
FastAPI's validation errors, unknown routes and methods, and unexpected failures alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from clarion.api.responses import Json
from clarion.errors import ClarionError, RateLimited, StorageError, doc_link

log = logging.getLogger("clarion.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Json:
    return Json(
        {"error": {"code": code, "message": message, "details": details, "doc": doc_link(code)}},
        status_code=status,
        headers=headers,
    )


def _clean(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's error list, reduced to what is safe and useful to echo back."""
    out = []
    for err in errors:
        out.append(
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body") or None,
                "problem": err.get("type"),
                "message": err.get("msg"),
            }
        )
    return out


async def _clarion_error(_request: Request, exc: Exception) -> Json:
    assert isinstance(exc, ClarionError)
    return clarion_error_response(exc)


def clarion_error_response(exc: ClarionError) -> Json:
    """The response for one of Clarion's errors (the app's handler, and api/fastpath).

    Every error a retry can cure (409 in progress, 429, 503) says when, in
    ``Retry-After``. A 503 because a dependency does not answer is not logged here: the
    dependency's outage is logged once where it is detected (``store.db.Availability``,
    ``hub.redis_link``), and each failed request only counts there; a traceback per
    request during an outage said nothing new and flooded the log."""
    headers: dict[str, str] | None = None
    if exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        if isinstance(exc, RateLimited):
            headers.update(exc.headers)
    if exc.status >= 500 and not (isinstance(exc, StorageError) and exc.outage):
        log.error("%s: %s", exc.code, exc.message, exc_info=exc.__cause__)
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


async def _validation_error(_request: Request, exc: Exception) -> Json:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    return error_response(422, "validation_failed", "the request is invalid", _clean(errors))


async def _http_error(_request: Request, exc: Exception) -> Json:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _unexpected(_request: Request, exc: Exception) -> Json:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal", "an internal error occurred")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ClarionError, _clarion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
