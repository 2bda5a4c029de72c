"""The audit log's page and its export (NDJSON or CSV, like the analytics events)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from clarion.errors import ValidationFailed
from clarion.services.analytics import parse_time
from clarion.services.dashboard import AUDIT_COLUMNS, DashSession
from clarion.web.dashboard.notifications import _int
from clarion.web.dashboard.render import render
from clarion.web.dashboard.session import services_of


def _cell(value: object, column: str) -> object:
    """A CSV cell; text a spreadsheet would run as a formula gets a leading quote."""
    text = json.dumps(value) if column in ("before", "after") else value
    if isinstance(text, str) and text[:1] in ("=", "+", "-", "@"):
        return "'" + text
    return text


async def audit(request: Request, session: DashSession) -> Response:
    q = request.query_params
    before = _int(q.get("before"), "before")
    rows = await services_of(request).dashboard.audit_page(
        before_id=before, limit=100, action=q.get("action") or None
    )
    return render(
        request,
        "audit.html",
        session=session,
        active="audit",
        rows=rows,
        action=q.get("action", ""),
        next_before=rows[-1]["id"] if len(rows) == 100 else None,
    )


async def export(request: Request, session: DashSession) -> Response:
    q = request.query_params
    fmt = q.get("format", "ndjson")
    if fmt not in ("ndjson", "csv"):
        raise ValidationFailed("format is ndjson or csv", [{"field": "format"}])
    start, end = parse_time(q.get("from"), "from"), parse_time(q.get("to"), "to")
    rows = services_of(request).dashboard.audit_export(start, end, q.get("action") or None)

    async def ndjson() -> AsyncIterator[bytes]:
        async for row in rows:
            yield json.dumps(row).encode() + b"\n"

    async def as_csv() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(AUDIT_COLUMNS)
        async for row in rows:
            writer.writerow([_cell(row[c], c) for c in AUDIT_COLUMNS])
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
        yield out.getvalue().encode()

    media = "application/x-ndjson" if fmt == "ndjson" else "text/csv"
    return StreamingResponse(
        ndjson() if fmt == "ndjson" else as_csv(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit.{fmt}"'},
    )
