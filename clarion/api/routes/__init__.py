"""One module per resource; ``ERROR_RESPONSES`` documents the error shape on every route."""

from __future__ import annotations

from typing import Any

from clarion.api.schemas import ErrorBody
from clarion.domain import cursors

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed request (bad JSON, bad cursor, a control character in a parameter)",
        401: "Missing, invalid or expired credentials",
        403: "The credentials may not do this",
        404: "No such object (or not visible to these credentials)",
        409: "Conflict (e.g. a concurrent request with the same Idempotency-Key)",
        413: "Request body too large",
        422: "Invalid request",
        429: "Rate limited",
        431: "The request line and headers are too large",
        503: "A dependency (database) is unavailable",
    }.items()
}


def paged(page: dict[str, Any], kind: cursors.Kind) -> dict[str, Any]:
    """A service's page with its ``next_cursor`` (the last row's key) issued as the one
    cursor format (domain/cursors): what the list route decodes when it comes back."""
    after = page.get("next_cursor")
    if after is not None:
        page = {**page, "next_cursor": cursors.encode(kind, after)}
    return page
