"""Clarion's one error tree.

Every error a caller can see has a stable ``code`` and an HTTP status; :data:`CODES` is
the one table of them (docs/errors.md is generated from it, and the server serves it at
``/docs/errors``); ``api/errors.py`` is the single place that turns them into responses
of the shape ``{"error": {"code", "message", "details", "doc"}}``.

::

    ClarionError (500 internal)
    ├── ValidationFailed (422 validation_failed)
    │   ├── IdempotencyKeyReused (422 idempotency_key_reused)
    │   ├── TemplateInvalid (422 template_invalid)
    │   └── InvalidJsonValue (422 invalid_json_value)  a JSON value beyond the limits
    ├── BadCursor (400 bad_cursor)
    ├── InvalidParameter (400 invalid_parameter)  NUL/control characters in a parameter
    ├── PayloadTooLarge (413 payload_too_large)
    ├── Unauthenticated (401 unauthenticated)
    │   └── TokenExpired (401 token_expired)
    ├── Forbidden (403 forbidden)
    │   └── InsufficientScope (403 insufficient_scope)  the API key lacks the operation's scope
    ├── NotFound (404 not_found)
    ├── Conflict (409 conflict)
    │   ├── IdempotencyInProgress (409 idempotency_in_progress)
    │   └── LiveTargetTaken (409 conflict)  another experiment is live on the same target
    ├── RateLimited (429 rate_limited)
    ├── StorageError (503 storage_unavailable)  driver failures, wrapped ``from`` their cause
    └── DependencyError (503 dependency_unavailable)  Redis, SMTP, ... when no fallback exists
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ClarionError(Exception):
    code = "internal"
    status = 500
    #: Seconds after which a retry may succeed (the ``Retry-After`` header); ``None``:
    #: retrying the same request will not help.
    retry_after: float | None = None

    def __init__(
        self, message: str, details: Any = None, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if retry_after is not None:
            self.retry_after = retry_after


class ValidationFailed(ClarionError):
    code = "validation_failed"
    status = 422


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"


class TemplateInvalid(ValidationFailed):
    code = "template_invalid"


class InvalidJsonValue(ValidationFailed):
    """A JSON body or field beyond the limits of ``domain/jsonlimits`` (docs/api.md,
    "Limits on JSON fields"); ``details`` is ``[{"field", "problem", "message"}]``, the
    shape of ``validation_failed``, with the dotted path of the offending value."""

    code = "invalid_json_value"


class InvalidParameter(ClarionError):
    """A path, query or header parameter holding characters no parameter may hold
    (NUL, other control characters): refused before any query."""

    code = "invalid_parameter"
    status = 400


class BadCursor(ClarionError):
    code = "bad_cursor"
    status = 400


class PayloadTooLarge(ClarionError):
    code = "payload_too_large"
    status = 413


class Unauthenticated(ClarionError):
    code = "unauthenticated"
    status = 401


class Forbidden(ClarionError):
    code = "forbidden"
    status = 403


class InsufficientScope(Forbidden):
    """An API key without the scope an operation needs (docs/api.md, "Scopes"): a
    distinct code, so a client can tell a key to re-issue from a user it may not act for."""

    code = "insufficient_scope"


class CsrfFailed(Forbidden):
    """A state-changing dashboard form without its session's CSRF token."""

    code = "csrf_failed"


class NotFound(ClarionError):
    code = "not_found"
    status = 404


class Conflict(ClarionError):
    code = "conflict"
    status = 409


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    retry_after = 1


class LiveTargetTaken(Conflict):
    """An experiment would go live on a type or template another live experiment holds
    (the store's live-target index refused it): which variant a send gets is never
    ambiguous."""


class RateLimited(ClarionError):
    code = "rate_limited"
    status = 429

    def __init__(
        self,
        message: str,
        retry_after: float,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, details, retry_after=retry_after)
        self.headers = headers or {}


class StorageError(ClarionError):
    code = "storage_unavailable"
    status = 503
    # An outage is usually seconds (a failover, a restart); nothing was written, so the
    # same request can simply come again.
    retry_after = 2

    def __init__(self, message: str, details: Any = None, *, outage: bool = False) -> None:
        super().__init__(message, details)
        #: The database did not answer (logged once per outage by store.db.Availability),
        #: as opposed to refusing one operation (worth a traceback each time).
        self.outage = outage


def is_outage(exc: BaseException) -> bool:
    """The database did not answer: already logged once for the whole outage (see
    ``store.db.Availability``), so loops that retry say nothing more about it."""
    return isinstance(exc, StorageError) and exc.outage


class DependencyError(ClarionError):
    code = "dependency_unavailable"
    status = 503
    retry_after = 2


class TokenExpired(Unauthenticated):
    code = "token_expired"


class TooManyLiveConnections(RateLimited):
    """A user already holds ``CLARION_WS_MAX_PER_USER`` live connections on this node."""

    code = "too_many_live_connections"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    status: int  # 0: varies
    meaning: str
    action: str


