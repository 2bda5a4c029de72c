"""Clarion's own pages on a real ``clarion serve``: the widget module at a content-hashed
URL cached for good, the redirect to it, the size budget, and the demo's switch."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest

from clarion.config import Settings
from tests.e2e.conftest import Server, clarion_env, start_server

pytestmark = pytest.mark.e2e


def widget_path(server: Server) -> str:
    r = httpx.get(f"{server.url}/static/clarion-widget.js")
    assert r.status_code == 307
    assert r.headers["cache-control"] == "no-cache"
    path = r.headers["location"]
    assert re.fullmatch(r"/static/clarion-widget\.[0-9a-f]{16}\.js", path), path
    return str(path)


def test_the_module_is_served_versioned_immutable_and_small(served: Server) -> None:
    path = widget_path(served)
    r = httpx.get(served.url + path, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["content-encoding"] == "gzip"
    gzipped = int(r.headers["content-length"])
    assert gzipped <= 30 * 1024, f"the module is {gzipped} bytes gzipped (budget 30 KB)"
    source = (Path(__file__).parents[2] / "clarion/web/static/clarion-widget.js").read_bytes()
    assert r.content == source  # httpx decoded it
    assert gzip.decompress(gzip.compress(source)) == source
    # Conditional request: the same version is not sent again.
    again = httpx.get(served.url + path, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    # Uncompressed for clients that do not take gzip.
    plain = httpx.get(served.url + path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == source
    # The embedding page names the same URL; an unknown file is the usual 404.
    assert path in httpx.get(f"{served.url}/widget").text
    missing = httpx.get(f"{served.url}/static/clarion-widget.0000000000000000.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_the_demo_is_on_with_sqlite_and_loads_only_local_files(served: Server) -> None:
    r = httpx.get(f"{served.url}/demo")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert widget_path(served) in r.text
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text)  # nothing from elsewhere
    sent = httpx.post(f"{served.url}/demo/send", json={"kind": "card", "priority": "high"})
    assert sent.status_code == 202, sent.text
    token = httpx.post(f"{served.url}/demo/token").json()
    assert token["user_id"] == "demo"
    inbox = httpx.get(
        f"{served.url}/api/v1/notifications",
        headers={"Authorization": f"Bearer {token['token']}"},
    ).json()
    assert [(n["template"], n["priority"]) for n in inbox["items"]] == [("card", "high")]
    bad = httpx.post(f"{served.url}/demo/send", json={"kind": "poster"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_failed"


def test_the_demo_can_be_turned_off(tmp_path: Path) -> None:
    server = start_server(tmp_path, clarion_env(tmp_path, CLARION_DEMO="false"))
    try:
        for method, path in (("GET", "/demo"), ("POST", "/demo/token"), ("POST", "/demo/send")):
            assert httpx.request(method, server.url + path).status_code == 404, path
        assert httpx.get(f"{server.url}/widget").status_code == 200
        assert "/demo" not in httpx.get(f"{server.url}/").text
    finally:
        server.stop()


def test_the_demo_defaults_to_on_only_with_sqlite() -> None:
    assert Settings(_env_file=None).demo_enabled()  # type: ignore[call-arg]
    pg = Settings(_env_file=None, database_url="postgresql+asyncpg://u@h/db")  # type: ignore[call-arg]
    assert not pg.demo_enabled()
    assert Settings(
        _env_file=None, database_url="postgresql+asyncpg://u@h/db", demo=True
    ).demo_enabled()  # type: ignore[call-arg]
