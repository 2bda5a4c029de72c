"""Who is calling: server API keys (act for any user) and user tokens (one user only).

API keys look like ``clk_<43 url-safe characters>``; only their SHA-256 is stored, and a
verified key is trusted for ``api_key_cache_seconds`` so the hot path does not read the
database on every request (a revoked key stops working within that time).
User tokens are HS256 JWTs signed with the secret key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import jwt

from clarion.config import Settings
from clarion.domain.access import Access, format_scopes, parse_scopes
from clarion.domain.types import ApiScope
from clarion.errors import (
    ClarionError,
    Forbidden,
    InsufficientScope,
    NotFound,
    StorageError,
    TokenExpired,
    Unauthenticated,
    ValidationFailed,
)
from clarion.hub.ratelimit import parse_limit
from clarion.services.clock import utcnow
from clarion.store import api_keys as key_store
from clarion.store.db import Database

log = logging.getLogger("clarion.auth")

KEY_PREFIX = "clk_"
SECRET_FILE = ".clarion-secret"
TOKEN_ISSUER = "clarion"


def sign_token(claims: dict[str, Any], secret: str) -> str:
    """An HS256 token issued by Clarion (``iss``) with these claims."""
    return jwt.encode({**claims, "iss": TOKEN_ISSUER}, secret, algorithm="HS256")


def verify_token(token: str, secret: str, *, typ: str, require: Iterable[str]) -> dict[str, Any]:
    """The claims of a token Clarion signed with ``secret`` for the purpose ``typ``
    (``user``, ``unsub``): the one decoder of every token Clarion issues, so the
    algorithm, the issuer and the purpose are checked the same way everywhere. Raises
    ``jwt.ExpiredSignatureError`` when expired, another ``jwt.PyJWTError`` otherwise."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        issuer=TOKEN_ISSUER,
        options={"require": [*require, "iss"]},
    )
    if claims.get("typ") != typ:
        raise jwt.InvalidTokenError(f"not a {typ} token")
    return claims


@dataclass(frozen=True)
class Principal:
    """Who is calling. An API key's ``scopes`` and its own ``rate_limit`` (``None``: the
    configured default) travel with it: the principal is cached per key, so checking them
    costs no lookup."""

    kind: Literal["api_key", "user"]
    api_key_id: str | None = None
    user_id: str | None = None
    scopes: frozenset[ApiScope] = frozenset()
    rate_limit: str | None = None

    @property
    def is_server(self) -> bool:
        return self.kind == "api_key"

    def require_server(self) -> None:
        if not self.is_server:
            raise Forbidden("this operation needs a server API key")

    def authorize(self, access: Access) -> None:
        """Refuse the operation ``access`` describes unless this principal may call it:
        an API key needs one of the scopes granting it (``insufficient_scope``), a user
        token needs an operation open to user tokens. Which user a user token may act for
        is checked by :meth:`scope_user` and :meth:`check_owner`."""
        if self.kind == "api_key":
            if self.scopes.isdisjoint(access.granted_by):
                raise _insufficient(access, self.scopes)
        elif not access.user_token:
            raise Forbidden("this operation needs a server API key")

    def scope_user(self, user_id: str | None) -> str:
        """The user this request may act for: a user token is pinned to its own user."""
        if self.is_server:
            if not user_id:
                raise ValidationFailed("user_id is required", [{"field": "user_id"}])
            return user_id
        assert self.user_id is not None
        if user_id is not None and user_id != self.user_id:
            raise Forbidden("a user token acts for its own user only")
        return self.user_id

    def check_owner(self, owner: str) -> None:
        """Another user's object does not exist for a user token (404, not 403: no probing)."""
        if not self.is_server and owner != self.user_id:
            raise NotFound("no such notification")


def _insufficient(access: Access, held: frozenset[ApiScope]) -> ClarionError:
    if access.scope is None:
        return Forbidden("an API key cannot call this operation; mint a user token")
    names = access.scope_names()
    needed = " or ".join(f"'{n}'" for n in names)
    also = "" if names == [ApiScope.ADMIN.value] else " (or 'admin')"
    return InsufficientScope(
        f"this API key lacks the scope this operation needs: {needed}{also}",
        {"required": names, "key_scopes": sorted(s.value for s in held)},
    )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_rate_limit(value: str) -> str:
    """A per-key limit in the limits library's syntax, one rate of at least one request
    (``"600/minute"``, ``"10 per second"``); :class:`ValidationFailed` otherwise."""
    value = value.strip()
    problem = [{"field": "rate_limit", "problem": "expected e.g. 600/minute"}]
    if not value or ";" in value or "," in value:
        raise ValidationFailed(f"invalid rate limit {value!r}", problem)
    try:
        item = parse_limit(value)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, problem) from exc
    if item.amount < 1:
        raise ValidationFailed(f"invalid rate limit {value!r}: at least 1 request", problem)
    return value


