"""The authorization matrix: every operation the app routes (HTTP, the WebSocket and the
event stream; only :data:`NON_API_PATHS` aside) against every kind of credential, on one
real ``clarion serve``.

The operations come from the app itself (``routed_operations``), so a new route is probed
the day it is added: without a line in :data:`PROBES` (how to call it on user A's objects,
and what it answers when allowed) the test fails. Who may call it is not written here: the
expected answer of each credential is derived from the operation's rule in
``clarion/api/operations.py`` (:func:`expected`), which docs/api.md's table is checked
against. Objects are created for user A and probed with user B's token; every request
that must be refused runs between two snapshots of A's data (the export) and of the
shared configuration, which must be equal: a refused request changes nothing.
"""

from __future__ import annotations

import base64
import inspect
import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from clarion.api.app import create_app
from clarion.api.operations import NON_API_PATHS, OPERATIONS, Operation, routed_operations
from clarion.config import Settings
from clarion.domain.types import ApiScope
from clarion.services.auth import TOKEN_ISSUER
from clarion.services.deliveries import UnsubscribeSigner
from tests.e2e.conftest import Server, clarion_env, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

A, B = "owner-ana", "other-bo"  # distinctive: B's answers must never mention A
N = "/api/v1/notifications"
U = "/api/v1/users"
SECRET = "authz-matrix-secret-" + "s" * 40
BATCH_TYPE = "matrix.follow"
WEBHOOK_URL = "https://93.184.215.14/clarion"  # a public address: no DNS, never called

#: Every kind of credential, in the order probed.
CREDENTIALS = (
    "none",
    "malformed",
    "revoked_key",
    "expired_token",
    "foreign_signed_token",
    "alg_none_token",
    "other_user_token",
    "own_user_token",
    "send_key",
    "read_key",
    "admin_key",
)
KEY_SCOPES = {"send_key": ApiScope.SEND, "read_key": ApiScope.READ, "admin_key": ApiScope.ADMIN}
#: Authorization headers that are not a credential at all: each must be a 401.
MALFORMED = ("Basic b3duZXI6cHc=", "Bearer", "Bearer a.b.c", "Token abc", "bearer clk")
CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}
WS_CLOSE = {"unauthenticated": 4001, "token_expired": 4002, "forbidden": 4003}


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None


@dataclass(frozen=True)
class Probe:
    """How to call an operation on user A's objects, and its answer when allowed.

    ``build(world, fresh)``: the request; with ``fresh`` a destructive operation gets an
    object of its own (an allowed delete must find something to delete). ``other_user``:
    what user B's token gets on A's objects when user tokens may call the operation
    (``403`` when A is named, ``404`` when an object of A's is: its existence is not
    revealed; a stream opens B's own)."""

    build: Callable[..., Req]  # (world) or (world, fresh)
    ok: int
    other_user: int = 404

    def request(self, world: World, fresh: bool) -> Req:
        required = [
            p for p in inspect.signature(self.build).parameters.values() if p.default is p.empty
        ]
        return self.build(world, fresh) if len(required) == 2 else self.build(world)


# --- the objects the probes name -----------------------------------------------------------


