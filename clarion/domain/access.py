"""Who may call an operation: the scopes of a server API key that grant it, and whether a
user token may. Pure values; ``clarion/api/operations.py`` gives one to every operation and
``Principal.authorize`` (services/auth.py) applies it.

Why ``send`` grants the reads of users' own data: a ``send`` key mints user tokens, and a
user token reads its user's inbox, counts, profile and preferences. Refusing those reads to
the key itself would protect nothing while breaking the backend that shows a badge. It
does not grant configuration reads (templates, batching rules, webhook endpoints, system
status): nothing it can mint reaches those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clarion.domain.types import ApiScope

#: Stored for a key created without ``--scope``, and for keys made before scopes existed.
DEFAULT_SCOPES: frozenset[ApiScope] = frozenset({ApiScope.ADMIN})


@dataclass(frozen=True, slots=True)
class Access:
    """The rule of one operation.

    ``scope`` is the scope it belongs to (named in a refusal), ``None`` when no API key may
    call it (the user streams); ``send_too`` marks a read of users' own data, which a
    ``send`` key may also make; ``user_token`` says whether a user token may call it (for
    its own user); ``public`` operations take no credentials at all (a signed link)."""

    scope: ApiScope | None
    user_token: bool = False
    send_too: bool = False
    public: bool = False
    granted_by: frozenset[ApiScope] = field(init=False)

    def __post_init__(self) -> None:
        granted: set[ApiScope] = set()
        if self.scope is not None:
            granted |= {self.scope, ApiScope.ADMIN}
        if self.send_too:
            granted.add(ApiScope.SEND)
        object.__setattr__(self, "granted_by", frozenset(granted))

    def scope_names(self) -> list[str]:
        """The scopes below ``admin`` that grant it, as docs/api.md's table lists them."""
        below = [s.value for s in (ApiScope.READ, ApiScope.SEND) if s in self.granted_by]
        if below or ApiScope.ADMIN not in self.granted_by:
            return below
        return [ApiScope.ADMIN.value]


def parse_scopes(values: Iterable[str]) -> frozenset[ApiScope]:
    """Scope names (repeated or space-separated) as a set; ``ValueError`` names a bad one.
    None given means :data:`DEFAULT_SCOPES`."""
    scopes: set[ApiScope] = set()
    for value in values:
        for word in value.replace(",", " ").split():
            try:
                scopes.add(ApiScope(word.strip().lower()))
            except ValueError:
                known = ", ".join(s.value for s in ApiScope)
                raise ValueError(f"unknown scope {word!r} (known: {known})") from None
    return frozenset(scopes) if scopes else DEFAULT_SCOPES


def format_scopes(scopes: Iterable[ApiScope]) -> str:
    """The stored form: names separated by one space, in a fixed order."""
    chosen = set(scopes)
    return " ".join(s.value for s in (ApiScope.ADMIN, ApiScope.SEND, ApiScope.READ) if s in chosen)


def stored_scopes(value: str | None) -> frozenset[ApiScope]:
    """A key's stored scopes. A word this version does not know grants nothing (a key
    written by a newer version keeps only what this one understands)."""
    known = {s.value for s in ApiScope}
    words = [w for w in (value or "").split() if w in known]
    return frozenset(ApiScope(w) for w in words) if value is not None else DEFAULT_SCOPES


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One row of ``api_keys`` (only the key's SHA-256 is stored): ``scopes`` as read by
    :func:`stored_scopes`; ``rate_limit`` in limits syntax, ``None`` for the default."""

    id: str
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    revoked_at: datetime | None
    scopes: frozenset[ApiScope]
    rate_limit: str | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ApiKey:
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            key_hash=row["key_hash"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
            scopes=stored_scopes(row["scopes"]),
            rate_limit=row["rate_limit"],
        )
