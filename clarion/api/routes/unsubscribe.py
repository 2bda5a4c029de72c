"""``/api/v1/unsubscribe/{token}``: RFC 8058 one-click unsubscribe from email.

The token in the path is the authorisation (signed with the secret key); no cookie, no
header. ``POST`` opts the user out of that notification type's email, whatever its body
(mail clients send ``List-Unsubscribe=One-Click``). ``GET`` changes nothing: link scanners
and prefetchers follow GET links, so it only shows a page with a button that POSTs.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from clarion.api.deps import ServicesDep
from clarion.api.responses import Json
from clarion.api.routes import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/unsubscribe", tags=["unsubscribe"])

Token = Annotated[str, Path(min_length=10, max_length=1000, pattern=r"^[A-Za-z0-9_\-.]+$")]
# 400: a token with a control character (api/inputguard), refused before the route.
_ERRORS: dict[int | str, dict[str, Any]] = {s: ERROR_RESPONSES[s] for s in (400, 404, 422, 503)}


class Unsubscribed(BaseModel):
    unsubscribed: bool
    user_id: str
    type: str
    channel: str


@router.post("/{token}", response_model=Unsubscribed, responses=_ERRORS)
async def one_click_unsubscribe(token: Token, services: ServicesDep) -> Json:
    """Opt out (idempotent). No authentication: the signed token is the permission."""
    return Json(await services.deliveries.unsubscribe(token))


@router.get(
    "/{token}",
    # The page is HTML; errors stay JSON in the documented shape.
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}, **_ERRORS},
)
async def unsubscribe_page(token: Token, services: ServicesDep) -> HTMLResponse:
    """A confirmation page; changes nothing until its button POSTs."""
    info = services.deliveries.describe_unsubscribe(token)
    kind = html.escape(info["type"])
    channel = html.escape(info["channel"])
    action = html.escape(token, quote=True)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto;">
<h1>Unsubscribe</h1>
<p>Stop receiving <strong>{kind}</strong> notifications by {channel}?</p>
<form method="post" action="{action}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>
</body></html>"""
    return HTMLResponse(page)