class World:
    """The server, its credentials, and objects owned by user A (made with the admin
    key). Shared objects are made once; ``fresh=True`` makes a new one."""

    def __init__(self, server: Server, http: httpx.Client, db_path: Path) -> None:
        self.server = server
        self.http = http
        self.db_path = db_path
        self.keys: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self._shared: dict[str, Any] = {}
        self._count = 0

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys['admin_key']}"}
        r = self.http.request(method, path, headers=headers, **kw)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return None

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}-{self._count}"

    def _once(self, what: str, make: Callable[[], Any], fresh: bool) -> Any:
        if fresh:
            return make()
        if what not in self._shared:
            self._shared[what] = make()
        return self._shared[what]

    def send(self, user_id: str = A, **extra: Any) -> Any:
        body = {"user_id": user_id, "type": "follow", "title": "Bo followed you", **extra}
        return self.admin("POST", N, json=body)

    def notification(self, fresh: bool = False) -> int:
        def make() -> int:
            actions = [{"id": "like", "label": "Like", "action": "like"}]
            sent = self.send(actions=actions, channels=["in_app", "email"])
            return int(sent["ids"][0])

        return int(self._once("notification", make, fresh))

    def delivery(self, fresh: bool = False) -> str:
        """A dead delivery of A's (the server runs no worker: set here, as a failed
        send would leave it)."""

        def make() -> str:
            nid = self.notification(fresh=True)
            (delivery,) = self.admin("GET", f"{N}/{nid}/deliveries")["deliveries"]
            with sqlite3.connect(self.db_path, timeout=30) as db:
                db.execute("UPDATE deliveries SET status = 'dead' WHERE id = ?", (delivery["id"],))
            return str(delivery["id"])

        return str(self._once("delivery", make, fresh))

    def scheduled(self, fresh: bool = False) -> tuple[str, str]:
        """(scheduled send id, its cancellation key)."""

        def make() -> tuple[str, str]:
            key = self.name("ana-later")
            when = (datetime.now(UTC) + timedelta(days=30)).isoformat()
            sent = self.send(scheduled_for=when, cancellation_key=key)
            return str(sent["scheduled"][0]), key

        found: tuple[str, str] = self._once("scheduled", make, fresh)
        return found

    def batch(self, fresh: bool = False) -> str:
        def make() -> str:
            sent = self.send(type=BATCH_TYPE, group_key=self.name("group"))
            return str(sent["batched"][0])

        return str(self._once("batch", make, fresh))

    def rule(self, fresh: bool = False) -> str:
        def make() -> str:
            type_ = self.name("matrix.rule")
            self.admin("PUT", f"{N}/batching/rules/{type_}", json=RULE)
            return type_

        return BATCH_TYPE if not fresh else make()

    def push_subscription(self, fresh: bool = False) -> str:
        def make() -> str:
            body = {"endpoint": f"https://93.184.215.14/push/{self.name('sub')}", "keys": PUSH_KEYS}
            return str(self.admin("POST", f"{U}/{A}/push-subscriptions", json=body)["id"])

        return str(self._once("push", make, fresh))

    def template(self, fresh: bool = False) -> str:
        def make() -> str:
            key = self.name("matrix-tpl")
            self.admin("POST", "/api/v1/templates", json={"key": key, **TEMPLATE})
            return key

        return str(self._once("template", make, fresh))

    def webhook(self, fresh: bool = False) -> str:
        def make() -> str:
            return str(self.admin("POST", "/api/v1/webhooks", json={"url": WEBHOOK_URL})["id"])

        return str(self._once("webhook", make, fresh))

    def experiment(self, status: str = "draft") -> str:
        """A new experiment on a type of its own, brought to ``status``."""
        body = {
            "name": "probe",
            "target_type": self.name("probe-type"),
            "variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}],
        }
        made = str(self.admin("POST", f"{N}/ab-tests", json=body)["id"])
        if status in ("running", "paused"):
            self.admin("POST", f"{N}/ab-tests/{made}/start")
        if status == "paused":
            self.admin("POST", f"{N}/ab-tests/{made}/pause")
        return made

    def user(self, fresh: bool = False) -> str:
        """A user holding data (erasure and export need some)."""

        def make() -> str:
            user_id = self.name("erasable")
            self.send(user_id)
            return user_id

        return A if not fresh else make()

    def unsubscribe_link(self) -> str:
        return UnsubscribeSigner(SECRET).sign(A, "follow", "email")


RULE = {"strategy": "window", "window_seconds": 3600}
TEMPLATE = {"kind": "simple", "bodies": {"en": {"in_app.title": "Hi {{ data.name }}"}}}
PUSH_KEYS = {
    "p256dh": base64.urlsafe_b64encode(b"\x04" + b"p" * 64).decode().rstrip("="),
    "auth": base64.urlsafe_b64encode(b"a" * 16).decode().rstrip("="),
}


def _later() -> dict[str, str]:
    return {"scheduled_for": (datetime.now(UTC) + timedelta(days=60)).isoformat()}


def _for_a(path: str) -> Callable[[World], Req]:
    return lambda w: Req("GET", path, params={"user_id": A})


# --- the table: one line per operation -----------------------------------------------------

_n = "{notification_id}"
_NAMES = itertools.count()

