"""One module per resource; ``ERROR_RESPONSES`` documents the error shape on every route."""

from __future__ import annotations

from typing import Any

from clarion.api.schemas import ErrorBody

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed request (bad JSON, bad cursor)",
        401: "Missing, invalid or expired credentials",
        403: "The credentials may not do this",
        404: "No such object (or not visible to these credentials)",
        409: "Conflict (e.g. a concurrent request with the same Idempotency-Key)",
        413: "Request body too large",
        422: "Invalid request",
        429: "Rate limited",
        503: "A dependency (database) is unavailable",
    }.items()
}
