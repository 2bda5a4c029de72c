"""``/docs``: Swagger UI served from Clarion itself.

FastAPI's default page loads Swagger UI from a CDN, so on a machine without internet (a
self-hosted deployment behind a firewall, a laptop on a plane) ``/docs`` was blank. The
assets come from the ``swagger-ui-py`` distribution instead (a Swagger UI 5 build, which
reads the OpenAPI 3.1 document FastAPI produces), served at ``/docs/assets/``; nothing is
fetched from the internet. ReDoc, which has no offline build on PyPI, is not served.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from clarion.errors import CODES

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
ERRORS_PATH = "/docs/errors"


def swagger_assets() -> Path:
    """The directory of Swagger UI's built files, found without importing the package
    (its module imports YAML and Jinja machinery Clarion does not need)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py distribution is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets (the app is built with ``docs_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_assets()), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
        )

    app.add_api_route(DOCS_PATH, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(ERRORS_PATH, errors_page, methods=["GET"], include_in_schema=False)


def _inline(text: str) -> str:
    """The table's Markdown is only backticks: render them as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


async def errors_page() -> HTMLResponse:
    """Every error code, one anchor each: the target of each error body's ``doc`` link."""
    rows = "".join(
        f'<tr id="{code}"><td>{e.status or "4xx"}</td><td><code>{code}</code></td>'
        f"<td>{_inline(e.meaning)}</td><td>{_inline(e.action)}</td></tr>"
        for code, e in CODES.items()
    )
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Clarion errors</title>"
        "<style>body{font:15px system-ui,sans-serif;margin:2em}td,th{padding:.4em .6em;"
        "border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
        "tr:target{background:#ffd}</style><h1>Clarion error codes</h1>"
        '<p>Every error body is <code>{"error": {"code", "message", "details",'
        ' "doc"}}</code>; <code>doc</code> links here.</p><table><tr><th>status</th>'
        f"<th>code</th><th>meaning</th><th>what to do</th></tr>{rows}</table>"
    )
