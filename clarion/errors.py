"""Clarion's one error tree.

Every error a caller can see has a stable ``code`` (documented in docs/errors.md) and an
HTTP status; ``api/errors.py`` is the single place that turns them into responses of the
shape ``{"error": {"code", "message", "details"}}``.

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
    │   └── IdempotencyInProgress (409 idempotency_in_progress)
    ├── RateLimited (429 rate_limited)
    ├── StorageError (503 storage_unavailable)  driver failures, wrapped ``from`` their cause
    └── DependencyError (503 dependency_unavailable)  Redis, SMTP, ... when no fallback exists
"""

from __future__ import annotations

from typing import Any


class ClarionError(Exception):
    code = "internal"
    status = 500

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


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


class NotFound(ClarionError):
    code = "not_found"
    status = 404


class Conflict(ClarionError):
    code = "conflict"
    status = 409


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"


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
        super().__init__(message, details)
        self.retry_after = retry_after
        self.headers = headers or {}


class StorageError(ClarionError):
    code = "storage_unavailable"
    status = 503


class DependencyError(ClarionError):
    code = "dependency_unavailable"
    status = 503


class TokenExpired(Unauthenticated):
    code = "token_expired"