PROBES: dict[Operation, Probe] = {
    ("POST", N): Probe(
        lambda w: Req("POST", N, json={"user_id": A, "type": "x", "title": "t"}), 202
    ),
    ("GET", N): Probe(_for_a(N), 200, other_user=403),
    ("GET", f"{N}/unread-count"): Probe(_for_a(f"{N}/unread-count"), 200, other_user=403),
    ("POST", f"{N}/read-all"): Probe(
        lambda w: Req("POST", f"{N}/read-all", params={"user_id": A}), 200, other_user=403
    ),
    ("GET", f"{N}/{_n}"): Probe(lambda w: Req("GET", f"{N}/{w.notification()}"), 200),
    **{
        ("POST", f"{N}/{_n}/{action}"): Probe(
            lambda w, _f, a=action: Req("POST", f"{N}/{w.notification()}/{a}"), 200
        )
        for action in ("read", "unread", "seen", "archive", "unarchive")
    },
    ("DELETE", f"{N}/{_n}"): Probe(
        lambda w, fresh: Req("DELETE", f"{N}/{w.notification(fresh)}"), 204
    ),
    ("POST", f"{N}/{_n}/actions/{{action_id}}"): Probe(
        lambda w: Req("POST", f"{N}/{w.notification()}/actions/like"), 200
    ),
    # The streams open the caller's own: B's token opens B's (and the socket's inbox
    # actions on A's notification are then a 404, checked in _ws_probe).
    ("WS", "/api/v1/ws"): Probe(lambda w: Req("WS", "/api/v1/ws"), 101, other_user=101),
    ("GET", f"{N}/stream"): Probe(lambda w: Req("GET", f"{N}/stream"), 200, other_user=200),
    ("GET", f"{N}/{_n}/deliveries"): Probe(
        lambda w: Req("GET", f"{N}/{w.notification()}/deliveries"), 200
    ),
    ("POST", f"{N}/deliveries/{{delivery_id}}/retry"): Probe(
        lambda w, fresh: Req("POST", f"{N}/deliveries/{w.delivery(fresh)}/retry"), 200
    ),
    ("GET", f"{N}/scheduled"): Probe(_for_a(f"{N}/scheduled"), 200, other_user=403),
    ("DELETE", f"{N}/scheduled"): Probe(
        lambda w, fresh: Req(
            "DELETE", f"{N}/scheduled", params={"cancellation_key": w.scheduled(fresh)[1]}
        ),
        200,
    ),
    ("GET", f"{N}/scheduled/{{send_id}}"): Probe(
        lambda w: Req("GET", f"{N}/scheduled/{w.scheduled()[0]}"), 200
    ),
    ("PATCH", f"{N}/scheduled/{{send_id}}"): Probe(
        lambda w: Req("PATCH", f"{N}/scheduled/{w.scheduled()[0]}", json=_later()), 200
    ),
    ("DELETE", f"{N}/scheduled/{{send_id}}"): Probe(
        lambda w, fresh: Req("DELETE", f"{N}/scheduled/{w.scheduled(fresh)[0]}"), 204
    ),
    ("GET", f"{N}/batches"): Probe(_for_a(f"{N}/batches"), 200, other_user=403),
    ("GET", f"{N}/batches/{{batch_id}}"): Probe(
        lambda w: Req("GET", f"{N}/batches/{w.batch()}"), 200
    ),
    ("POST", f"{N}/batches/{{batch_id}}/flush"): Probe(
        lambda w, fresh: Req("POST", f"{N}/batches/{w.batch(fresh)}/flush"), 200
    ),
    ("DELETE", f"{N}/batches/{{batch_id}}"): Probe(
        lambda w, fresh: Req("DELETE", f"{N}/batches/{w.batch(fresh)}"), 204
    ),
    ("GET", f"{N}/batching/rules"): Probe(lambda w: Req("GET", f"{N}/batching/rules"), 200),
    ("PUT", f"{N}/batching/rules"): Probe(
        lambda w: Req("PUT", f"{N}/batching/rules", json=[{"type": BATCH_TYPE, **RULE}]), 200
    ),
    ("PUT", f"{N}/batching/rules/{{type}}"): Probe(
        lambda w: Req(
            "PUT", f"{N}/batching/rules/{BATCH_TYPE}", json={**RULE, "window_seconds": 1800}
        ),
        200,
    ),
    ("DELETE", f"{N}/batching/rules/{{type}}"): Probe(
        lambda w, fresh: Req("DELETE", f"{N}/batching/rules/{w.rule(fresh)}"), 204
    ),
    ("GET", f"{N}/preferences/{{user_id}}"): Probe(
        lambda w: Req("GET", f"{N}/preferences/{A}"), 200, other_user=403
    ),
    ("PUT", f"{N}/preferences/{{user_id}}"): Probe(
        lambda w: Req("PUT", f"{N}/preferences/{A}", json={"channels": {"email": False}}),
        200,
        other_user=403,
    ),
    ("GET", f"{U}/{{user_id}}"): Probe(lambda w: Req("GET", f"{U}/{A}"), 200, other_user=403),
    ("PUT", f"{U}/{{user_id}}"): Probe(
        lambda w: Req("PUT", f"{U}/{A}", json={"name": "Ana B."}), 200, other_user=403
    ),
    ("POST", f"{U}/{{user_id}}/token"): Probe(lambda w: Req("POST", f"{U}/{A}/token"), 200),
    ("DELETE", f"{U}/{{user_id}}"): Probe(
        lambda w, fresh: Req("DELETE", f"{U}/{w.user(fresh)}"), 204
    ),
    ("GET", f"{U}/{{user_id}}/export"): Probe(lambda w: Req("GET", f"{U}/{A}/export"), 200),
    ("POST", f"{U}/{{user_id}}/push-subscriptions"): Probe(
        lambda w: Req(
            "POST",
            f"{U}/{A}/push-subscriptions",
            json={"endpoint": "https://93.184.215.14/push/probe", "keys": PUSH_KEYS},
        ),
        201,
        other_user=403,
    ),
    ("GET", f"{U}/{{user_id}}/push-subscriptions"): Probe(
        lambda w: Req("GET", f"{U}/{A}/push-subscriptions"), 200, other_user=403
    ),
    ("DELETE", f"{U}/{{user_id}}/push-subscriptions/{{subscription_id}}"): Probe(
        lambda w, fresh: Req("DELETE", f"{U}/{A}/push-subscriptions/{w.push_subscription(fresh)}"),
        204,
        other_user=403,
    ),
    ("POST", "/api/v1/templates"): Probe(
        lambda w, fresh: Req(
            "POST",
            "/api/v1/templates",
            json={"key": w.name("created") if fresh else "never-created", **TEMPLATE},
        ),
        201,
    ),
    ("GET", "/api/v1/templates"): Probe(lambda w: Req("GET", "/api/v1/templates"), 200),
    ("GET", "/api/v1/templates/{key}"): Probe(
        lambda w: Req("GET", f"/api/v1/templates/{w.template()}"), 200
    ),
    ("PUT", "/api/v1/templates/{key}"): Probe(
        lambda w: Req("PUT", f"/api/v1/templates/{w.template()}", json=TEMPLATE), 200
    ),
    ("DELETE", "/api/v1/templates/{key}"): Probe(
        lambda w, fresh: Req("DELETE", f"/api/v1/templates/{w.template(fresh)}"), 204
    ),
    ("POST", "/api/v1/templates/{key}/preview"): Probe(
        lambda w: Req("POST", f"/api/v1/templates/{w.template()}/preview", json={}), 200
    ),
    ("POST", "/api/v1/webhooks"): Probe(
        lambda w: Req("POST", "/api/v1/webhooks", json={"url": WEBHOOK_URL}), 201
    ),
    ("GET", "/api/v1/webhooks"): Probe(lambda w: Req("GET", "/api/v1/webhooks"), 200),
    ("GET", "/api/v1/webhooks/{endpoint_id}"): Probe(
        lambda w: Req("GET", f"/api/v1/webhooks/{w.webhook()}"), 200
    ),
    ("DELETE", "/api/v1/webhooks/{endpoint_id}"): Probe(
        lambda w, fresh: Req("DELETE", f"/api/v1/webhooks/{w.webhook(fresh)}"), 204
    ),
    ("GET", f"{N}/system/status"): Probe(lambda w: Req("GET", f"{N}/system/status"), 200),
    **{
        ("GET", f"{N}/analytics/{name}"): Probe(
            lambda w, n=name: Req("GET", f"{N}/analytics/{n}"), 200
        )
        for name in ("dashboard", "health-score", "events")
    },
    ("GET", f"{N}/analytics/trends"): Probe(
        lambda w: Req("GET", f"{N}/analytics/trends", params={"metric": "accepted"}), 200
    ),
    ("GET", f"{N}/analytics/live"): Probe(
        lambda w: Req("GET", f"{N}/analytics/live", params={"seconds": "1"}), 200
    ),
    ("GET", f"{N}/analytics/metrics/{{user_id}}"): Probe(
        lambda w: Req("GET", f"{N}/analytics/metrics/{A}"), 200
    ),
    ("POST", f"{N}/ab-tests"): Probe(
        lambda w: Req(
            "POST",
            f"{N}/ab-tests",
            json={
                "name": "probe",
                "target_type": "probe",
                "variants": [{"key": "a", "weight": 50}, {"key": "b", "weight": 50}],
            },
        ),
        201,
    ),
    ("GET", f"{N}/ab-tests"): Probe(lambda w: Req("GET", f"{N}/ab-tests"), 200),
    ("GET", f"{N}/ab-tests/{{experiment_id}}"): Probe(
        lambda w: Req("GET", f"{N}/ab-tests/{w.experiment()}"), 200
    ),
    ("PATCH", f"{N}/ab-tests/{{experiment_id}}"): Probe(
        lambda w: Req("PATCH", f"{N}/ab-tests/{w.experiment()}", json={"name": "renamed"}), 200
    ),
    ("DELETE", f"{N}/ab-tests/{{experiment_id}}"): Probe(
        lambda w: Req("DELETE", f"{N}/ab-tests/{w.experiment()}"), 204
    ),
    ("POST", f"{N}/ab-tests/{{experiment_id}}/start"): Probe(
        lambda w: Req("POST", f"{N}/ab-tests/{w.experiment()}/start"), 200
    ),
    ("POST", f"{N}/ab-tests/{{experiment_id}}/pause"): Probe(
        lambda w: Req("POST", f"{N}/ab-tests/{w.experiment('running')}/pause"), 200
    ),
    ("POST", f"{N}/ab-tests/{{experiment_id}}/stop"): Probe(
        lambda w: Req("POST", f"{N}/ab-tests/{w.experiment('running')}/stop"), 200
    ),
    ("POST", f"{N}/ab-tests/{{experiment_id}}/promote"): Probe(
        lambda w: Req(
            "POST", f"{N}/ab-tests/{w.experiment('running')}/promote", json={"variant": "b"}
        ),
        200,
    ),
    ("GET", f"{N}/ab-tests/{{experiment_id}}/results"): Probe(
        lambda w: Req("GET", f"{N}/ab-tests/{w.experiment('running')}/results"), 200
    ),
    # A new name each time: a repeated (notification, name) answers 200, not 201.
    ("POST", f"{N}/{_n}/conversions"): Probe(
        lambda w: Req(
            "POST", f"{N}/{w.notification()}/conversions", json={"name": f"c{next(_NAMES)}"}
        ),
        201,
    ),
    ("POST", f"{U}/{{user_id}}/conversions"): Probe(
        lambda w: Req("POST", f"{U}/{A}/conversions", json={"name": f"c{next(_NAMES)}"}), 201
    ),
    ("GET", "/api/v1/unsubscribe/{token}"): Probe(
        lambda w: Req("GET", f"/api/v1/unsubscribe/{w.unsubscribe_link()}"), 200
    ),
    ("POST", "/api/v1/unsubscribe/{token}"): Probe(
        lambda w: Req("POST", f"/api/v1/unsubscribe/{w.unsubscribe_link()}"), 200
    ),
}


