"""``/demo``: the widget working against this server in a minute, for a newcomer.

A demo user (``demo``), a page with the bell, the center (a popover of the bell), the
toasts and the preferences, and a form that sends one notification of each template kind
to that user through the same sending service as ``POST /api/v1/notifications``. On by
default only with the embedded SQLite database (``CLARION_DEMO``): the page hands a
token for the demo user to anyone who can reach it."""

from __future__ import annotations

import itertools
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from clarion.domain.send_command import SendCommand
from clarion.domain.types import Priority, TemplateKind
from clarion.errors import ValidationFailed
from clarion.services.container import Services
from clarion.web.assets import StaticFiles
from clarion.web.html import page

DEMO_USER = "demo"
TOKEN_TTL = 3600
ACTORS = ("Ana", "Bo", "Chen", "Dara", "Eli", "Femi")
LANGS = {"en": "English", "pt": "Português", "es": "Español", "de": "Deutsch", "fr": "Français"}


def sample(kind: TemplateKind, n: int, static: StaticFiles) -> dict[str, Any]:
    """The demo's notification of one kind (the n-th sent, for who did it)."""
    actor = ACTORS[n % len(ACTORS)]
    photo = static.by_name["clarion-demo-photo.svg"].path
    avatar = static.by_name["clarion-demo-avatar.svg"].path
    if kind is TemplateKind.SIMPLE:
        return {
            "type": "follow",
            "title": f"{actor} followed you",
            "message": "Say hi!",
            "group_key": "demo-follows",
            "data": {"actor": actor},
        }
    if kind is TemplateKind.RICH_MEDIA:
        return {
            "type": "photo",
            "title": f"{actor} posted a photo",
            "message": "Sunset at the beach",
            "media": {"image": photo, "avatar": avatar},
        }
    if kind is TemplateKind.INTERACTIVE:
        return {
            "type": "invite",
            "title": f"{actor} invited you to Design",
            "message": "Join the team?",
            "actions": [
                {"id": "accept", "label": "Accept", "action": "invite.accept", "style": "primary"},
                {"id": "decline", "label": "Decline", "action": "invite.decline"},
            ],
        }
    if kind is TemplateKind.CARD:
        return {
            "type": "invoice",
            "title": "Invoice paid",
            "content": {
                "header": "ACME Inc.",
                "fields": [
                    {"label": "Amount", "value": "€42.50"},
                    {"label": "Invoice", "value": f"2026-{n:04d}"},
                ],
                "footer": "Thank you!",
            },
        }
    if kind is TemplateKind.LIST:
        return {
            "type": "tasks",
            "title": "3 new tasks",
            "message": "Assigned to you today",
            "content": {
                "items": [
                    {"title": "Fix login", "subtitle": "Due Friday"},
                    {"title": "Review PR #12"},
                    {"title": "Plan sprint"},
                ]
            },
        }
    return {
        "type": "order",
        "title": f"Order #{1000 + n}",
        "message": "On its way",
        "content": {
            "entries": [
                {"at": "2026-05-01T12:00:00Z", "title": "Ordered"},
                {
                    "at": "2026-05-02T08:00:00Z",
                    "title": "Shipped",
                    "description": "Tracking: AB123",
                },
            ]
        },
    }


class Demo:
    def __init__(self, static: StaticFiles) -> None:
        self.static = static
        self._sent = itertools.count(1)

    async def page(self, request: Request) -> HTMLResponse:
        services: Services = request.app.state.services
        token, _ = services.auth.mint_user_token(DEMO_USER, TOKEN_TTL)
        lang = request.query_params.get("lang", "en")
        lang = lang if lang in LANGS else "en"
        rtl = request.query_params.get("dir") == "rtl"
        config = {"token": token, "locale": lang}
        buttons = "".join(
            f'<button type="submit" name="kind" value="{k}">{k}</button>' for k in TemplateKind
        )
        langs = " · ".join(f'<a href="?lang={code}">{name}</a>' for code, name in LANGS.items())
        body = f"""
<header class="top"><strong>Clarion demo</strong>
 <span class="who">signed in as <code>{DEMO_USER}</code></span>
 <clarion-bell></clarion-bell></header>
<main>
 <section><h1>Send yourself a notification</h1>
  <p>Each button sends one notification of that template kind to the demo user through
  Clarion's sending service; the bell's badge and the center update live. Open this page in
  a second tab: both show the same counts over one connection.</p>
  <form id="send"><label>Priority <select name="priority"><option>normal</option>
   <option>high</option><option>urgent</option><option>low</option></select></label>
   <div class="kinds">{buttons}</div></form>
  <p id="sent" role="status"></p>
  <p>Language: {langs} · <a href="?lang={lang}&amp;dir={"ltr" if rtl else "rtl"}">
   {"left to right" if rtl else "right to left"}</a> ·
   <a href="/widget">embedding the widget</a></p>
 </section>
 <section><clarion-preferences></clarion-preferences></section>
</main>
<clarion-toast></clarion-toast>"""
        script = f"""
import {{ configure }} from "{self.static.widget.path}";
const config = {json.dumps(config)};
configure({{ ...config, getToken: async () => {{
  const res = await fetch("/demo/token", {{ method: "POST" }});
  return (await res.json()).token;
}} }});
document.getElementById("send").addEventListener("submit", async (e) => {{
  e.preventDefault();
  const res = await fetch("/demo/send", {{ method: "POST",
    headers: {{ "Content-Type": "application/json" }},
    body: JSON.stringify({{ kind: e.submitter.value, priority: e.target.priority.value }}) }});
  document.getElementById("sent").textContent = res.ok ? "Sent: " + e.submitter.value : "Failed";
}});"""
        return page(
            "Clarion demo", body, script, lang=lang, rtl=rtl, preload=self.static.widget.path
        )

    async def token(self, request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        token, ttl = services.auth.mint_user_token(DEMO_USER, TOKEN_TTL)
        return JSONResponse(
            {"token": token, "user_id": DEMO_USER, "expires_in": ttl},
            headers={"Cache-Control": "no-store"},
        )

    async def send(self, request: Request) -> JSONResponse:
        services: Services = request.app.state.services
        try:
            body = await request.json()
            kind = TemplateKind(body.get("kind"))
            priority = Priority(body.get("priority", "normal"))
        except (ValueError, AttributeError) as exc:
            raise ValidationFailed(
                "send {kind, priority}: kind one of the six template kinds",
                [{"field": "kind", "problem": "must be a template kind"}],
            ) from exc
        doc = sample(kind, next(self._sent), self.static)
        cmd = SendCommand(user_ids=(DEMO_USER,), template=kind, priority=priority, **doc)
        accepted = await services.sending.send(cmd)
        return JSONResponse(accepted.body, status_code=accepted.status_code)
