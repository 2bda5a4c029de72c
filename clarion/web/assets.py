"""The widget's files, served from Clarion itself: nothing on its pages comes from the
internet. The module is served at a URL carrying a hash of its content
(``/static/clarion-widget.<hash>.js``), so browsers and proxies may keep it for a year
(``Cache-Control: immutable``); a new release is a new URL. ``/static/clarion-widget.js``
redirects to the current one, uncached, for pages that cannot know the hash."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from clarion.errors import NotFound

WIDGET_FILE = "clarion-widget.js"
IMMUTABLE = "public, max-age=31536000, immutable"
# Public files: a page on any origin may import the module (module scripts load in CORS
# mode); what it may then call is up to CLARION_CORS_ORIGINS.
PUBLIC = {"Access-Control-Allow-Origin": "*"}
TYPES = {".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Asset:
    """One static file, read once: its bytes, gzipped bytes and content hash."""

    name: str
    body: bytes
    gzipped: bytes
    digest: str

    @classmethod
    def load(cls, name: str) -> Asset:
        body = resources.files("clarion.web").joinpath("static", name).read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:16]
        return cls(name, body, gzip.compress(body, 9, mtime=0), digest)

    @property
    def versioned_name(self) -> str:
        stem, dot, ext = self.name.rpartition(".")
        return f"{stem}.{self.digest}{dot}{ext}"

    @property
    def path(self) -> str:
        return f"/static/{self.versioned_name}"

    def response(self, request: Request) -> Response:
        """The file, gzipped when the client takes it, cached for good (the URL changes
        with the content); ``304`` when the client already has this version."""
        etag = f'"{self.digest}"'
        headers = {"Cache-Control": IMMUTABLE, "ETag": etag, "Vary": "Accept-Encoding", **PUBLIC}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        media = TYPES["." + self.name.rpartition(".")[2]]
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(self.gzipped, media_type=media, headers=headers)
        return Response(self.body, media_type=media, headers=headers)


class StaticFiles:
    """The widget module and the demo's images, by versioned name."""

    def __init__(self) -> None:
        names = (WIDGET_FILE, "clarion-demo-photo.svg", "clarion-demo-avatar.svg")
        self.assets = {a.versioned_name: a for a in map(Asset.load, names)}
        self.by_name = {a.name: a for a in self.assets.values()}

    @property
    def widget(self) -> Asset:
        return self.by_name[WIDGET_FILE]

    async def serve(self, request: Request) -> Response:
        name = request.path_params["name"]
        asset = self.assets.get(name)
        if asset is not None:
            return asset.response(request)
        current = self.by_name.get(name)
        if current is not None:  # the unversioned name: where the current version is
            headers = {"Cache-Control": "no-cache", **PUBLIC}
            return RedirectResponse(current.path, 307, headers=headers)
        raise NotFound(f"no static file {name!r}")