def _forged_links(w: World) -> list[str]:
    """Links the signed-link operations must refuse (404): signed with another key,
    unsigned, and a user token of A's (same secret, another purpose)."""
    claims = {"typ": "unsub", "iss": TOKEN_ISSUER, "sub": A, "t": "follow", "ch": "email"}
    return [
        jwt.encode(claims, "another-secret-" + "k" * 40, algorithm="HS256"),
        _alg_none(claims),
        w.tokens["own_user_token"],
    ]


#: Further requests with another user's object ids or another user's credentials, each
#: with its one expected status: (operation, credential, request, status).
def extra_probes(w: World) -> list[tuple[Operation, str, Req, int]]:
    push_delete = ("DELETE", f"{U}/{{user_id}}/push-subscriptions/{{subscription_id}}")
    out: list[tuple[Operation, str, Req, int]] = [
        # B's own user id with A's subscription id: not B's, so not found.
        (
            push_delete,
            "other_user_token",
            Req("DELETE", f"{U}/{B}/push-subscriptions/{w.push_subscription()}"),
            404,
        ),
        (
            push_delete,
            "send_key",  # an API key acts for any user, but only on that user's objects
            Req("DELETE", f"{U}/{B}/push-subscriptions/{w.push_subscription()}"),
            404,
        ),
    ]
    # B's token without a user id: B's own (must not mention A, checked on every answer).
    for path in (N, f"{N}/unread-count", f"{N}/scheduled", f"{N}/batches"):
        out.append((("GET", path), "other_user_token", Req("GET", path), 200))
    for link in _forged_links(w):
        for method in ("GET", "POST"):
            op = (method, "/api/v1/unsubscribe/{token}")
            out.append((op, "none", Req(method, f"/api/v1/unsubscribe/{link}"), 404))
    return out