def resolve_secret(settings: Settings) -> str:
    """The configured secret, else one generated once and kept beside the database."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir() / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    _write_private(path, secret)
    log.warning(
        "CLARION_SECRET_KEY is not set: generated one and stored it in %s. "
        "Set CLARION_SECRET_KEY in production (and the same value on every node).",
        path,
    )
    return secret


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content + "\n")


class AuthService:
    def __init__(self, db: Database, settings: Settings, secret: str) -> None:
        self._db = db
        self._secret = secret
        self._ttl = settings.user_token_ttl_seconds
        self._cache_seconds = settings.api_key_cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}

    # --- API keys -------------------------------------------------------------------------
    async def create_api_key(
        self,
        name: str,
        scopes: Iterable[str] = (),
        rate_limit: str | None = None,
    ) -> tuple[str, str]:
        """Returns (key id, the key). The key is shown once: only its hash is kept.
        ``scopes``: scope names (none: ``admin``); ``rate_limit``: the key's own limit in
        the limits library's syntax (``"600/minute"``), ``None`` for the default."""
        name = name.strip()
        if not name or len(name) > 100:
            raise ValidationFailed("name must be 1-100 characters", [{"field": "name"}])
        try:
            chosen = parse_scopes(scopes)
        except ValueError as exc:
            raise ValidationFailed(str(exc), [{"field": "scope", "problem": "unknown"}]) from exc
        limit = check_rate_limit(rate_limit) if rate_limit is not None else None
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = str(uuid.uuid4())
        async with self._db.begin() as conn:
            await key_store.insert(
                conn,
                id=key_id,
                name=name,
                prefix=key[:12],
                key_hash=hash_key(key),
                now=utcnow(),
                scopes=format_scopes(chosen),
                rate_limit=limit,
            )
        return key_id, key

    async def list_api_keys(self) -> list[dict[str, Any]]:
        async with self._db.connect() as conn:
            rows = await key_store.all_keys(conn)
        return [
            {
                "id": r.id,
                "name": r.name,
                "prefix": r.prefix,
                "created_at": r.created_at,
                "revoked_at": r.revoked_at,
                "scopes": sorted(r.scopes),
                "rate_limit": r.rate_limit,
            }
            for r in rows
        ]

    async def revoke_api_key(self, id_or_prefix: str) -> None:
        async with self._db.begin() as conn:
            if not await key_store.revoke(conn, id_or_prefix, utcnow()):
                raise NotFound(f"no active API key {id_or_prefix!r}")
        self._cache.clear()

    async def has_api_keys(self) -> bool:
        async with self._db.connect() as conn:
            return await key_store.count_active(conn) > 0

    # --- requests -------------------------------------------------------------------------
    async def authenticate(self, credential: str | None) -> Principal:
        if not credential:
            raise Unauthenticated("missing credentials: send 'Authorization: Bearer <key>'")
        if credential.startswith(KEY_PREFIX):
            return await self._api_key(credential)
        return self.verify_user_token(credential)

    async def _api_key(self, key: str) -> Principal:
        digest = hash_key(key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            async with self._db.connect() as conn:
                row = await key_store.by_hash(conn, digest)
        except StorageError as exc:
            # The database is down: a key verified before the outage stays trusted until
            # it answers again (nothing can be revoked meanwhile anyway), so that what
            # needs no database (system status, replies from caches) keeps working.
            if cached is not None and exc.outage:
                return cached[1]
            raise
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("invalid or revoked API key")
        principal = Principal(
            kind="api_key", api_key_id=row.id, scopes=row.scopes, rate_limit=row.rate_limit
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, principal)
        return principal

    # --- user tokens ----------------------------------------------------------------------
    def mint_user_token(self, user_id: str, ttl_seconds: int | None = None) -> tuple[str, int]:
        ttl = ttl_seconds or self._ttl
        now = utcnow()
        claims = {"sub": user_id, "typ": "user", "iat": now, "exp": now + timedelta(seconds=ttl)}
        return sign_token(claims, self._secret), ttl

    def verify_user_token(self, token: str) -> Principal:
        try:
            claims = verify_token(token, self._secret, typ="user", require=("exp", "sub"))
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("the user token has expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid credentials") from exc
        if not isinstance(claims.get("sub"), str):
            raise Unauthenticated("invalid credentials")
        return Principal(kind="user", user_id=claims["sub"])

    def token_expiry(self, token: str) -> float:
        """Seconds since the epoch at which a (verified) token expires."""
        claims = jwt.decode(token, options={"verify_signature": False})
        return float(claims["exp"])
