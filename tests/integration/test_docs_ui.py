"""``/docs`` works without internet: the page and everything it loads come from Clarion."""

from __future__ import annotations

import re

import httpx


async def test_docs_page_loads_only_local_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    refs += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
    assert refs, page.text
    for ref in refs:
        # Nothing from another host: a CDN link leaves the page blank offline.
        assert not re.match(r"^(https?:)?//", ref), ref
        asset = await client.get(ref)
        assert asset.status_code == 200, ref
    assert "/docs/assets/swagger-ui-bundle.js" in refs
    assert "/openapi.json" in refs


async def test_redoc_is_not_served_with_a_cdn_page(client: httpx.AsyncClient) -> None:
    assert (await client.get("/redoc")).status_code == 404


async def test_an_error_body_links_its_entry_on_the_errors_page(client: httpx.AsyncClient) -> None:
    from clarion.errors import CODES

    error = (await client.get("/api/v1/notifications")).json()["error"]  # no credentials
    assert error["code"] == "unauthenticated"
    path, anchor = error["doc"].split("#")
    page = await client.get(path)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    ids = set(re.findall(r'<tr id="([a-z_]+)">', page.text))
    assert anchor in ids
    assert ids == set(CODES)
    assert not re.search(r"""(?:src|href)=["'](https?:)?//""", page.text)  # nothing remote