# --- expected answers, from api/operations.py ----------------------------------------------


def expected(op: Operation, credential: str, probe: Probe) -> tuple[int, str | None]:
    """(status, error code) of ``credential`` calling ``op`` on A's objects."""
    rule = OPERATIONS[op]
    if rule.public:  # the signed link is the permission; credentials change nothing
        return probe.ok, None
    stream = rule.scope is None  # user tokens only
    if credential in ("none", "malformed", "foreign_signed_token", "alg_none_token"):
        return 401, "unauthenticated"
    if credential == "expired_token":
        return 401, "token_expired"
    if credential == "revoked_key":
        # The streams refuse anything shaped like an API key before looking it up.
        return (403, "forbidden") if stream else (401, "unauthenticated")
    if credential in KEY_SCOPES:
        if KEY_SCOPES[credential] in rule.granted_by:
            return probe.ok, None
        return (403, "forbidden") if stream else (403, "insufficient_scope")
    if not rule.user_token:
        return 403, "forbidden"
    if credential == "own_user_token":
        return probe.ok, None
    assert credential == "other_user_token"
    return probe.other_user, CODES.get(probe.other_user)


# --- the server and the credentials --------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _alg_none(claims: dict[str, Any]) -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(claims).encode())}."


def _user_claims(user_id: str, expires_in: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": user_id,
        "typ": "user",
        "iss": TOKEN_ISSUER,
        "iat": now - 7200,
        "exp": now + expires_in,
    }


