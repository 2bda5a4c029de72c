"""One-click unsubscribe links (RFC 8058): signed tokens naming a user, a type and a
channel, put into every email and verified by the unsubscribe route."""

from __future__ import annotations

import jwt

from clarion.errors import NotFound
from clarion.services.auth import sign_token, verify_token


class UnsubscribeSigner:
    """Signed one-click unsubscribe tokens: an HS256 JWT of (user, type, channel).

    ``typ: "unsub"`` keeps these apart from user tokens signed with the same secret: an
    unsubscribe link cannot act as a user token, nor a user token unsubscribe. They do not
    expire (RFC 8058 links live in old mail), and carry no more power than opting out.
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def sign(self, user_id: str, type_: str, channel: str) -> str:
        claims = {"typ": "unsub", "sub": user_id, "t": type_, "ch": channel}
        return sign_token(claims, self._secret)

    def verify(self, token: str) -> tuple[str, str, str]:
        try:
            claims = verify_token(token, self._secret, typ="unsub", require=("sub",))
        except jwt.PyJWTError as exc:
            raise NotFound("unknown or invalid unsubscribe link") from exc
        parts = (claims.get("sub"), claims.get("t"), claims.get("ch"))
        if not all(isinstance(p, str) and p for p in parts):
            raise NotFound("unknown or invalid unsubscribe link")
        return str(parts[0]), str(parts[1]), str(parts[2])
