"""One exception class per error family, each carrying what the server said.

The server answers every refusal with ``{"error": {"code", "message", "details", "doc"}}``
(docs/errors.md). :func:`error_from_response` picks the class by the ``code`` first (the
stable part), then by the HTTP status, so a code the client does not know yet still
lands in its family."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ClarionError(Exception):
    """Everything this client raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
        request_id: str | None = None,
        doc: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details
        self.request_id = request_id
        self.doc = doc
        self.retry_after = retry_after

    def __str__(self) -> str:
        head = f"{self.status} {self.code}: " if self.code else ""
        tail = f" (request {self.request_id})" if self.request_id else ""
        return f"{head}{self.message}{tail}"


class APIConnectionError(ClarionError):
    """No answer: the server could not be reached or the connection broke."""


class APITimeoutError(APIConnectionError):
    """No answer within the timeout."""


class APIStatusError(ClarionError):
    """The server answered with an error status."""


class BadRequestError(APIStatusError):
    """400: the request cannot be read (``bad_request``, ``malformed_json``, ``bad_cursor``,
    ``invalid_parameter``), and the other 4xx refusals of its form (405, 406, 413, 415, 431)."""


class AuthenticationError(APIStatusError):
    """401 ``unauthenticated``: no credentials, or unknown, revoked or forged ones."""


class TokenExpiredError(AuthenticationError):
    """401 ``token_expired``: mint a new user token."""


class PermissionDeniedError(APIStatusError):
    """403 ``forbidden``: valid credentials that may not do this."""


class InsufficientScopeError(PermissionDeniedError):
    """403 ``insufficient_scope``: ``details`` names the scope needed and the key's scopes."""


class NotFoundError(APIStatusError):
    """404 ``not_found``."""


class ConflictError(APIStatusError):
    """409 ``conflict``: the change conflicts with what exists."""


class IdempotencyInProgressError(ConflictError):
    """409 ``idempotency_in_progress``, after the retries ran out."""


class ValidationError(APIStatusError):
    """422 ``validation_failed``, ``invalid_json_value``: ``details`` lists each field."""


class IdempotencyKeyReusedError(ValidationError):
    """422 ``idempotency_key_reused``: the key was used before with another body."""


class TemplateInvalidError(ValidationError):
    """422 ``template_invalid``."""


class RateLimitError(APIStatusError):
    """429 ``rate_limited`` or ``too_many_live_connections``, after the retries ran out."""


class ServerError(APIStatusError):
    """5xx ``internal``, after the retries ran out."""


class ServiceUnavailableError(ServerError):
    """503 ``storage_unavailable``, ``dependency_unavailable``, ``too_many_connections``."""


class LiveConnectionError(ClarionError):
    """The live stream was closed for a reason a reconnect cannot cure (close codes 4001,
    4003, 4029; 4002 when no new token could be had). ``code`` is the close code."""


_BY_CODE: Mapping[str, type[APIStatusError]] = {
    "token_expired": TokenExpiredError,
    "insufficient_scope": InsufficientScopeError,
    "idempotency_in_progress": IdempotencyInProgressError,
    "idempotency_key_reused": IdempotencyKeyReusedError,
    "template_invalid": TemplateInvalidError,
    "invalid_json_value": ValidationError,
    "validation_failed": ValidationError,
    "storage_unavailable": ServiceUnavailableError,
    "dependency_unavailable": ServiceUnavailableError,
    "too_many_connections": ServiceUnavailableError,
}

_BY_STATUS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_body(payload: Any) -> tuple[str | None, str | None, Any, str | None]:
    """(code, message, details, doc) of an error answer; Nones when it has another shape."""
    if isinstance(payload, Mapping) and isinstance(payload.get("error"), Mapping):
        err = payload["error"]
        code = err.get("code")
        message = err.get("message")
        return (
            code if isinstance(code, str) else None,
            message if isinstance(message, str) else None,
            err.get("details"),
            err.get("doc") if isinstance(err.get("doc"), str) else None,
        )
    return None, None, None, None


def error_from_response(
    status: int,
    payload: Any,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> APIStatusError:
    code, message, details, doc = error_body(payload)
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else BadRequestError
    return cls(
        message or f"HTTP {status}",
        code=code,
        status=status,
        details=details,
        request_id=request_id,
        doc=doc,
        retry_after=retry_after,
    )