async def _make_keys(url: str) -> dict[str, str]:
    from clarion.services.auth import AuthService
    from clarion.store.db import Database

    db = Database(url)
    try:
        auth = AuthService(db, Settings(database_url=url, _env_file=None), SECRET)  # type: ignore[call-arg]
        keys = {}
        for name, scope in KEY_SCOPES.items():
            _id, keys[name] = await auth.create_api_key(name, [scope.value])
        revoked_id, keys["revoked_key"] = await auth.create_api_key("revoked", ["admin"])
        await auth.revoke_api_key(revoked_id)
        return keys
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import asyncio

    from clarion.store.migrate import upgrade_sync

    workdir = tmp_path_factory.mktemp("authz")
    db_path = workdir / "clarion.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    upgrade_sync(url)
    keys = asyncio.run(_make_keys(url))
    env = clarion_env(workdir, CLARION_SECRET_KEY=SECRET, CLARION_EMBEDDED_WORKER="false")
    server = start_server(workdir, env, key=keys["admin_key"])
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            w = World(server, http, db_path)
            w.keys = keys
            w.admin("PUT", f"{U}/{A}", json={"name": "Ana", "email": "ana@example.com"})
            w.admin("PUT", f"{U}/{B}", json={"name": "Bo"})
            w.admin("PUT", f"{N}/batching/rules/{BATCH_TYPE}", json=RULE)
            own = w.admin("POST", f"{U}/{A}/token")["token"]
            other = w.admin("POST", f"{U}/{B}/token")["token"]
            w.tokens = {
                "own_user_token": own,
                "other_user_token": other,
                "expired_token": jwt.encode(_user_claims(A, -3600), SECRET, algorithm="HS256"),
                "foreign_signed_token": jwt.encode(
                    _user_claims(A, 3600), "another-secret-" + "k" * 40, algorithm="HS256"
                ),
                "alg_none_token": _alg_none(_user_claims(A, 3600)),
            }
            yield w
    finally:
        server.stop()


def _credential(w: World, credential: str) -> str | None:
    if credential == "none":
        return None
    if credential == "malformed":
        return "a.b.c"
    return w.keys.get(credential) or w.tokens[credential]


