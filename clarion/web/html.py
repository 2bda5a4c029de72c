"""The HTML shell of Clarion's own pages, with a Content-Security-Policy that lets them
load nothing but this server's files and the one inline script they carry (by nonce)."""

from __future__ import annotations

import html
import secrets

from starlette.responses import HTMLResponse

STYLE = """
:root{color-scheme:light dark;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif}
body{margin:0;background:Canvas;color:CanvasText}
.top{display:flex;align-items:center;gap:1em;padding:.5em 1.2em;border-bottom:1px solid #8884}
.top strong{flex:1}.who{opacity:.8;font-size:.9em}
main{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,1fr);gap:2em;padding:1.2em;
max-width:1100px}
@media (max-width:720px){main{grid-template-columns:1fr}}
h1{font-size:1.3em}.kinds{display:flex;flex-wrap:wrap;gap:.5em;margin:.8em 0}
.kinds button{font:inherit;padding:.45em .9em;border-radius:6px;border:1px solid #8888;
cursor:pointer}
pre{background:#8881;padding:1em;overflow:auto;border-radius:6px}
"""


def page(
    title: str,
    body: str,
    script: str = "",
    *,
    lang: str = "en",
    rtl: bool = False,
    preload: str = "",
) -> HTMLResponse:
    """A whole page: ``body`` and ``script`` are trusted markup written by Clarion (every
    value from a request is escaped by the caller or is JSON of our own). ``preload``: a
    module (a path of ours) fetched from the head, before the body is parsed."""
    nonce = secrets.token_urlsafe(16)
    # No "</" may end the script early: JSON values escape it.
    script = script.replace("</", "<\\/")
    doc = (
        f'<!doctype html><html lang="{html.escape(lang)}" dir="{"rtl" if rtl else "ltr"}">'
        f'<head><meta charset="utf-8"><meta name="viewport" content="width=device-width,'
        f'initial-scale=1"><link rel="icon" href="data:,">'
        + (f'<link rel="modulepreload" href="{html.escape(preload)}">' if preload else "")
        + f"<title>{html.escape(title)}</title>"
        f'<style nonce="{nonce}">{STYLE}'
        f"</style></head><body>{body}"
        + (f'<script type="module" nonce="{nonce}">{script}</script>' if script else "")
        + "</body></html>"
    )
    csp = (
        "default-src 'none'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' http: https: data:; media-src 'self' http: https:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return HTMLResponse(
        doc,
        headers={
            "Content-Security-Policy": csp,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
