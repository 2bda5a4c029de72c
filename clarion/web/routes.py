"""Clarion's own pages: the widget module (``/static/``), how to embed it (``/widget``),
the demo (``/demo``, docs/widget.md), and an index at ``/``. Installed on the app by the
composition root (clarion/runtime.py); none of these routes is part of the API."""

from __future__ import annotations

import html

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse

from clarion.config import Settings
from clarion.web.assets import StaticFiles
from clarion.web.demo import Demo
from clarion.web.html import page

WEB_PATHS = ("/", "/widget", "/static/{name}", "/demo", "/demo/token", "/demo/send")


def install(app: FastAPI, settings: Settings) -> StaticFiles:
    static = StaticFiles()
    demo_on = settings.demo_enabled()
    widget = static.widget.path

    async def index(request: Request) -> HTMLResponse:
        demo = '<li><a href="/demo">the demo</a>: the widget live, in a minute</li>'
        return page(
            "Clarion",
            "<main><section><h1>Clarion</h1><ul>"
            + (demo if demo_on else "")
            + '<li><a href="/widget">the in-app widget</a>: a bell and a notification center '
            'for any web page</li><li><a href="/docs">the API</a> (OpenAPI)</li>'
            "</ul></section></main>",
        )

    async def embed(request: Request) -> HTMLResponse:
        snippet = html.escape(
            f'<link rel="modulepreload" href="{widget}">\n'
            f'<script type="module">\n  import {{ configure }} from "{widget}";\n'
            "  configure({ token: USER_TOKEN, getToken: fetchNewToken });\n"
            "</script>\n<clarion-bell></clarion-bell>\n<clarion-toast></clarion-toast>"
        )
        return page(
            "Clarion widget",
            "<main><section><h1>The Clarion widget</h1><p>The current module: "
            f'<a href="{widget}"><code>{widget}</code></a> (about '
            f"{len(static.widget.gzipped) // 1024 + 1} KB gzipped, cached for good: the URL "
            f"changes with each release).</p><pre>{snippet}</pre><p>Tokens, theming, "
            "translations and events: docs/widget.md in the repository.</p></section></main>",
        )

    app.add_route("/", index, methods=["GET"], include_in_schema=False)
    app.add_route("/widget", embed, methods=["GET"], include_in_schema=False)
    app.add_route("/static/{name}", static.serve, methods=["GET"], include_in_schema=False)
    if demo_on:
        demo = Demo(static)
        app.add_route("/demo", demo.page, methods=["GET"], include_in_schema=False)
        app.add_route("/demo/token", demo.token, methods=["POST"], include_in_schema=False)
        app.add_route("/demo/send", demo.send, methods=["POST"], include_in_schema=False)
    return static