def _headers(w: World, credential: str) -> list[dict[str, str]]:
    """The Authorization headers a credential is presented with (several when malformed)."""
    if credential == "malformed":
        return [{"Authorization": value} for value in MALFORMED]
    value = _credential(w, credential)
    return [{}] if value is None else [{"Authorization": f"Bearer {value}"}]


# --- calling -------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    code: str | None
    text: str


def _http(http: httpx.Client, req: Req, headers: dict[str, str]) -> Answer:
    with http.stream(req.method, req.path, params=req.params, json=req.json, headers=headers) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            # A live stream: its first bytes are enough (it never ends by itself).
            text = next(r.iter_text(), "")
            return Answer(r.status_code, None, text)
        r.read()
    code = None
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/"):
        body = r.json()
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    return Answer(r.status_code, code, r.text)


def _ws(w: World, token: str | None, form: str, nid: int) -> Answer:
    """Open the socket with ``token`` (in the query or the first message); once open, ask
    to mark A's notification read: an ``ack`` for A, a ``not_found`` error for anyone
    else. A refusal is the close code."""
    base = w.server.url.replace("http://", "ws://") + "/api/v1/ws"
    url = f"{base}?token={quote(token)}" if form == "query" and token is not None else base
    with connect(url, open_timeout=30, close_timeout=5) as ws:
        if url == base:
            ws.send(json.dumps({"token": token}))
        try:
            ws.recv(timeout=30)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 0
            return Answer(code, None, exc.rcvd.reason if exc.rcvd else "")
        ws.send(json.dumps({"type": "read", "id": nid}))
        while True:
            frame = json.loads(ws.recv(timeout=30))
            if frame.get("type") == "ack":
                return Answer(101, None, json.dumps(frame))
            if frame.get("type") == "error":
                return Answer(101, frame.get("code"), json.dumps(frame))


# --- the test ------------------------------------------------------------------------------


def _app_operations() -> set[Operation]:
    return routed_operations(create_app(Settings(_env_file=None)).routes)  # type: ignore[call-arg]


def test_every_routed_operation_has_a_probe() -> None:
    """A new route fails here until PROBES says how to call it (who may is not written
    here: that is api/operations.py's rule, which the matrix derives answers from)."""
    routed = _app_operations()
    assert ("WS", "/api/v1/ws") in routed and ("GET", f"{N}/stream") in routed
    assert sorted(routed - set(PROBES)) == [], "routes without a probe"
    assert sorted(set(PROBES) - routed) == [], "probes of no route"


def snapshot(w: World) -> dict[str, Any]:
    """A's data and the shared configuration, as the admin key reads them."""
    export = w.admin("GET", f"{U}/{A}/export")
    export.pop("exported_at")
    return {
        "export": export,
        "templates": w.admin("GET", "/api/v1/templates"),
        "webhooks": w.admin("GET", "/api/v1/webhooks"),
        "rules": w.admin("GET", f"{N}/batching/rules"),
        "other_user_counts": w.admin("GET", f"{N}/unread-count", params={"user_id": B}),
    }


Check = tuple[Operation, str, Req, int, str | None]


def test_authorization_matrix(world: World) -> None:
    """Every operation by every credential answers as its rule says; nothing refused
    changes anything; B's answers never mention A."""
    w = world
    routed = _app_operations()
    failures: list[str] = [f"{op}: no probe in PROBES" for op in sorted(routed - set(PROBES))]
    # The hot paths (api/fastpath) take requests only after FastAPI answered their route
    # once: warm them, so that refusals there are probed too.
    w.send(B)
    w.admin("GET", N, params={"user_id": B})
    w.admin("GET", f"{N}/unread-count", params={"user_id": B})

    refused: list[Check] = []
    allowed: list[Check] = []
    pairs = 0
    for op in sorted(routed & set(PROBES)):
        probe = PROBES[op]
        for credential in CREDENTIALS:
            status, code = expected(op, credential, probe)
            pairs += 1
            # B acting on A's objects must change nothing, even where B's call is allowed
            # (a stream: B's own).
            harmless = status >= 400 or (
                credential == "other_user_token" and not OPERATIONS[op].public
            )
            req = probe.request(w, fresh=not harmless)
            (refused if harmless else allowed).append((op, credential, req, status, code))
    for op, credential, req, status in extra_probes(w):
        refused.append((op, credential, req, status, CODES.get(status)))

    requests = 0

    def run(checks: list[Check]) -> None:
        nonlocal requests
        for op, credential, req, status, code in checks:
            for answer in _call(w, op, credential, req):
                requests += 1
                problem = _judge(answer, status, code, credential, OPERATIONS[op].public)
                if problem:
                    failures.append(f"{op} {credential} {req.method} {req.path}: {problem}")

    before = snapshot(w)
    started = time.monotonic()
    run(refused)
    after = snapshot(w)
    if after != before:
        failures.append(f"refused requests changed data: {_diff(before, after)}")
    run(allowed)
    elapsed = time.monotonic() - started
    print(
        f"authz matrix: {len(routed)} operations x {len(CREDENTIALS)} credentials = "
        f"{pairs} pairs, {requests} requests in {elapsed:.1f} s"
    )
    assert failures == [], "\n".join(failures)
    assert requests >= pairs


