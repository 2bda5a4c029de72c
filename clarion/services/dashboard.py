"""The operator dashboard's sign-in and its audit log (docs/dashboard.md).

An API key is typed once; the browser then holds a random session id in a cookie, of
which only a SHA-256 is stored, beside the session's CSRF token and role. ``admin``
keys get the full dashboard, ``read`` keys a read-only one; ``send`` keys and user
tokens are refused. Every state-changing action (the dashboard's and the admin API's)
is written to the audit log with who, when, what, before and after.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from clarion.domain.dashboard import AuditEntry, DashboardSession
from clarion.domain.types import ApiScope
from clarion.errors import CsrfFailed, Forbidden, Unauthenticated
from clarion.services.auth import AuthService, Principal
from clarion.services.clock import as_utc, utcnow
from clarion.store import dashboard as store
from clarion.store.db import Database

#: How long a dashboard session lasts after sign-in.
SESSION_TTL = timedelta(hours=8)
AUDIT_COLUMNS = ("id", "at", "actor", "via", "action", "target", "before", "after")

Role = Literal["admin", "read"]


@dataclass(frozen=True)
class DashSession:
    api_key_id: str
    role: Role
    csrf: str
    expires_at: datetime

    @property
    def can_write(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        return f"api_key:{self.api_key_id}"

    def check_csrf(self, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, self.csrf):
            raise CsrfFailed("this form lacks a valid CSRF token: reload the page and retry")

    def require_admin(self) -> None:
        if not self.can_write:
            raise Forbidden("a read-only dashboard session cannot change anything")


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def role_of(principal: Principal) -> Role:
    """The dashboard role a credential gets; refuses user tokens and send-only keys."""
    if not principal.is_server or principal.api_key_id is None:
        raise Forbidden("a user token never opens the dashboard: sign in with an API key")
    if ApiScope.ADMIN in principal.scopes:
        return "admin"
    if ApiScope.READ in principal.scopes:
        return "read"
    raise Forbidden("the dashboard needs an 'admin' or 'read' API key; this key can only send")


class DashboardService:
    def __init__(self, db: Database, auth: AuthService) -> None:
        self._db = db
        self._auth = auth

    # --- sessions --------------------------------------------------------------------------
    async def sign_in(self, key: str) -> tuple[str, DashSession]:
        """A new session for this API key: (the cookie's value, the session)."""
        principal = await self._auth.authenticate(key.strip())
        role = role_of(principal)
        assert principal.api_key_id is not None
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        got = DashSession(principal.api_key_id, role, secrets.token_urlsafe(32), now + SESSION_TTL)
        async with self._db.begin() as conn:
            await store.purge_sessions(conn, now - timedelta(days=1))
            await store.add_session(
                conn,
                DashboardSession(
                    id=_digest(session_id),
                    api_key_id=got.api_key_id,
                    role=ApiScope(role),
                    csrf=got.csrf,
                    created_at=now,
                    expires_at=got.expires_at,
                ),
            )
        return session_id, got

    async def session(self, session_id: str | None) -> DashSession:
        """The live session of this cookie value; :class:`Unauthenticated` otherwise. The
        key behind it is checked too: revoking the key ends its sessions."""
        if not session_id:
            raise Unauthenticated("sign in to the dashboard first")
        async with self._db.connect() as conn:
            row = await store.session(conn, _digest(session_id))
        if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= utcnow():
            raise Unauthenticated("the dashboard session has ended: sign in again")
        if row.key_revoked_at is not None:
            raise Unauthenticated("the API key of this session was revoked")
        role: Role = "admin" if row.role is ApiScope.ADMIN else "read"
        return DashSession(row.api_key_id, role, row.csrf, row.expires_at)

    async def sign_out(self, session_id: str) -> None:
        async with self._db.begin() as conn:
            await store.revoke_session(conn, _digest(session_id), utcnow())

    # --- the audit log ---------------------------------------------------------------------
    async def audit(
        self,
        *,
        api_key_id: str | None,
        via: str,
        action: str,
        target: str,
        before: Any = None,
        after: Any = None,
        actor: str | None = None,
    ) -> None:
        """Write one audit row (its own transaction, after the change committed).
        ``actor``: who, when not an API key (``cli:<os user>``)."""
        async with self._db.begin() as conn:
            await store.add_audit(
                conn,
                AuditEntry(
                    at=utcnow(),
                    api_key_id=api_key_id,
                    actor=actor or (f"api_key:{api_key_id}" if api_key_id else "system"),
                    via=via,
                    action=action,
                    target=target[:255],
                    before=_plain(before),
                    after=_plain(after),
                ),
            )

    async def audit_page(
        self, *, before_id: int | None = None, limit: int = 100, action: str | None = None
    ) -> list[dict[str, Any]]:
        async with self._db.connect() as conn:
            rows = await store.audit_page(conn, before_id=before_id, limit=limit, action=action)
        return [audit_json(r) for r in rows]

    async def audit_export(
        self, start: datetime | None, end: datetime | None, action: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching row, newest first, read in pages."""
        before: int | None = None
        while True:
            async with self._db.connect() as conn:
                rows = await store.audit_page(
                    conn, before_id=before, limit=1000, action=action, start=start, end=end
                )
            for r in rows:
                yield audit_json(r)
            if len(rows) < 1000:
                return
            before = rows[-1].id


def audit_json(r: AuditEntry) -> dict[str, Any]:
    return {
        "id": r.id,
        "at": as_utc(r.at).isoformat(),
        "actor": r.actor,
        "via": r.via,
        "action": r.action,
        "target": r.target,
        "before": r.before,
        "after": r.after,
    }


def _plain(value: Any) -> Any:
    """JSON-safe (datetimes as text), secrets never: fields named like one are dropped."""
    if value is None:
        return None
    data = json.loads(json.dumps(value, default=str))
    return _strip(data)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if not any(s in k.lower() for s in ("secret", "password", "key_hash", "token"))
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