#: Every code a caller can receive, with what it means and what to do about it. A test
#: fails when the code raises one this table lacks, or docs/errors.md differs from it.
CODES: dict[str, ErrorCode] = {
    "bad_request": ErrorCode(
        400,
        "The request cannot be read as sent (a malformed request line, or a parameter"
        " of the wrong form).",
        "Fix the request; retrying it unchanged gives the same answer.",
    ),
    "malformed_json": ErrorCode(
        400,
        "The body (or a WebSocket frame) is not valid JSON.",
        "Send valid JSON with `Content-Type: application/json`.",
    ),
    "bad_cursor": ErrorCode(
        400,
        "A `cursor` that Clarion did not issue, or one for a different list.",
        "Pass back `next_cursor` exactly as received, or start again without `cursor`.",
    ),
    "invalid_parameter": ErrorCode(
        400,
        "A path or query parameter holds NUL or another control character.",
        "Send parameters as plain text; percent-encode only printable characters.",
    ),
    "unauthenticated": ErrorCode(
        401,
        "No credentials, or an unknown, revoked or forged API key or user token.",
        "Send `Authorization: Bearer <API key or user token>` with valid credentials.",
    ),
    "token_expired": ErrorCode(
        401,
        "The user token has expired.",
        "Mint a new token from your backend (`POST /api/v1/users/{id}/token`) and retry.",
    ),
    "forbidden": ErrorCode(
        403,
        "Valid credentials that may not do this: a user token acting for another user or"
        " calling a server-only operation, or a field only an API key may set.",
        "Call it with an API key from your backend, or only on the token's own user.",
    ),
    "insufficient_scope": ErrorCode(
        403,
        "The API key lacks the scope the operation needs (`details` names the required"
        " scope and the key's scopes).",
        "Use a key with that scope (`clarion api-key create --scope ...`).",
    ),
    "csrf_failed": ErrorCode(
        403,
        "A state-changing dashboard form arrived without the session's CSRF token (or"
        " with another session's).",
        "Reload the dashboard page and submit the form again.",
    ),
    "not_found": ErrorCode(
        404,
        "No such route or object, or an object of another user (for a user token).",
        "Check the id and the path; do not retry.",
    ),
    "method_not_allowed": ErrorCode(
        405,
        "The route exists but not with this HTTP method.",
        "Use a method the route takes (see `/docs`).",
    ),
    "not_acceptable": ErrorCode(
        406,
        "The `Accept` header asks for a format the route cannot produce.",
        "Accept `application/json` (or `text/event-stream` for the stream).",
    ),
    "conflict": ErrorCode(
        409,
        "The change conflicts with data that exists (a duplicate key or name).",
        "Read the current state and decide; retrying unchanged gives the same answer.",
    ),
    "idempotency_in_progress": ErrorCode(
        409,
        "A request with the same `Idempotency-Key` is still being processed.",
        "Retry with the same key after `Retry-After` seconds: you get its answer.",
    ),
    "payload_too_large": ErrorCode(
        413,
        "The body is over `CLARION_MAX_BODY_BYTES`.",
        "Send less per request (split a bulk send).",
    ),
    "unsupported_media_type": ErrorCode(
        415,
        "The body's `Content-Type` is not one the route reads.",
        "Send `Content-Type: application/json`.",
    ),
    "validation_failed": ErrorCode(
        422,
        "A field is missing, of the wrong type, too long, unknown, or fails a rule;"
        " `details` lists each field and problem.",
        "Fix the fields named in `details`; nothing was changed.",
    ),
    "idempotency_key_reused": ErrorCode(
        422,
        "The `Idempotency-Key` was used before with a different body.",
        "Use a new key for a different request.",
    ),
    "template_invalid": ErrorCode(
        422,
        "A template does not compile, breaks the sandbox, or exceeds its time or size"
        " limits when rendered.",
        "Fix the template (the message names the part and the problem).",
    ),
    "invalid_json_value": ErrorCode(
        422,
        "A JSON value beyond the limits on JSON fields (nesting deeper than"
        " `CLARION_MAX_JSON_DEPTH`, more than 10,000 values, an integer outside int64, a"
        " non-finite number, NUL in a string); `details` names its path.",
        "Change the value named in `details` (store big numbers as strings).",
    ),
    "rate_limited": ErrorCode(
        429,
        "Over the API key's request rate (or a channel's send rate).",
        "Wait `Retry-After` seconds, then retry; ask for a higher limit if it recurs.",
    ),
    "too_many_live_connections": ErrorCode(
        429,
        "The user already holds `CLARION_WS_MAX_PER_USER` live connections (WebSocket and"
        " SSE) on this node; a WebSocket beyond it is closed with 4009.",
        "Close connections the user no longer needs (one per tab or device is enough);"
        " retry after `Retry-After`.",
    ),
    "headers_too_large": ErrorCode(
        431,
        "The request line and headers are over `CLARION_MAX_HEADER_BYTES`; the connection"
        " is closed.",
        "Send smaller headers (large cookies or tokens are the usual cause).",
    ),
    "internal": ErrorCode(
        500,
        "A defect in Clarion; it is logged with its traceback.",
        "Retry once; if it persists, report it with the time and the request.",
    ),
    "storage_unavailable": ErrorCode(
        503,
        "The database cannot be reached; nothing of this request was stored.",
        "Retry after `Retry-After` seconds (with the same `Idempotency-Key` for sends).",
    ),
    "dependency_unavailable": ErrorCode(
        503,
        "A service Clarion needs for this request (and has no fallback for) is down.",
        "Retry after `Retry-After` seconds.",
    ),
    "too_many_connections": ErrorCode(
        503,
        "The process holds `CLARION_MAX_CONNECTIONS` open connections; this one is"
        " answered and closed.",
        "Retry shortly, ideally on another node; raise the limit if the machine has room.",
    ),
    "http_error": ErrorCode(
        0,  # the status varies: docs show it as 4xx
        "Another HTTP-level refusal, named by the status (for example 431 for oversized headers).",
        "Read the status and the message; fix the request.",
    ),
}


def doc_link(code: str) -> str:
    """Where a code is explained: the errors page of the server that answered."""
    return f"/docs/errors#{code}"