def _call(w: World, op: Operation, credential: str, req: Req) -> Iterator[Answer]:
    if req.method == "WS":
        token = _credential(w, credential)
        for form in ("query", "message"):
            yield _ws(w, token, form, w.notification())
        return
    for headers in _headers(w, credential):
        yield _http(w.http, req, headers)


def _judge(
    answer: Answer, status: int, code: str | None, credential: str, public: bool
) -> str | None:
    if status == 101:  # the socket opened: the inbox action's answer
        if answer.status != 101:
            return f"closed with {answer.status} ({answer.text}), expected to open"
        want = "not_found" if credential == "other_user_token" else None
        if answer.code != want:
            return f"inbox action answered {answer.text}, expected {want or 'an ack'}"
        return None
    if answer.status in WS_CLOSE.values():  # a refused socket: compare close codes
        if code is None or WS_CLOSE.get(code) != answer.status:
            return f"closed with {answer.status}, expected {status} {code}"
        return None
    if answer.status != status:
        return f"answered {answer.status} {answer.text[:200]!r}, expected {status} {code}"
    if code is not None and answer.code != code:
        return f"error code {answer.code!r}, expected {code!r}"
    # (A signed link names its user: whoever holds it acts for that user.)
    if credential == "other_user_token" and not public and answer.status < 300 and A in answer.text:
        return f"another user's answer mentions {A}: {answer.text[:200]!r}"
    return None


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    for key in before:
        if before[key] != after[key]:
            parts.append(
                f"{key}: {json.dumps(before[key])[:600]} -> {json.dumps(after[key])[:600]}"
            )
    return "; ".join(parts)


def test_paths_outside_the_api_take_no_credentials(world: World) -> None:
    """NON_API_PATHS (the one list of what is not part of the API) answer without any."""
    for path in sorted(NON_API_PATHS):
        r = world.http.get(path)
        assert r.status_code not in (401, 403) and r.status_code < 500, (path, r.status_code)


#: Not GET, yet a ``read`` key may call it: it renders and changes nothing.
READ_ONLY_WRITES = frozenset({("POST", "/api/v1/templates/{key}/preview")})
#: The operations taking no credentials (their signed link is the permission).
PUBLIC = frozenset(
    {("GET", "/api/v1/unsubscribe/{token}"), ("POST", "/api/v1/unsubscribe/{token}")}
)
#: Configuration and operator paths: never reachable with a user token.
OPERATOR_PATHS = ("/api/v1/templates", "/api/v1/webhooks", f"{N}/batching", f"{N}/system")


def test_the_rules_keep_their_promises() -> None:
    """The matrix takes who may call what from api/operations.py; these promises of
    docs/api.md are written here a second time, so that a wrong rule there cannot make
    its own wrong answer expected: a ``read`` key changes nothing, only signed links are
    public, and user tokens never reach configuration or operator operations."""
    for (method, path), rule in OPERATIONS.items():
        op = (method, path)
        if ApiScope.READ in rule.granted_by and method not in ("GET", "WS"):
            assert op in READ_ONLY_WRITES, f"{op}: a read key would change something"
        assert rule.public == (op in PUBLIC), f"{op}: public is {rule.public}"
        if path.startswith(OPERATOR_PATHS) or rule.granted_by == {ApiScope.ADMIN}:
            assert not rule.user_token, f"{op}: open to user tokens"
        if not rule.public:
            assert rule.scope is not None or rule.user_token, f"{op}: callable by no one"
