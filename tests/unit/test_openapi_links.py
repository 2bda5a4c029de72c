"""The OpenAPI links of api/openapi_links.py name operations and parameters that exist: a
renamed route or parameter fails here, not in a client following a dead link."""

from __future__ import annotations

from typing import Any

from clarion.api.app import create_app
from clarion.api.openapi_links import LINKS
from clarion.config import Settings


def _document() -> dict[str, Any]:
    return create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


def test_every_link_names_a_real_operation_and_its_parameters() -> None:
    doc = _document()
    by_id = {
        op["operationId"]: op
        for item in doc["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    seen = 0
    for (method, path, status), links in LINKS.items():
        published = doc["paths"][path][method.lower()]["responses"][status]["links"]
        for name in links:
            link = published[name]
            target = by_id[link["operationId"]]
            declared = {f"{p['in']}.{p['name']}" for p in target.get("parameters", [])}
            for parameter in link.get("parameters", {}):
                assert parameter in declared, (name, parameter, sorted(declared))
            if "requestBody" in link:
                assert "requestBody" in target, name
            seen += 1
    assert seen >= 10


def test_the_document_is_built_once() -> None:
    """Links are added to the cached document once, not again on every request."""
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    first = app.openapi()
    assert app.openapi() is first
    links = first["paths"]["/api/v1/notifications"]["post"]["responses"]["202"]["links"]
    assert list(links) == list(LINKS[("POST", "/api/v1/notifications", "202")])
