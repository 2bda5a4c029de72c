"""``/docs``: Swagger UI served from Clarion itself.

FastAPI's default page loads Swagger UI from a CDN, so on a machine without internet (a
self-hosted deployment behind a firewall, a laptop on a plane) ``/docs`` was blank. The
assets come from the ``swagger-ui-py`` distribution instead (a Swagger UI 5 build, which
reads the OpenAPI 3.1 document FastAPI produces), served at ``/docs/assets/``; nothing is
fetched from the internet. ReDoc, which has no offline build on PyPI, is not served.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"


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
