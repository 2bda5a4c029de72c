"""User profiles: contact details and preferences of language and time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clarion.domain.recipients import Profile
from clarion.errors import Forbidden, NotFound, ValidationFailed
from clarion.services.clock import as_utc, utcnow
from clarion.store import users as store
from clarion.store.db import Database


def profile_json(profile: Profile) -> dict[str, Any]:
    return {
        "user_id": profile.user_id,
        "email": profile.email,
        "phone": profile.phone,
        "name": profile.name,
        "locale": profile.locale,
        "timezone": profile.timezone,
        "data": profile.data,
        "created_at": as_utc(profile.created_at).isoformat(),
        "updated_at": as_utc(profile.updated_at).isoformat(),
    }


def _check_timezone(tz: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(
            f"unknown timezone {tz!r}", [{"field": "timezone", "problem": "unknown"}]
        ) from exc


def _apprise_urls(data: Any) -> Any:
    """A profile's ``data.apprise_urls`` as stored, with absent and empty the same."""
    urls = data.get("apprise_urls") if isinstance(data, Mapping) else None
    return urls or None


class UserService:
    """Profiles. ``user_apprise_urls`` (``CLARION_USER_APPRISE_URLS``) lets user tokens set
    their own ``data.apprise_urls``; otherwise only a server API key may change them."""

    def __init__(self, db: Database, *, user_apprise_urls: bool = False) -> None:
        self._db = db
        self._user_apprise_urls = user_apprise_urls

    async def get(self, user_id: str) -> dict[str, Any]:
        async with self._db.connect() as conn:
            row = await store.get(conn, user_id)
        if row is None:
            raise NotFound(f"no user {user_id!r}")
        return profile_json(row)

    async def put(
        self,
        user_id: str,
        profile: Mapping[str, Any],
        *,
        caller_kind: Literal["api_key", "user"],
    ) -> dict[str, Any]:
        """Create or update a profile; ``caller_kind`` is the kind of the request's
        credentials (``Principal.kind``), which decides who may change Apprise targets."""
        if profile.get("timezone"):
            _check_timezone(profile["timezone"])
        if profile.get("phone"):
            profile = {**profile, "phone": normalize_phone(profile["phone"])}
        guarded = caller_kind != "api_key" and not self._user_apprise_urls and "data" in profile
        async with self._db.begin() as conn:
            if guarded:
                # An Apprise URL names any service on any host, with credentials Clarion
                # then uses: a user token must not choose them. ``data`` is replaced as a
                # whole, so dropping the stored URLs is a change too; sending them back
                # unchanged (a read-modify-write of the profile) is not.
                current = await store.get(conn, user_id)
                before = _apprise_urls(current.data) if current is not None else None
                if _apprise_urls(profile["data"]) != before:
                    raise Forbidden(
                        "only a server API key may set data.apprise_urls "
                        "(CLARION_USER_APPRISE_URLS=true lets user tokens set their own)",
                        [{"field": "data.apprise_urls", "problem": "forbidden"}],
                    )
            row = await store.upsert_profile(conn, user_id, profile, utcnow())
        return profile_json(row)


def normalize_phone(raw: str) -> str:
    """E.164, validated with libphonenumber (an SMS to a malformed number is a failure
    loop we refuse at the door)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(
            "phone must be an E.164 number such as +14155550100",
            [{"field": "phone", "problem": "unparseable"}],
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed(
            "phone is not a valid number", [{"field": "phone", "problem": "invalid"}]
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
