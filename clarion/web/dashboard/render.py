"""Jinja2 pages in the one layout, sent with a strict Content-Security-Policy: this
server's files only, no inline script or style, no other origin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from clarion.web.dashboard.charts import line_chart

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
NAV = (
    ("overview", "/dashboard", "Overview"),
    ("notifications", "/dashboard/notifications", "Notifications"),
    ("dead", "/dashboard/dead-letters", "Dead letters"),
    ("experiments", "/dashboard/experiments", "Experiments"),
    ("templates", "/dashboard/templates", "Templates"),
    ("users", "/dashboard/users", "Users"),
    ("system", "/dashboard/system", "System"),
    ("audit", "/dashboard/audit", "Audit log"),
)

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.globals["nav"] = NAV
env.globals["line_chart"] = line_chart


def render(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    """A page; ``context`` may hold ``session`` (the signed-in one) and ``active``."""
    body = env.get_template(template).render(request=request, **context)
    return HTMLResponse(body, status_code=http_status, headers=HEADERS)
