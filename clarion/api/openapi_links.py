"""OpenAPI links: which value of one operation's answer the next operation takes (a user's
id from their profile, a notification's id from the send), so that generated clients and
the stateful conformance test (tests/e2e/test_schemathesis.py) can follow the API's main
flow: create a user, send to them, read what was sent, list their inbox.

Why written here and not left to tools that infer links: nothing can infer that the send's
``ids`` are notification ids, or that a profile's ``user_id`` is whom to send to; without
these the stateful test never reaches a notification it created.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI

N = "/api/v1/notifications"
NOTE = f"{N}/{{notification_id}}"
USER = "/api/v1/users/{user_id}"

# (method, path, status) -> link name -> (method, path, parameters, requestBody or None)
Link = tuple[str, str, Mapping[str, str], Mapping[str, str] | None]
_OWNER = "$response.body#/user_id"
_OWNERS_INBOX: dict[str, Link] = {
    "InboxOfOwner": ("GET", N, {"query.user_id": _OWNER}, None),
    "UnreadCountOfOwner": ("GET", f"{N}/unread-count", {"query.user_id": _OWNER}, None),
}
LINKS: Mapping[tuple[str, str, str], Mapping[str, Link]] = {
    ("PUT", USER, "200"): {
        "SendToUser": ("POST", N, {}, {"user_id": _OWNER}),
        "MintTokenOfUser": ("POST", f"{USER}/token", {"path.user_id": _OWNER}, None),
        "PreferencesOfUser": (
            "GET",
            f"{N}/preferences/{{user_id}}",
            {"path.user_id": _OWNER},
            None,
        ),
        **_OWNERS_INBOX,
    },
    ("POST", N, "202"): {
        "GetSent": ("GET", NOTE, {"path.notification_id": "$response.body#/ids/0"}, None),
        "MarkSentRead": (
            "POST",
            f"{NOTE}/read",
            {"path.notification_id": "$response.body#/ids/0"},
            None,
        ),
        "DeliveriesOfSent": (
            "GET",
            f"{NOTE}/deliveries",
            {"path.notification_id": "$response.body#/ids/0"},
            None,
        ),
        "InboxOfRecipient": ("GET", N, {"query.user_id": "$request.body#/user_id"}, None),
    },
    ("GET", NOTE, "200"): _OWNERS_INBOX,
    ("POST", f"{NOTE}/read", "200"): _OWNERS_INBOX,
    ("GET", N, "200"): {
        "GetListed": ("GET", NOTE, {"path.notification_id": "$response.body#/items/0/id"}, None),
    },
}


def add_links(document: dict[str, Any]) -> dict[str, Any]:
    """Add :data:`LINKS` to an OpenAPI document (in place; returned for convenience).
    A link naming an operation the document lacks is a ``KeyError``: the tests of the
    published document fail rather than a client following a dead link."""
    paths = document["paths"]
    for (method, path, status), links in LINKS.items():
        response = paths[path][method.lower()]["responses"][status]
        for name, (to_method, to_path, parameters, body) in links.items():
            link: dict[str, Any] = {"operationId": paths[to_path][to_method.lower()]["operationId"]}
            if parameters:
                link["parameters"] = dict(parameters)
            if body is not None:
                link["requestBody"] = dict(body)
            response.setdefault("links", {})[name] = link
    return document


def install(app: FastAPI) -> None:
    """Serve the app's OpenAPI document with :data:`LINKS` in it."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = build()
        return add_links(document) if fresh else document

    app.openapi = openapi  # type: ignore[method-assign]
